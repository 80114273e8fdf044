// Each model variant through the whole long-video loop: text → 3 VidRD clips (FNR + PNS + DSG,
// CFG) → frames. Variants that differ only in how the ONNX files declare their inputs (ids type,
// timestep type/shape, fixed batch) must give the same video as the reference variant; the
// float16 UNet a close one.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSchedulerConfig } from '../../server/core/ddim.ts';
import { sampleClip } from '../../server/core/sampler.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { flipFrames, pnsNoise, type DsgRecord } from '../../server/core/vidrd.ts';
import { createRuntime } from '../../server/runtime/index.ts';
import { makeTestModel, type TestVariantName } from '../helpers/models.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-runtime-pipeline-'));
const runtime = createRuntime();
afterAll(async () => {
  await runtime.close();
  rmSync(tmp, { recursive: true, force: true });
});

const N = 4; // frames per clip
const M = 2; // reference frames
const K = 3; // clips
const S = 4; // DDIM steps
const SIZE = 8; // latent h = w

/** Runs the VidRD loop on a variant's model; returns the decoded video [K·N, 64, 64, 3]. */
async function longVideo(variant: TestVariantName): Promise<{ video: Tensor; calls: number[] }> {
  const m = await runtime.loadModel(await makeTestModel(path.join(tmp, variant), variant));
  const positive = await m.textEncoder.encode('a red car on the beach');
  const negative = await m.textEncoder.encode('watermark');
  const scheduler = parseSchedulerConfig(m.schedulerConfig);
  const calls: number[] = []; // batch size of each UNet call
  const denoise = (s: Tensor, t: number, h: Tensor, signal?: AbortSignal) => {
    calls.push(s.shape[0]);
    return m.unet.predict(s, t, h, signal);
  };
  const shape = [1, 4, N, SIZE, SIZE];
  let noise = torchRandn(shape, 42);
  let previous: DsgRecord | undefined;
  const frames: Tensor[] = [];
  for (let c = 0; c < K; c++) {
    if (previous) noise = pnsNoise(flipFrames(previous.first), torchRandn(shape, 7 + c), 4, M);
    const clip = await sampleClip({
      noise,
      positive,
      negative,
      steps: S,
      cfg: 7.5,
      eta: 0,
      seed: 0,
      scheduler,
      previous,
      beta: 0.5,
      referenceFrames: M,
      denoise,
      dynamicBatch: m.unet.dynamicBatch,
    });
    previous = clip.record;
    frames.push(await m.vae.decode(clip.latent, 3));
  }
  const [, H, W] = frames[0].shape;
  const data = new Float32Array(K * N * H * W * 3);
  frames.forEach((f, c) => data.set(f.data, c * f.data.length));
  return { video: { data, shape: [K * N, H, W, 3] }, calls };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('long video on each model variant', () => {
  let reference: Float32Array;

  it('tiny: K·N frames in [0, 1], CFG as one batch of 2 per step', async () => {
    const { video, calls } = await longVideo('tiny');
    expect(video.shape).toEqual([K * N, 8 * SIZE, 8 * SIZE, 3]);
    expect(video.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(calls).toEqual(new Array(K * S).fill(2));
    reference = video.data;
  });

  it.each(['ids-int32', 'timestep-float-scalar', 'timestep-int-one', 'external'] as const)(
    '%s: the same video as tiny',
    async (variant) => {
      const { video } = await longVideo(variant);
      expect(maxAbsDiff(video.data, reference)).toBe(0);
    },
  );

  it('fixed-batch: two batch-1 UNet calls per step, the same video up to float rounding', async () => {
    const { video, calls } = await longVideo('fixed-batch');
    expect(calls).toEqual(new Array(2 * K * S).fill(1));
    expect(maxAbsDiff(video.data, reference)).toBeLessThan(1e-4);
  });

  it('fp16: close to the float32 video', async () => {
    const { video } = await longVideo('fp16');
    expect(maxAbsDiff(video.data, reference)).toBeLessThan(5e-2);
  });

  it.each(['sd1', 'sd2'] as const)('%s (real hidden widths): a video of K·N frames', async (variant) => {
    const { video } = await longVideo(variant);
    expect(video.shape).toEqual([K * N, 8 * SIZE, 8 * SIZE, 3]);
    expect(video.data.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});
