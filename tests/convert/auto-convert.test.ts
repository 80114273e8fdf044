// LoadVideoModel pointed at a source checkpoint (a diffusers folder or a VidRD release under the
// models folder) converts it once into the models folder's cache, with progress, reuses it after,
// and converts again when the source changes; /object_info lists it with its family and limits.
import { cpSync, existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { applySets } from '../../server/cli.ts';
import { createEngine } from '../../server/engine/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import type { ApiPrompt, EngineEvent } from '../../server/engine/types.ts';
import { CONVERTED_DIR } from '../../server/runtime/convert/cache.ts';
import { modelsDir as vectorModels } from '../helpers/convert.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow } from '../pipeline/workflow.ts';

const paths = makePaths('rdflow-autoconvert-');
afterAll(() => paths.cleanup());
cpSync(path.join(vectorModels, 'modelscope-tiny'), path.join(paths.models, 'ms-src'), { recursive: true });
cpSync(path.join(vectorModels, 'vidrd-tiny'), path.join(paths.models, 'vidrd-release'), { recursive: true });

function smallRun(model: string): ApiPrompt {
  const prompt = applySets(readWorkflow('vidrd-long-video.json'), [
    `1.model=${model}`,
    '4.width=64',
    '4.height=64',
    '5.iterations=1',
    '6.steps=2',
    `8.filename_prefix=${model}/v`,
  ]);
  delete prompt['9'];
  return prompt;
}

async function run(model: string): Promise<{ status: string; progress: number }> {
  const events: EngineEvent[] = [];
  const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
  const result = await engine.run(smallRun(model), { promptId: model, onEvent: (e) => events.push(e) });
  const progress = events.filter((e) => e.type === 'progress' && e.node === '1').length;
  return { status: result.status === 'success' ? 'success' : JSON.stringify(result), progress };
}

const cached = () => readdirSync(path.join(paths.models, CONVERTED_DIR));

describe('LoadVideoModel on a source checkpoint', () => {
  it('lists diffusers folders and VidRD releases with their family and limits in /object_info', () => {
    const info = createEngine({ nodes: allNodes, paths }).objectInfo() as unknown as Record<
      string,
      { input: { required: Record<string, [string[], { option_details?: Record<string, unknown> }]> } }
    >;
    const [options, extra] = info.LoadVideoModel.input.required.model;
    expect(options).toEqual(expect.arrayContaining(['demo', 'ms-src', 'vidrd-release']));
    expect(extra.option_details?.demo).toMatchObject({ family: 'demo', limits: { size: { width: 256 } } });
  });

  it('converts on the first run (progress shown on the node), reuses the conversion after', async () => {
    const first = await run('ms-src');
    expect(first.status).toBe('success');
    expect(first.progress).toBeGreaterThan(0);
    expect(cached()).toEqual([expect.stringMatching(/^ms-src-[0-9a-f]{10}$/)]);
    const second = await run('ms-src');
    expect(second.status).toBe('success');
    expect(second.progress).toBe(0);
  });

  it('converts again when a source file changes', async () => {
    const cfg = path.join(paths.models, 'ms-src', 'scheduler', 'scheduler_config.json');
    const later = new Date(Date.now() + 5000);
    utimesSync(cfg, later, later);
    const again = await run('ms-src');
    expect(again.status).toBe('success');
    expect(again.progress).toBeGreaterThan(0);
  });

  it('a VidRD release under the models folder runs by its name', async () => {
    const r = await run('vidrd-release');
    expect(r.status).toBe('success');
    expect(existsSync(path.join(paths.output, 'vidrd-release'))).toBe(true);
  });

  it('a source whose config is broken fails validation naming the model and the field', async () => {
    const bad = path.join(paths.models, 'bad-src');
    cpSync(path.join(vectorModels, 'modelscope-tiny'), bad, { recursive: true });
    const unet = path.join(bad, 'unet', 'config.json');
    writeFileSync(unet, JSON.stringify({ _class_name: 'UNet3DConditionModel', act_fn: 'gelu' }));
    const result = await createEngine({ nodes: allNodes, paths }).validate(smallRun('bad-src'));
    expect(result.ok).toBe(false);
    const text = JSON.stringify(result);
    expect(text).toMatch(/model \\"bad-src\\".*cannot be converted: unet\/config.json.*act_fn/);
  });
});
