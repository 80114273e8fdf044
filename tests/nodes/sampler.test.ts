// DDIMSampler as a node: plain DDIM without a previous record, progress per step, interrupt per
// step, and DSG switched off by β = 0. A small closed-form stub UNet stands in for a model.
import { describe, expect, it } from 'vitest';
import { ddimSamplerNode } from '../../nodes/ddim-sampler.ts';
import { SD21_BASE_SCHEDULER_CONFIG } from '../../server/core/ddim.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import type { UNetModel } from '../../server/runtime/types.ts';
import { maxAbsDiff, plainDdim } from '../pipeline/reference.ts';
import { makeContext, makePaths } from './context.ts';

/** ε̂ = 0.1·z + 0.05·mean(text of that batch row): cheap, and the prompt matters. */
function stubUnet(dynamicBatch: boolean, onCall?: () => void): UNetModel {
  return {
    kind: 'unet',
    dynamicBatch,
    async predict(sample, _t, hidden) {
      onCall?.();
      const B = sample.shape[0];
      const per = sample.data.length / B;
      const hPer = hidden.data.length / hidden.shape[0];
      const out = new Float32Array(sample.data.length);
      for (let b = 0; b < B; b++) {
        let mean = 0;
        for (let k = 0; k < hPer; k++) mean += hidden.data[b * hPer + k];
        mean /= hPer;
        for (let k = 0; k < per; k++) out[b * per + k] = 0.1 * sample.data[b * per + k] + 0.05 * mean;
      }
      return { data: out, shape: sample.shape };
    },
  };
}

const paths = makePaths();
const positive: Tensor = { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [1, 2, 3] };
const negative: Tensor = { data: Float32Array.from([0, -1, 0, -1, 0, -1]), shape: [1, 2, 3] };
const noise = torchRandn([1, 4, 6, 2, 2], 3);
const base = {
  scheduler: SD21_BASE_SCHEDULER_CONFIG,
  positive,
  negative,
  noise,
  steps: 6,
  cfg: 7.5,
  eta: 0,
  seed: 0,
  beta: 0.4,
  reference_frames: 2,
};

async function sample(inputs: Record<string, unknown>, signal?: AbortSignal) {
  const rc = makeContext(paths, { signal });
  const res = await ddimSamplerNode.run(inputs, rc.ctx);
  const [latent, record] = res.outputs as [Tensor, unknown];
  return { latent, record, progress: rc.progress };
}

describe('DDIMSampler', () => {
  for (const dynamicBatch of [true, false]) {
    it(`without a previous record is plain DDIM with CFG (dynamic batch: ${dynamicBatch})`, async () => {
      const unet = stubUnet(dynamicBatch);
      const { latent } = await sample({ ...base, unet });
      const expected = await plainDdim({
        noise,
        positive,
        negative,
        steps: base.steps,
        cfg: base.cfg,
        config: SD21_BASE_SCHEDULER_CONFIG,
        predict: (s, t, h) => unet.predict(s, t, h),
      });
      expect(latent.shape).toEqual(noise.shape);
      expect(maxAbsDiff(latent.data, expected)).toBeLessThan(1e-4);
    });
  }

  it('reports progress (i + 1, S) after every step', async () => {
    const { progress } = await sample({ ...base, unet: stubUnet(true) });
    expect(progress).toEqual([1, 2, 3, 4, 5, 6].map((i) => [i, 6]));
  });

  it('stops at the step boundary when interrupted', async () => {
    const ac = new AbortController();
    let calls = 0;
    const unet = stubUnet(true, () => {
      calls++;
      if (calls === 2) ac.abort();
    });
    await expect(sample({ ...base, unet }, ac.signal)).rejects.toThrow();
    expect(calls).toBeLessThan(base.steps);
  });

  it('with a previous record guides the next clip (DSG), and with β = 0 changes nothing', async () => {
    const unet = stubUnet(true);
    const first = await sample({ ...base, unet });
    const next = torchRandn(noise.shape, 11);
    const plain = await sample({ ...base, unet, noise: next });
    const guided = await sample({ ...base, unet, noise: next, previous: first.record });
    // A record must be made with the β it is used with (it keeps only the steps DSG reads).
    const firstOff = await sample({ ...base, unet, beta: 0 });
    const off = await sample({ ...base, unet, noise: next, previous: firstOff.record, beta: 0 });
    expect(maxAbsDiff(guided.latent.data, plain.latent.data)).toBeGreaterThan(1e-3);
    expect(Array.from(off.latent.data)).toEqual(Array.from(plain.latent.data));
  });

  it('refuses a previous record made with other DSG settings, naming them', async () => {
    const unet = stubUnet(true);
    const first = await sample({ ...base, unet });
    await expect(sample({ ...base, unet, previous: first.record, reference_frames: 3 })).rejects.toThrow(
      /previous record/,
    );
  });

  it('fails naming reference_frames when M exceeds the clip length', async () => {
    await expect(sample({ ...base, unet: stubUnet(true), reference_frames: 7 })).rejects.toThrow(
      /reference_frames/,
    );
  });

  it('fails naming steps, before any model call, when the scheduler has no timestep for them', async () => {
    // SD 2.1-base ("leading", steps_offset 1) at the widget's maximum of 1000 steps would ask the
    // UNet for timestep 1000.
    let calls = 0;
    const unet = stubUnet(true, () => calls++);
    await expect(sample({ ...base, unet, steps: 1000 })).rejects.toThrow(
      /input "steps": steps = 1000 with timestep_spacing "leading" and steps_offset 1 gives timestep 1000/,
    );
    expect(calls).toBe(0);
    // The same steps are fine for a scheduler without the offset.
    const noOffset = { ...SD21_BASE_SCHEDULER_CONFIG, steps_offset: 0 };
    await expect(sample({ ...base, unet, steps: 1000, scheduler: noOffset })).resolves.toBeDefined();
  });

  it('names the input when a loop link carries nothing or the wrong thing', async () => {
    const unet = stubUnet(true);
    await expect(sample({ ...base, unet, noise: undefined })).rejects.toThrow(/input "noise".*nothing/);
    await expect(sample({ ...base, unet, previous: noise })).rejects.toThrow(/input "previous".*DSG_RECORD/);
  });
});
