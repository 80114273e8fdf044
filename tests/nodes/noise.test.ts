// NoiseInit, FNRReverse and PNSNoise against the spec's formulas, computed here element by element.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fnrReverseNode } from '../../nodes/fnr-reverse.ts';
import { noiseInitNode } from '../../nodes/noise-init.ts';
import { pnsNoiseNode } from '../../nodes/pns-noise.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { npyToTensor } from '../../server/core/npy.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { makeContext, makePaths, repoRoot } from './context.ts';

const paths = makePaths();
const ctx = () => makeContext(paths).ctx;

async function runOne(def: typeof noiseInitNode, inputs: Record<string, unknown>): Promise<Tensor> {
  const res = await def.run(inputs, ctx());
  return res.outputs[0] as Tensor;
}

/** Index of [b, c, f, y, x] in a C-order [B, C, F, H, W] buffer. */
function at(shape: readonly number[], b: number, c: number, f: number, y: number, x: number): number {
  const [, C, F, H, W] = shape;
  return (((b * C + c) * F + f) * H + y) * W + x;
}

function forEach5(
  shape: readonly number[],
  fn: (b: number, c: number, f: number, y: number, x: number) => void,
) {
  const [B, C, F, H, W] = shape;
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let f = 0; f < F; f++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) fn(b, c, f, y, x);
}

const vectors = path.resolve(repoRoot, '..', 'shared', 'vectors');

describe('NoiseInit', () => {
  // PyTorch's own torch.manual_seed(seed); torch.randn(shape), saved as .npy.
  for (const [seed, frames, size, batch, file] of [
    [42, 8, 256, 1, 'randn_seed42_1x4x8x32x32.npy'],
    [123456789, 16, 64, 2, 'randn_seed123456789_2x4x16x8x8.npy'],
  ] as const) {
    it(`seed ${seed}, ${batch}×${frames} frames at ${size}×${size} is PyTorch's noise (${file})`, async () => {
      const expected = npyToTensor(new Uint8Array(readFileSync(path.join(vectors, file))));
      const noise = await runOne(noiseInitNode, {
        seed,
        frames,
        width: size,
        height: size,
        batch_size: batch,
      });
      expect(noise.shape).toEqual(expected.shape);
      let worst = 0;
      for (let i = 0; i < noise.data.length; i++)
        worst = Math.max(worst, Math.abs(noise.data[i] - expected.data[i]));
      expect(worst).toBeLessThan(1e-5);
    });
  }

  it('is torch.manual_seed(seed); torch.randn([B, 4, N, h/8, w/8])', async () => {
    const noise = await runOne(noiseInitNode, {
      seed: 1234,
      frames: 3,
      width: 24,
      height: 16,
      batch_size: 2,
    });
    expect(noise.shape).toEqual([2, 4, 3, 2, 3]);
    expect(Array.from(noise.data)).toEqual(Array.from(torchRandn([2, 4, 3, 2, 3], 1234).data));
  });

  it('gives different noise for different seeds', async () => {
    const a = await runOne(noiseInitNode, { seed: 1, frames: 2, width: 16, height: 16, batch_size: 1 });
    const b = await runOne(noiseInitNode, { seed: 2, frames: 2, width: 16, height: 16, batch_size: 1 });
    expect(Array.from(a.data)).not.toEqual(Array.from(b.data));
  });

  it('rejects a width or height that is not a multiple of 8, naming the input', async () => {
    const issues = await noiseInitNode.validate?.({ width: 30, height: 64 }, { paths });
    expect(issues).toEqual([{ input: 'width', message: expect.stringContaining('multiple of 8') }]);
    expect(await noiseInitNode.validate?.({ width: 64, height: 64 }, { paths })).toEqual([]);
  });

  it('offers the seed widget with control_after_generate and the released defaults', () => {
    const req = noiseInitNode.inputs.required;
    expect(req.seed).toMatchObject({ kind: 'INT', controlAfterGenerate: true, min: 0, max: 2 ** 53 - 1 });
    expect(req.frames).toMatchObject({ default: 8 });
    expect(req.width).toMatchObject({ default: 256, step: 8 });
    expect(req.height).toMatchObject({ default: 256, step: 8 });
    expect(req.batch_size).toMatchObject({ default: 1 });
  });
});

describe('FNRReverse', () => {
  it('reverses the frame axis: out[:, :, j] = in[:, :, N-1-j]', async () => {
    const noise = torchRandn([2, 4, 5, 2, 3], 7);
    const out = await runOne(fnrReverseNode, { noise });
    expect(out.shape).toEqual(noise.shape);
    forEach5(noise.shape, (b, c, f, y, x) => {
      expect(out.data[at(noise.shape, b, c, f, y, x)]).toBe(noise.data[at(noise.shape, b, c, 4 - f, y, x)]);
    });
  });
});

describe('PNSNoise', () => {
  const shape = [1, 4, 8, 2, 2];
  const reversed = torchRandn(shape, 99);

  it('copies frames j < M and mixes frames j ≥ M with ε seeded by seed + clip_index', async () => {
    const alpha = 4;
    const M = 3;
    const out = await runOne(pnsNoiseNode, {
      noise: reversed,
      alpha,
      reference_frames: M,
      seed: 10,
      clip_index: 2,
    });
    const eps = torchRandn(shape, 12);
    const k = Math.sqrt(1 + alpha * alpha);
    forEach5(shape, (b, c, f, y, x) => {
      const i = at(shape, b, c, f, y, x);
      if (f < M) expect(out.data[i]).toBe(reversed.data[i]);
      else expect(out.data[i]).toBeCloseTo((alpha / k) * reversed.data[i] + eps.data[i] / k, 5);
    });
  });

  it('with M = N copies every frame (no fresh noise)', async () => {
    const out = await runOne(pnsNoiseNode, {
      noise: reversed,
      alpha: 0,
      reference_frames: 8,
      seed: 0,
      clip_index: 1,
    });
    expect(Array.from(out.data)).toEqual(Array.from(reversed.data));
  });

  it('with α → ∞ equals the reversed noise (pure FNR)', async () => {
    const out = await runOne(pnsNoiseNode, {
      noise: reversed,
      alpha: 1e6,
      reference_frames: 2,
      seed: 0,
      clip_index: 1,
    });
    for (let i = 0; i < out.data.length; i++) expect(out.data[i]).toBeCloseTo(reversed.data[i], 5);
  });

  it('with α = 0 makes frames ≥ M the fresh noise ε itself', async () => {
    const out = await runOne(pnsNoiseNode, {
      noise: reversed,
      alpha: 0,
      reference_frames: 4,
      seed: 5,
      clip_index: 3,
    });
    const eps = torchRandn(shape, 8);
    forEach5(shape, (b, c, f, y, x) => {
      const i = at(shape, b, c, f, y, x);
      expect(out.data[i]).toBeCloseTo(f < 4 ? reversed.data[i] : eps.data[i], 6);
    });
  });

  it('seeds ε with seed + clip_index exactly as torch.manual_seed(seed + c) (α = 0, M = 0: ε itself)', async () => {
    const expected = npyToTensor(
      new Uint8Array(readFileSync(path.join(vectors, 'randn_seed42_1x4x8x32x32.npy'))),
    );
    const previous = torchRandn([1, 4, 8, 32, 32], 1);
    const out = await runOne(pnsNoiseNode, {
      noise: previous,
      alpha: 0,
      reference_frames: 0,
      seed: 40,
      clip_index: 2,
    });
    let worst = 0;
    for (let i = 0; i < out.data.length; i++)
      worst = Math.max(worst, Math.abs(out.data[i] - expected.data[i]));
    expect(worst).toBeLessThan(1e-5);
  });

  it('draws different fresh noise for different clips', async () => {
    const base = { noise: reversed, alpha: 4, reference_frames: 4, seed: 5 };
    const a = await runOne(pnsNoiseNode, { ...base, clip_index: 1 });
    const b = await runOne(pnsNoiseNode, { ...base, clip_index: 2 });
    expect(Array.from(a.data)).not.toEqual(Array.from(b.data));
  });

  it('fails naming reference_frames when M exceeds the clip length', async () => {
    await expect(
      runOne(pnsNoiseNode, { noise: reversed, alpha: 4, reference_frames: 9, seed: 0, clip_index: 1 }),
    ).rejects.toThrow(/reference_frames.*9.*8 frames/);
  });
});
