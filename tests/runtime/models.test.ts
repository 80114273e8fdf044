// Every test-model variant loads and runs: the text encoder gives [1, L, D] float32, the UNet the
// shape of its sample in float32, the VAE frames [B·F, H, W, 3] in [0, 1] — whatever ids, timestep,
// batch axis or float type the ONNX files declare.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { createRuntime, type ModelRuntime } from '../../server/runtime/index.ts';
import type { VideoModel } from '../../server/runtime/types.ts';
import { TEST_VARIANTS, makeTestModel, type TestVariantName } from '../helpers/models.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-models-'));
const runtime: ModelRuntime = createRuntime();
afterAll(async () => {
  await runtime.close();
  rmSync(tmp, { recursive: true, force: true });
});

const loaded = new Map<string, Promise<VideoModel>>();
function model(variant: TestVariantName): Promise<VideoModel> {
  let m = loaded.get(variant);
  if (!m) {
    m = makeTestModel(path.join(tmp, variant), variant).then((dir) => runtime.loadModel(dir));
    loaded.set(variant, m);
  }
  return m;
}

const F = 4;
const h = 8;

/** Stacks [1,L,D] tensors into [n,L,D]. */
function stack(...ts: Tensor[]): Tensor {
  const data = new Float32Array(ts.length * ts[0].data.length);
  ts.forEach((t, i) => data.set(t.data, i * t.data.length));
  return { data, shape: [ts.length, ts[0].shape[1], ts[0].shape[2]] };
}

function rows(t: Tensor, i: number): Float32Array {
  const n = t.data.length / t.shape[0];
  return t.data.subarray(i * n, (i + 1) * n);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const WIDTH: Record<TestVariantName, number> = {
  tiny: 32,
  'ids-int32': 32,
  'timestep-float-scalar': 32,
  'timestep-int-one': 32,
  sd2: 1024,
  sd1: 768,
  fp16: 32,
  'fixed-batch': 32,
  external: 32,
  slow: 32,
};

describe.each(Object.keys(TEST_VARIANTS) as TestVariantName[])('variant %s', (variant) => {
  it('encodes text, predicts with the UNet and decodes with the VAE', async () => {
    const m = await model(variant);
    const cond = await m.textEncoder.encode('a red cat on the beach');
    expect(cond.shape).toEqual([1, 77, WIDTH[variant]]);
    expect(cond.data).toBeInstanceOf(Float32Array);
    expect(m.unet.dynamicBatch).toBe(variant !== 'fixed-batch');
    const B = m.unet.dynamicBatch ? 2 : 1;
    const sample = torchRandn([B, 4, F, h, h], 7);
    const hidden = B === 2 ? stack(await m.textEncoder.encode('watermark'), cond) : cond;
    const out = await m.unet.predict(sample, 981, hidden);
    expect(out.shape).toEqual([B, 4, F, h, h]);
    expect(out.data).toBeInstanceOf(Float32Array);
    expect(out.data.every(Number.isFinite)).toBe(true);
    const images = await m.vae.decode(out, 3);
    expect(images.shape).toEqual([B * F, 8 * h, 8 * h, 3]);
    expect(images.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(m.schedulerConfig.beta_schedule).toBe('scaled_linear');
    expect(m.vae.scalingFactor).toBe(0.18215);
  });
});

describe('model boundary', () => {
  it('feeds int32 and int64 input_ids alike', async () => {
    const [a, b] = await Promise.all([model('tiny'), model('ids-int32')]);
    const [ea, eb] = await Promise.all([a.textEncoder.encode('a dog'), b.textEncoder.encode('a dog')]);
    expect(maxAbsDiff(ea.data, eb.data)).toBe(0);
    // A different prompt is a different conditioning (the ids reach the model).
    expect(maxAbsDiff(ea.data, (await a.textEncoder.encode('a cat')).data)).toBeGreaterThan(0);
  });

  it('feeds the timestep as int64 [batch], float32 [] and int64 [1] with the same result', async () => {
    const cond = await (await model('tiny')).textEncoder.encode('a car');
    const sample = torchRandn([1, 4, F, h, h], 3);
    const outs = await Promise.all(
      (['tiny', 'timestep-float-scalar', 'timestep-int-one'] as const).map(async (v) =>
        (await model(v)).unet.predict(sample, 501, cond),
      ),
    );
    expect(maxAbsDiff(outs[0].data, outs[1].data)).toBe(0);
    expect(maxAbsDiff(outs[0].data, outs[2].data)).toBe(0);
    const other = await (await model('tiny')).unet.predict(sample, 21, cond);
    expect(maxAbsDiff(outs[0].data, other.data)).toBeGreaterThan(0);
  });

  it('runs a float16 UNet with float32 tensors outside, agreeing with float32 within fp16 precision', async () => {
    const [f32, f16] = await Promise.all([model('tiny'), model('fp16')]);
    const cond = await f32.textEncoder.encode('a dog on the beach');
    const sample = torchRandn([1, 4, F, h, h], 11);
    const a = await f32.unet.predict(sample, 761, cond);
    const b = await f16.unet.predict(sample, 761, cond);
    expect(b.data).toBeInstanceOf(Float32Array);
    const d = maxAbsDiff(a.data, b.data);
    expect(d).toBeGreaterThan(0); // it did run in half precision
    expect(d).toBeLessThan(2e-2);
  });

  it('runs CFG as one batch of 2 equal to two batch-1 calls when the batch axis is dynamic', async () => {
    const m = await model('tiny');
    const [neg, pos] = [await m.textEncoder.encode('watermark'), await m.textEncoder.encode('a red car')];
    const z = torchRandn([1, 4, F, h, h], 5);
    const both = await m.unet.predict(
      { data: new Float32Array([...z.data, ...z.data]), shape: [2, 4, F, h, h] },
      401,
      stack(neg, pos),
    );
    const u = await m.unet.predict(z, 401, neg);
    const c = await m.unet.predict(z, 401, pos);
    expect(maxAbsDiff(rows(both, 0), u.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(rows(both, 1), c.data)).toBeLessThan(1e-5);
  });

  it('refuses batch 2 on a fixed-batch UNet, naming model, input and shapes', async () => {
    const m = await model('fixed-batch');
    const cond = await m.textEncoder.encode('a cat');
    await expect(m.unet.predict(torchRandn([2, 4, F, h, h], 1), 1, stack(cond, cond))).rejects.toThrow(
      'fixed-batch/unet/model.onnx: input "sample" expects shape [1, 4, frames, height, width], got [2, 4, 4, 8, 8]',
    );
  });

  it('leaves the caller’s tensors intact (feeds are copied or converted, never moved)', async () => {
    const m = await model('tiny');
    const cond = await m.textEncoder.encode('a cat');
    const sample = torchRandn([1, 4, F, h, h], 2);
    const copy = sample.data.slice();
    await m.unet.predict(sample, 1, cond);
    await m.vae.decode(sample, 2);
    expect(sample.data).toEqual(copy);
  });

  it('loads weights from an external data file beside the model', async () => {
    const [a, b] = await Promise.all([model('tiny'), model('external')]);
    expect(existsSync(path.join(tmp, 'external', 'unet', 'weights.bin'))).toBe(true);
    const cond = await a.textEncoder.encode('a cat');
    const z = torchRandn([1, 4, F, h, h], 9);
    expect(
      maxAbsDiff((await a.unet.predict(z, 41, cond)).data, (await b.unet.predict(z, 41, cond)).data),
    ).toBe(0);
  });
});

describe('VAE decoding', () => {
  it('gives the same frames whatever the chunk size, in batch-major frame order', async () => {
    const m = await model('tiny');
    const z = torchRandn([2, 4, 3, h, h], 4);
    const all = await m.vae.decode(z, 8);
    for (const chunk of [1, 4]) expect(maxAbsDiff((await m.vae.decode(z, chunk)).data, all.data)).toBe(0);
    // Frame 4 of the output is batch 1, frame 1: decoding that frame alone gives it.
    const one = new Float32Array(4 * h * h);
    for (let c = 0; c < 4; c++)
      one.set(z.data.subarray(((1 * 4 + c) * 3 + 1) * h * h, ((1 * 4 + c) * 3 + 2) * h * h), c * h * h);
    const single = await m.vae.decode({ data: one, shape: [1, 4, 1, h, h] }, 1);
    expect(maxAbsDiff(rows(all, 4), single.data)).toBe(0);
  });

  it('decodes z / scaling_factor as vae_decoder/config.json gives it', async () => {
    const base = await model('tiny');
    const dir = await makeTestModel(path.join(tmp, 'scaled'), 'tiny');
    writeFileSync(path.join(dir, 'vae_decoder/config.json'), JSON.stringify({ scaling_factor: 0.5 }));
    const scaled = await runtime.loadModel(dir);
    expect(scaled.vae.scalingFactor).toBe(0.5);
    const z = torchRandn([1, 4, 2, h, h], 8);
    // (z · 0.5/0.18215) / 0.5 = z / 0.18215
    const z2 = { data: z.data.map((v) => (v * 0.5) / 0.18215), shape: z.shape };
    expect(
      maxAbsDiff((await scaled.vae.decode(z2, 2)).data, (await base.vae.decode(z, 2)).data),
    ).toBeLessThan(1e-5);
  });

  it('clamps x/2 + 0.5 to [0, 1]', async () => {
    const m = await model('tiny');
    const z = torchRandn([1, 4, 1, h, h], 6);
    const loud = await m.vae.decode({ data: z.data.map((v) => v * 50), shape: z.shape }, 1);
    expect(loud.data.some((v) => v === 0)).toBe(true);
    expect(loud.data.some((v) => v === 1)).toBe(true);
    expect(loud.data.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});
