import { describe, expect, it } from 'vitest';
import { ddimSchedule, ddimStep, ddimTimesteps, parseSchedulerConfig } from '../../server/core/ddim.ts';
import type { DenoiseFn, SampleClipOptions } from '../../server/core/sampler.ts';
import { sampleClip } from '../../server/core/sampler.ts';
import { clone, getFrames, numel, tensor } from '../../server/core/tensor.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { cfgCombine, dsgActive, flipFrames, pnsNoise, recordBytes } from '../../server/core/vidrd.ts';
import { readVectorJson } from './vectors.ts';

const scheduler = parseSchedulerConfig(
  (readVectorJson('ddim.json') as { scheduler_config: unknown }).scheduler_config,
);
const shape = [1, 2, 8, 2, 2]; // B, C, N = 8 frames, h, w
const N = 8;
const negative = tensor(Float32Array.from([0.5, -0.25, 0.125, 1]), [1, 2, 2]);
const positive = tensor(Float32Array.from([-1, 0.75, 0.3, 0.2]), [1, 2, 2]);

// A stand-in UNet: each batch item gets 0.3·x + 0.05·mean(its conditioning) + 0.001·t, so the
// conditioning order and the timestep both show in the output.
function fakeUnet(x: Tensor, t: number, hidden: Tensor): Tensor {
  const B = x.shape[0];
  expect(hidden.shape[0]).toBe(B);
  const per = numel(x.shape) / B;
  const condPer = numel(hidden.shape) / B;
  const out = new Float32Array(x.data.length);
  for (let b = 0; b < B; b++) {
    let mean = 0;
    for (let k = 0; k < condPer; k++) mean += hidden.data[b * condPer + k] / condPer;
    for (let k = b * per; k < (b + 1) * per; k++) out[k] = 0.3 * x.data[k] + 0.05 * mean + 0.001 * t;
  }
  return { data: out, shape: [...x.shape] };
}

interface Call {
  readonly sample: Tensor;
  readonly t: number;
  readonly hidden: Tensor;
}

function recordingUnet(): { calls: Call[]; denoise: DenoiseFn } {
  const calls: Call[] = [];
  const denoise: DenoiseFn = (sample, t, hidden) => {
    calls.push({ sample: clone(sample), t, hidden: clone(hidden) });
    return Promise.resolve(fakeUnet(sample, t, hidden));
  };
  return { calls, denoise };
}

function baseOptions(overrides: Partial<SampleClipOptions>): SampleClipOptions {
  return {
    noise: torchRandn(shape, 1),
    positive,
    negative,
    steps: 10,
    cfg: 7.5,
    eta: 0,
    seed: 100,
    scheduler,
    beta: 0.4,
    referenceFrames: 4,
    denoise: recordingUnet().denoise,
    dynamicBatch: true,
    ...overrides,
  };
}

// Plain DDIM written out from the spec's formulas, independent of ddimStep.
function handDdim(noise: Tensor, S: number, w: number, eta: number, seed: number): Tensor {
  const { alphasCumprod, finalAlphaCumprod } = ddimSchedule(scheduler);
  let z = clone(noise);
  for (const [i, t] of ddimTimesteps(scheduler, S).entries()) {
    const eU = fakeUnet(z, t, negative);
    const eC = fakeUnet(z, t, positive);
    const prev = t - 1000 / S;
    const aT = alphasCumprod[t];
    const aPrev = prev >= 0 ? alphasCumprod[prev] : finalAlphaCumprod;
    const sigma = eta * Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev));
    const noiseI = torchRandn(noise.shape, seed + i);
    const next = new Float32Array(z.data.length);
    for (let k = 0; k < next.length; k++) {
      const e = eU.data[k] + w * (eC.data[k] - eU.data[k]);
      const x0 = (z.data[k] - Math.sqrt(1 - aT) * e) / Math.sqrt(aT);
      next[k] =
        Math.sqrt(aPrev) * x0 +
        Math.sqrt(1 - aPrev - sigma * sigma) * e +
        (eta > 0 ? sigma * noiseI.data[k] : 0);
    }
    z = { data: next, shape: [...noise.shape] };
  }
  return z;
}

function maxDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let k = 0; k < a.data.length; k++) m = Math.max(m, Math.abs(a.data[k] - b.data[k]));
  return m;
}

describe('sampleClip without a previous record is plain DDIM (K = 1)', () => {
  for (const eta of [0, 0.8]) {
    it(`equals a hand-written DDIM loop with CFG (S = 10, w = 7.5, eta = ${eta}; eta noise = randn(seed + i))`, async () => {
      const noise = torchRandn(shape, 3);
      const { latent } = await sampleClip(baseOptions({ noise, eta, seed: 100 }));
      expect(maxDiff(latent, handDdim(noise, 10, 7.5, eta, 100))).toBeLessThan(1e-5);
    });
  }

  it('does not modify its input noise', async () => {
    const noise = torchRandn(shape, 3);
    const copy = noise.data.slice();
    await sampleClip(baseOptions({ noise }));
    expect(noise.data).toEqual(copy);
  });

  it('takes a bigint seed (ComfyUI range): seed 2^64 - 1 + i wraps like PyTorch', async () => {
    const a = await sampleClip(baseOptions({ eta: 1, seed: 2n ** 64n - 1n }));
    const b = await sampleClip(baseOptions({ eta: 1, seed: 2 ** 32 - 1 }));
    expect(a.latent.data).toEqual(b.latent.data);
  });
});

describe('classifier-free guidance as one batch of 2 [negative, positive]', () => {
  it('batch-2 and two batch-1 calls (negative first) give identical latents', async () => {
    const one = recordingUnet();
    const two = recordingUnet();
    const a = await sampleClip(baseOptions({ denoise: one.denoise, dynamicBatch: true }));
    const b = await sampleClip(baseOptions({ denoise: two.denoise, dynamicBatch: false }));
    expect(a.latent.data).toEqual(b.latent.data);
    expect(one.calls.length).toBe(10);
    expect(one.calls[0].sample.shape).toEqual([2, ...shape.slice(1)]);
    expect([...one.calls[0].hidden.data]).toEqual([...negative.data, ...positive.data]);
    expect(two.calls.length).toBe(20);
    expect(two.calls[0].hidden.data).toEqual(negative.data);
    expect(two.calls[1].hidden.data).toEqual(positive.data);
  });
});

describe('DSG with a previous record (S = 50, M = 4, β = 0.4, N = 8)', () => {
  it('overwrites exactly frame j < M on steps i < β·S·(1 - j/M) with flip(past[i])[:, :, j]', async () => {
    const S = 50;
    const M = 4;
    const beta = 0.4;
    const clip0 = recordingUnet();
    const first = await sampleClip(
      baseOptions({ steps: S, denoise: clip0.denoise, noise: torchRandn(shape, 7) }),
    );
    const past = clip0.calls.map((c) => c.sample.data.slice(0, numel(shape))); // clip 0's record[i]

    const noise1 = pnsNoise(flipFrames(first.record.first), torchRandn(shape, 8), 4, M);
    const clip1 = recordingUnet();
    await sampleClip(
      baseOptions({ steps: S, noise: noise1, previous: first.record, denoise: clip1.denoise }),
    );
    const inputs = clip1.calls.map((c) => tensor(c.sample.data.slice(0, numel(shape)), shape));
    expect(inputs.length).toBe(S);

    let replaced = 0;
    let expectedInput = noise1; // what step i would see without DSG
    for (let i = 0; i < S; i++) {
      const pastI = tensor(past[i], shape);
      for (let j = 0; j < N; j++) {
        const got = getFrames(inputs[i], j, 1).data;
        if (dsgActive(i, j, S, beta, M)) {
          expect(got, `step ${i}, frame ${j}: flip(past[${i}])`).toEqual(getFrames(pastI, N - 1 - j, 1).data);
          replaced++;
        } else {
          expect(got, `step ${i}, frame ${j}: untouched`).toEqual(getFrames(expectedInput, j, 1).data);
        }
      }
      const t = ddimTimesteps(scheduler, S)[i];
      const e = cfgCombine(fakeUnet(inputs[i], t, negative), fakeUnet(inputs[i], t, positive), 7.5);
      expectedInput = ddimStep(scheduler, S, e, t, inputs[i]);
    }
    expect(replaced).toBe(20 + 15 + 10 + 5);
  });

  it('records after DSG and before the model call: record[0] whole and the last M frames of record[i]', async () => {
    // M = 6 of N = 8: the recorded frames 2..7 overlap the DSG-written frames 0..5, and the noise is
    // not PNS-made, so a record taken before DSG would differ.
    const M = 6;
    const clip0 = await sampleClip(baseOptions({ steps: 20, referenceFrames: M }));
    const unet = recordingUnet();
    const noise = torchRandn(shape, 9);
    const { record } = await sampleClip(
      baseOptions({ steps: 20, referenceFrames: M, noise, previous: clip0.record, denoise: unet.denoise }),
    );
    expect(record.first.data).toEqual(unet.calls[0].sample.data.slice(0, numel(shape)));
    expect(record.first.data).not.toEqual(noise.data); // DSG changed the step-0 input
    expect(record.tails.length).toBe(Math.ceil(0.4 * 20));
    record.tails.forEach((tail, i) => {
      const input = tensor(unet.calls[i].sample.data.slice(0, numel(shape)), shape);
      expect(tail.data, `tail ${i}`).toEqual(getFrames(input, N - M, M).data);
    });
  });

  it("a record's size is record[0] plus ceil(β·S)·M frames, independent of S otherwise", async () => {
    const frameBytes = (numel(shape) / N) * 4;
    for (const [S, beta, M] of [
      [10, 0.4, 4],
      [40, 0.4, 4],
      [40, 0.4, 2],
      [40, 0, 4],
      [25, 1, 0],
    ]) {
      const { record } = await sampleClip(baseOptions({ steps: S, beta, referenceFrames: M }));
      expect(recordBytes(record), `S=${S} β=${beta} M=${M}`).toBe(
        numel(shape) * 4 + Math.ceil(beta * S) * M * frameBytes,
      );
      expect(record).toMatchObject({ steps: S, beta, referenceFrames: M, shape });
    }
  });

  it('M = 0 with a previous record is plain DDIM', async () => {
    const prev = await sampleClip(baseOptions({ referenceFrames: 0 }));
    const noise = torchRandn(shape, 4);
    const a = await sampleClip(baseOptions({ noise, referenceFrames: 0, previous: prev.record }));
    const b = await sampleClip(baseOptions({ noise, referenceFrames: 0 }));
    expect(a.latent.data).toEqual(b.latent.data);
  });

  it('refuses a previous record made with other S, M or shape, or too few steps for β, saying which', async () => {
    const prev = await sampleClip(baseOptions({ steps: 10 }));
    await expect(sampleClip(baseOptions({ steps: 12, previous: prev.record }))).rejects.toThrow(
      /previous record does not fit this clip: it was made with 10 steps, this clip uses 12/,
    );
    await expect(sampleClip(baseOptions({ referenceFrames: 3, previous: prev.record }))).rejects.toThrow(
      /4 reference frames, this clip uses 3/,
    );
    await expect(sampleClip(baseOptions({ beta: 0.5, previous: prev.record }))).rejects.toThrow(
      /it holds 4 guided steps \(beta 0\.4\), this clip's beta 0\.5 needs 5/,
    );
    // A smaller β reads fewer steps than the record holds: fine.
    await expect(sampleClip(baseOptions({ beta: 0.2, previous: prev.record }))).resolves.toBeDefined();
    await expect(
      sampleClip(baseOptions({ noise: torchRandn([1, 2, 8, 4, 4], 1), previous: prev.record })),
    ).rejects.toThrow(/latent shape is \[1, 2, 8, 2, 2\], this clip's is \[1, 2, 8, 4, 4\]/);
  });
});

describe('progress and interrupt', () => {
  it('calls onStep(i, S) after every step', async () => {
    const seen: string[] = [];
    await sampleClip(baseOptions({ steps: 5, onStep: (i, S) => seen.push(`${i}/${S}`) }));
    expect(seen).toEqual(['0/5', '1/5', '2/5', '3/5', '4/5']);
  });

  it('checks the signal every step: aborting during step 2 stops before step 3', async () => {
    const controller = new AbortController();
    const unet = recordingUnet();
    const run = sampleClip(
      baseOptions({
        steps: 10,
        signal: controller.signal,
        denoise: unet.denoise,
        onStep: (i) => {
          if (i === 2) controller.abort();
        },
      }),
    );
    await expect(run).rejects.toThrow(/abort/i);
    expect(unet.calls.length).toBe(3);
  });

  it('rejects a model output of the wrong shape naming the timestep', async () => {
    const bad: DenoiseFn = () => Promise.resolve(torchRandn([1, 2, 8, 2, 2], 1));
    await expect(sampleClip(baseOptions({ denoise: bad }))).rejects.toThrow(
      /model output at timestep 901: expected shape \[2, 2, 8, 2, 2\], got \[1, 2, 8, 2, 2\]/,
    );
  });
});
