// The shipped workflows: the released VidRD defaults, the loop wired as the spec's loop, valid for
// the engine, and each canvas copy converting to exactly its API file.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { createEngine, toApiPrompt } from '../../server/engine/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { makeTestModel } from '../helpers/models.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow, repoRoot, shrink } from './workflow.ts';

const paths = makePaths('rdflow-workflows-');
beforeAll(async () => {
  await makeTestModel(path.join(paths.models, 'tiny'));
});
afterAll(() => paths.cleanup());

/** The one node of `classType` (or the one whose input `name` equals `value`). */
function nodeOf(p: ApiPrompt, classType: string, where?: [string, unknown]): [string, ApiPrompt[string]] {
  const found = Object.entries(p).filter(
    ([, n]) => n.class_type === classType && (where === undefined || n.inputs[where[0]] === where[1]),
  );
  expect(found, `${classType} ${where?.join('=') ?? ''}`).toHaveLength(1);
  return found[0];
}

describe('workflows/vidrd-long-video.json', () => {
  const wf = readWorkflow('vidrd-long-video.json');

  it('carries the released defaults: N=8, M=4, α=4, β=0.4, S=50, cfg=10, "watermark", 256×256, 4 fps', () => {
    const [, noise] = nodeOf(wf, 'NoiseInit');
    expect(noise.inputs).toMatchObject({ frames: 8, width: 256, height: 256, batch_size: 1 });
    const [, sampler] = nodeOf(wf, 'DDIMSampler');
    expect(sampler.inputs).toMatchObject({ steps: 50, cfg: 10, eta: 0, beta: 0.4, reference_frames: 4 });
    const [, pns] = nodeOf(wf, 'PNSNoise');
    expect(pns.inputs).toMatchObject({ alpha: 4, reference_frames: 4 });
    const [negId] = nodeOf(wf, 'TextEncode', ['text', 'watermark']);
    expect(sampler.inputs.negative).toEqual([negId, 0]);
    const [, loader] = nodeOf(wf, 'LoadVideoModel');
    expect(loader.inputs.model).toBe('demo');
    const [, loop] = nodeOf(wf, 'LoopStart');
    expect(loop.inputs.iterations).toBeGreaterThanOrEqual(6);
    const writers = Object.values(wf).filter((n) => n.class_type === 'VideoWrite');
    expect(writers.map((n) => n.inputs.format).sort()).toEqual(['gif', 'mp4']);
    for (const w of writers) expect(w.inputs.fps).toBe(4);
  });

  it('wires the loop of the spec: carried noise and record in, PNS(FNR(noise)) and the record out', () => {
    const [loopId] = nodeOf(wf, 'LoopStart');
    const [noiseId] = nodeOf(wf, 'NoiseInit');
    const [samplerId, sampler] = nodeOf(wf, 'DDIMSampler');
    const [fnrId, fnr] = nodeOf(wf, 'FNRReverse');
    const [mathId, math] = nodeOf(wf, 'IntMath');
    const [pnsId, pns] = nodeOf(wf, 'PNSNoise');
    const [, end] = nodeOf(wf, 'LoopEnd');
    const [decodeId, decode] = nodeOf(wf, 'VAEDecode');
    // LoopStart outputs: flow 0, index 1, value1 2, value2 3.
    expect(wf[loopId].inputs.initial_value1).toEqual([noiseId, 0]);
    expect(sampler.inputs.noise).toEqual([loopId, 2]);
    expect(sampler.inputs.previous).toEqual([loopId, 3]);
    expect(fnr.inputs.noise).toEqual([loopId, 2]);
    expect(math.inputs).toEqual({ a: [loopId, 1], b: 1, op: 'add' });
    expect(pns.inputs.noise).toEqual([fnrId, 0]);
    expect(pns.inputs.clip_index).toEqual([mathId, 0]);
    expect(end.inputs).toEqual({ flow: [loopId, 0], value1: [pnsId, 0], value2: [samplerId, 1] });
    expect(decode.inputs.latent).toEqual([samplerId, 0]);
    for (const w of Object.values(wf).filter((n) => n.class_type === 'VideoWrite')) {
      expect(w.inputs.images).toEqual([decodeId, 0]);
    }
  });

  it('validates in the engine (on a small model) with both video writers as outputs', async () => {
    const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
    const v = await engine.validate(shrink(wf, { model: 'tiny', steps: 4, size: 64 }));
    expect(v).toMatchObject({ ok: true });
    if (!v.ok) return;
    const writers = Object.entries(wf).filter(([, n]) => n.class_type === 'VideoWrite');
    for (const [id] of writers) expect(v.outputs).toContain(id);
  });
});

describe('the shipped workflows as they ship (demo model, generated into a temp models folder)', () => {
  for (const name of ['vidrd-long-video.json', 'single-clip.json', 'vidrd-scenes.json']) {
    it(`${name} validates unchanged`, async () => {
      const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
      expect(await engine.validate(readWorkflow(name))).toMatchObject({ ok: true });
    });
  }
});

describe('workflows/vidrd-scenes.json', () => {
  const wf = readWorkflow('vidrd-scenes.json');

  it('is the long-video loop with its positive prompt a schedule of scenes over the clip index', () => {
    const [loopId, loop] = nodeOf(wf, 'LoopStart');
    const [scheduleId, schedule] = nodeOf(wf, 'PromptSchedule');
    const [, sampler] = nodeOf(wf, 'DDIMSampler');
    expect(schedule.inputs.clip_index).toEqual([loopId, 1]);
    expect(sampler.inputs.positive).toEqual([scheduleId, 0]);
    expect(String(schedule.inputs.schedule).split('\n').length).toBeGreaterThanOrEqual(2);
    expect(loop.inputs.iterations).toBeGreaterThanOrEqual(6);
  });

  it('runs on a small model: 3 clips, one scene change with a blend', async () => {
    const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
    const p = shrink(wf, { model: 'tiny', steps: 2, size: 64, clips: 3, prefix: 'scenes' });
    const [id] = nodeOf(p, 'PromptSchedule');
    p[id].inputs.schedule = '0: a red car\n1: a dog on the beach';
    const r = await engine.run(p, { promptId: 'scenes' });
    engine.close();
    expect(r.status).toBe('success');
  }, 60_000);
});

describe('canvas copies', () => {
  for (const name of ['vidrd-long-video', 'single-clip', 'vidrd-scenes']) {
    const canvasFile = path.join(repoRoot, 'workflows', `${name}.canvas.json`);
    it.skipIf(!existsSync(canvasFile) && name !== 'vidrd-long-video')(
      `toApiPrompt(${name}.canvas.json) equals ${name}.json`,
      () => {
        const canvas: unknown = JSON.parse(readFileSync(canvasFile, 'utf8'));
        expect(toApiPrompt(canvas, allNodes)).toEqual(readWorkflow(`${name}.json`));
      },
    );
  }
});

describe('node types', () => {
  it('include every class of the issue with its public input names', () => {
    const byName = new Map(allNodes.map((d) => [d.name, d]));
    const expected: Record<string, string[]> = {
      LoadVideoModel: ['model', 'provider'],
      TextEncode: ['text_encoder', 'text'],
      NoiseInit: ['seed', 'frames', 'width', 'height', 'batch_size'],
      FNRReverse: ['noise'],
      PNSNoise: ['noise', 'alpha', 'reference_frames', 'seed', 'clip_index'],
      DDIMSampler: [
        'unet',
        'scheduler',
        'positive',
        'negative',
        'noise',
        'steps',
        'cfg',
        'eta',
        'seed',
        'previous',
        'beta',
        'reference_frames',
      ],
      VAEDecode: ['vae', 'latent', 'frames_per_batch'],
      VideoWrite: ['images', 'fps', 'format', 'filename_prefix'],
      SaveLatent: ['latent', 'filename_prefix'],
      LoadLatent: ['file'],
      LoopStart: ['iterations'],
      LoopEnd: ['flow'],
      IntMath: ['a', 'b', 'op'],
    };
    for (const [cls, names] of Object.entries(expected)) {
      const def = byName.get(cls);
      expect(def, cls).toBeDefined();
      const all = { ...def!.inputs.required, ...def!.inputs.optional };
      for (const n of names) expect(all, `${cls}.${n}`).toHaveProperty(n);
    }
    expect(new Set(allNodes.map((d) => d.name)).size).toBe(allNodes.length);
  });
});
