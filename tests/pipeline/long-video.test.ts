// The shipped long-video workflow, shrunk (small generated model, 64×64, few steps), run through the
// real engine: reproducible bit for bit from its seeds, K = 1 equal to plain DDIM, one video of N·K
// frames, and nothing left behind by an interrupted run.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFilesRecursive } from '../../nodes/files.ts';
import { allNodes } from '../../nodes/index.ts';
import { npyToTensor } from '../../server/core/npy.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt, EngineEvent } from '../../server/engine/types.ts';
import { applySets } from '../../server/cli.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import { makeTestModel } from '../helpers/models.ts';
import { makePaths } from '../nodes/context.ts';
import { probeVideo } from '../helpers/ffprobe.ts';
import { maxAbsDiff, plainDdim } from './reference.ts';
import { idsOf, readWorkflow, saveSamplerLatents, shrink } from './workflow.ts';

const paths = makePaths('rdflow-pipeline-');
const N = 8;
const SIZE = 64;
const STEPS = 6;
const small = { model: 'tiny', steps: STEPS, size: SIZE, frames: N };

beforeAll(async () => {
  await makeTestModel(path.join(paths.models, 'tiny'));
});
afterAll(() => paths.cleanup());

async function runPrompt(
  prompt: ApiPrompt,
  opts: { signal?: AbortSignal; onEvent?: (e: EngineEvent) => void } = {},
) {
  // A fresh engine per run: a second run must recompute, not hit the first one's cache.
  const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
  return engine.run(prompt, { promptId: `p${Math.random()}`, ...opts });
}

/** The .npy files a run's SaveLatent wrote under `dir`, in the order written. */
function savedLatents(dir: string): Buffer[] {
  const full = path.join(paths.output, dir);
  return readdirSync(full)
    .filter((f) => f.endsWith('.npy'))
    .sort()
    .map((f) => readFileSync(path.join(full, f)));
}

describe('vidrd-long-video.json on a small model', () => {
  it('runs 3 clips, reproduced bit for bit by a second run with the same seeds', async () => {
    const make = (tag: string) =>
      saveSamplerLatents(
        shrink(readWorkflow('vidrd-long-video.json'), { ...small, clips: 3, prefix: tag }),
        tag,
      );
    const first = await runPrompt(make('repro1'));
    expect(first.status).toBe('success');
    const second = await runPrompt(make('repro2'));
    expect(second.status).toBe('success');

    const a = savedLatents('repro1');
    const b = savedLatents('repro2');
    expect(a).toHaveLength(3);
    expect(b).toHaveLength(3);
    for (let c = 0; c < 3; c++) expect(Buffer.compare(a[c], b[c])).toBe(0);
    // Three different clips, each a [1, 4, N, h, w] latent.
    expect(Buffer.compare(a[0], a[1])).not.toBe(0);
    expect(Buffer.compare(a[1], a[2])).not.toBe(0);
    expect(npyToTensor(new Uint8Array(a[0])).shape).toEqual([1, 4, N, SIZE / 8, SIZE / 8]);

    // One MP4 and one GIF, each N·K frames at 4 fps.
    const files = await listFilesRecursive(path.join(paths.output, 'repro1'));
    const mp4 = files.filter((f) => f.endsWith('.mp4'));
    const gif = files.filter((f) => f.endsWith('.gif'));
    expect(mp4).toHaveLength(1);
    expect(gif).toHaveLength(1);
    expect(await probeVideo(path.join(paths.output, 'repro1', mp4[0]))).toMatchObject({
      frames: N * 3,
      fps: 4,
      codec: 'h264',
      width: SIZE,
      height: SIZE,
    });
    expect((await probeVideo(path.join(paths.output, 'repro1', gif[0]))).frames).toBe(N * 3);
  });

  it('with K = 1 equals plain DDIM from NoiseInit’s noise, and equals single-clip.json', async () => {
    const loop = saveSamplerLatents(
      shrink(readWorkflow('vidrd-long-video.json'), { ...small, clips: 1, prefix: 'k1' }),
      'k1',
    );
    expect((await runPrompt(loop)).status).toBe('success');
    const single = saveSamplerLatents(
      shrink(readWorkflow('single-clip.json'), { ...small, prefix: 'single' }),
      'single',
    );
    expect((await runPrompt(single)).status).toBe('success');
    const [k1] = savedLatents('k1');
    const [one] = savedLatents('single');
    expect(Buffer.compare(k1, one)).toBe(0);

    const wf = readWorkflow('vidrd-long-video.json');
    const seed = wf['4'].inputs.seed as number;
    const model = await getRuntime().loadModel(path.join(paths.models, 'tiny'));
    const positive = await model.textEncoder.encode(wf['2'].inputs.text as string);
    const negative = await model.textEncoder.encode(wf['3'].inputs.text as string);
    const expected = await plainDdim({
      noise: torchRandn([1, 4, N, SIZE / 8, SIZE / 8], seed),
      positive,
      negative,
      steps: STEPS,
      cfg: wf['6'].inputs.cfg as number,
      config: model.schedulerConfig,
      predict: (s, t, h) => model.unet.predict(s, t, h),
    });
    const got = npyToTensor(new Uint8Array(k1));
    let scale = 0;
    for (const v of expected) scale = Math.max(scale, Math.abs(v));
    expect(maxAbsDiff(got.data, expected)).toBeLessThan(1e-5 * Math.max(1, scale));
  });

  it('leaves no video in the output folder when interrupted during clip 2', async () => {
    const ac = new AbortController();
    const prompt = shrink(readWorkflow('vidrd-long-video.json'), { ...small, clips: 3, prefix: 'cut' });
    const writers = idsOf(prompt, 'VideoWrite');
    const clipsWritten: unknown[] = [];
    const result = await runPrompt(prompt, {
      signal: ac.signal,
      onEvent: (e) => {
        // Both writers have streamed clip 1 into their encoders when clip 2's sampler starts.
        if (e.type === 'executed' && writers.includes(e.node)) clipsWritten.push(...(e.output.clips ?? []));
        if (e.type === 'progress' && e.iteration === 1 && e.value === 2) ac.abort();
      },
    });
    expect(result.status).toBe('interrupted');
    expect(clipsWritten).toEqual([
      { iteration: 0, iterations: 3, frames: N },
      { iteration: 0, iterations: 3, frames: N },
    ]);
    // No final file and no temporary one.
    expect(await listFilesRecursive(path.join(paths.output, 'cut'))).toEqual([]);
  });

  it('fails validation on a broken model folder, naming the missing file, before running', async () => {
    const dir = path.join(paths.models, 'broken');
    await makeTestModel(dir);
    const unetFile = (await listFilesRecursive(dir)).find(
      (f) => f.startsWith('unet/') && f.endsWith('.onnx'),
    );
    expect(unetFile).toBeDefined();
    rmSync(path.join(dir, unetFile!));
    const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
    const v = await engine.validate(
      shrink(readWorkflow('vidrd-long-video.json'), { ...small, model: 'broken' }),
    );
    expect(v.ok).toBe(false);
    if (v.ok) return;
    const loader = Object.entries(readWorkflow('vidrd-long-video.json')).find(
      ([, n]) => n.class_type === 'LoadVideoModel',
    )![0];
    const messages = v.nodeErrors[loader]?.errors.map((e) => `${e.message} ${e.details}`).join('\n');
    expect(messages).toContain(path.basename(unetFile!));
  });

  it('on the demo model (2 clips, 10 steps) writes a 256×256 MP4 and GIF of N·K frames at 4 fps', async () => {
    const wf = readWorkflow('vidrd-long-video.json');
    const prompt = applySets(wf, [
      ...idsOf(wf, 'DDIMSampler').map((id) => `${id}.steps=10`),
      ...idsOf(wf, 'LoopStart').map((id) => `${id}.iterations=2`),
      ...idsOf(wf, 'VideoWrite').map((id) => `${id}.filename_prefix=demo/video`),
    ]);
    const previews: number[] = [];
    const result = await runPrompt(prompt, {
      onEvent: (e) => {
        if (e.type === 'preview') previews.push(e.data.length);
      },
    });
    expect(result).toMatchObject({ status: 'success' });
    // Each decoded clip is previewed as soon as it exists.
    expect(previews).toHaveLength(2);
    const files = await listFilesRecursive(path.join(paths.output, 'demo'));
    expect(files.map((f) => path.extname(f)).sort()).toEqual(['.gif', '.mp4']);
    for (const f of files) {
      expect(await probeVideo(path.join(paths.output, 'demo', f))).toMatchObject({
        frames: 8 * 2,
        fps: 4,
        width: 256,
        height: 256,
      });
    }
  });
});
