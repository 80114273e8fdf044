// A model's family decides what it can generate, and validation says so before anything runs:
// the demo model takes 8-frame 256×256 clips only, a public ONNX export multiples of 64 pixels,
// a converted ModelScope or VidRD model any frame count at multiples of 8 pixels.
import { cpSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { applySets } from '../../server/cli.ts';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { convertModel } from '../../server/runtime/convert/index.ts';
import { describeLimits, readModelInfo } from '../../server/runtime/families/info.ts';
import { ensureDemoModel } from '../../server/runtime/demo/index.ts';
import { modelsDir as vectorModels } from '../helpers/convert.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow } from '../pipeline/workflow.ts';

const paths = makePaths('rdflow-limits-');
let ms = '';
beforeAll(async () => {
  ms = path.join(paths.models, 'ms');
  await convertModel(path.join(vectorModels, 'modelscope-tiny'), ms);
  cpSync(path.join(vectorModels, 'modelscope-tiny-onnx-fp16'), path.join(paths.models, 'export'), {
    recursive: true,
  });
  await ensureDemoModel(paths.models);
});
afterAll(() => paths.cleanup());

/** The shipped workflow's messages for a model and clip (validation only, nothing runs). */
async function problems(model: string, sets: string[]): Promise<string[]> {
  const prompt: ApiPrompt = applySets(readWorkflow('vidrd-long-video.json'), [`1.model=${model}`, ...sets]);
  const result = await createEngine({ nodes: allNodes, paths }).validate(prompt);
  if (result.ok) return [];
  return Object.entries(result.nodeErrors).flatMap(([id, e]) =>
    e.errors.map((x) => `${id} ${e.class_type} ${x.extra_info?.input_name ?? ''}: ${x.details}`),
  );
}

describe('model families and their limits', () => {
  it('a converted folder records its family and limits', () => {
    const info = readModelInfo(ms);
    expect(info).toEqual({
      family: 'modelscope',
      limits: { latentChannels: 4, sizeMultiple: 8, frames: { min: 1 } },
    });
    expect(describeLimits(info.limits)).toBe('1+ frames, sizes ×8 px');
    expect(readModelInfo(path.join(paths.models, 'demo')).family).toBe('demo');
    expect(readModelInfo(path.join(paths.models, 'export')).family).toBe('onnx');
  });

  it('the demo model refuses width 248 and 16 frames before the run, naming node, input and allowed values', async () => {
    const size = await problems('demo', ['4.width=248']);
    expect(size).toEqual([
      expect.stringMatching(
        /^6 DDIMSampler noise: Input 'noise': the demo model takes 256 × 256 pixels only, but the clip is 248 × 256/,
      ),
    ]);
    const frames = await problems('demo', ['4.frames=16']);
    expect(frames).toEqual([
      expect.stringMatching(
        /^6 DDIMSampler noise: Input 'noise': the demo model takes clips of exactly 8 frames, but the clip has 16/,
      ),
    ]);
  });

  it('a public ONNX export takes multiples of 64 pixels', async () => {
    const p = await problems('export', ['4.width=72', '4.height=64', '5.iterations=1']);
    expect(p).toEqual([
      expect.stringMatching(
        /the onnx model takes widths and heights that are multiples of 64 pixels, but the clip is 72 × 64/,
      ),
    ]);
    expect(await problems('export', ['4.width=128', '4.height=64'])).toEqual([]);
  });

  it('a converted ModelScope model takes any frame count and multiples of 8 pixels', async () => {
    expect(await problems(ms, ['4.width=72', '4.height=40', '4.frames=13'])).toEqual([]);
  });
});
