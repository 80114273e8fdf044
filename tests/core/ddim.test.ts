import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ddimSchedule,
  ddimStep,
  ddimTimesteps,
  parseSchedulerConfig,
  SD21_BASE_SCHEDULER_CONFIG,
} from '../../server/core/ddim.ts';
import { maxAbsDiff, tensor } from '../../server/core/tensor.ts';
import { readVectorJson, readVectorNpy } from './vectors.ts';

const ddimJson = z.object({
  scheduler_config: z.record(z.string(), z.unknown()),
  timesteps: z.record(z.string(), z.array(z.number().int())),
  alphas_cumprod_float32_first5: z.array(z.number()),
  alphas_cumprod_float32_last: z.number(),
  steps: z.array(
    z.object({
      num_inference_steps: z.number().int(),
      timestep: z.number().int(),
      eta: z.number(),
      x: z.string(),
      eps: z.string(),
      noise: z.string(),
      expected: z.string(),
    }),
  ),
});
const vectors = ddimJson.parse(readVectorJson('ddim.json'));
const sd21 = parseSchedulerConfig(vectors.scheduler_config);

describe('DDIM configured like SD 2.1-base matches diffusers', () => {
  it('reads the config: scaled_linear, epsilon, leading spacing with steps_offset 1, no alpha-to-one', () => {
    expect(sd21.beta_schedule).toBe('scaled_linear');
    expect(sd21.prediction_type).toBe('epsilon');
    expect(sd21.timestep_spacing).toBe('leading');
    expect(sd21.steps_offset).toBe(1);
    expect(ddimSchedule(sd21).finalAlphaCumprod).toBe(ddimSchedule(sd21).alphasCumprod[0]);
  });

  it('ā_t (alphas_cumprod, float32) equals the vectors: first five and the last', () => {
    const { alphasCumprod } = ddimSchedule(sd21);
    expect(alphasCumprod.length).toBe(1000);
    vectors.alphas_cumprod_float32_first5.forEach((v, t) => expect(alphasCumprod[t]).toBeCloseTo(v, 9));
    expect(alphasCumprod[999]).toBeCloseTo(vectors.alphas_cumprod_float32_last, 9);
  });

  for (const [S, expected] of Object.entries(vectors.timesteps)) {
    it(`timesteps for S = ${S} are reverse(arange(S)·(1000 // S)) + 1`, () => {
      expect(ddimTimesteps(sd21, Number(S))).toEqual(expected);
    });
  }

  for (const st of vectors.steps) {
    it(`step S = ${st.num_inference_steps}, t = ${st.timestep}, eta = ${st.eta} equals ${st.expected} within 1e-5`, () => {
      const out = ddimStep(
        sd21,
        st.num_inference_steps,
        readVectorNpy(st.eps),
        st.timestep,
        readVectorNpy(st.x),
        {
          eta: st.eta,
          noise: readVectorNpy(st.noise),
        },
      );
      expect(maxAbsDiff(out, readVectorNpy(st.expected))).toBeLessThan(1e-5);
    });
  }
});

// Hand-written scalar DDIM of the spec, for the options the vectors do not cover.
function scalarStep(
  aT: number,
  aPrev: number,
  pred: 'epsilon' | 'v_prediction' | 'sample',
  out: number,
  x: number,
  eta = 0,
  noise = 0,
  clip = Infinity,
): number {
  let x0 =
    pred === 'epsilon'
      ? (x - Math.sqrt(1 - aT) * out) / Math.sqrt(aT)
      : pred === 'sample'
        ? out
        : Math.sqrt(aT) * x - Math.sqrt(1 - aT) * out;
  const e =
    pred === 'epsilon'
      ? out
      : pred === 'sample'
        ? (x - Math.sqrt(aT) * out) / Math.sqrt(1 - aT)
        : Math.sqrt(aT) * out + Math.sqrt(1 - aT) * x;
  x0 = Math.min(clip, Math.max(-clip, x0));
  const sigma = eta * Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev));
  return Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev - sigma * sigma) * e + sigma * noise;
}

describe('DDIM options from scheduler_config.json', () => {
  const x = tensor(Float32Array.from([0.5, -1.25, 2, 0.1]), [1, 1, 1, 2, 2]);
  const out = tensor(Float32Array.from([0.3, 0.7, -0.2, 1.1]), [1, 1, 1, 2, 2]);
  const noise = tensor(Float32Array.from([1, -1, 0.5, 0]), [1, 1, 1, 2, 2]);

  for (const pred of ['epsilon', 'v_prediction', 'sample'] as const) {
    it(`prediction_type ${pred} follows the spec's formulas`, () => {
      const cfg = parseSchedulerConfig({ ...vectors.scheduler_config, prediction_type: pred });
      const { alphasCumprod } = ddimSchedule(cfg);
      const got = ddimStep(cfg, 50, out, 501, x, { eta: 0.7, noise });
      const aT = alphasCumprod[501];
      const aPrev = alphasCumprod[481];
      got.data.forEach((v, k) =>
        expect(v).toBeCloseTo(scalarStep(aT, aPrev, pred, out.data[k], x.data[k], 0.7, noise.data[k]), 5),
      );
    });
  }

  it('the last step goes to ā = 1 with set_alpha_to_one and to ā_0 without', () => {
    const withOne = parseSchedulerConfig({ ...vectors.scheduler_config, set_alpha_to_one: true });
    const aT = ddimSchedule(withOne).alphasCumprod[1];
    const got = ddimStep(withOne, 50, out, 1, x);
    got.data.forEach((v, k) =>
      expect(v).toBeCloseTo(scalarStep(aT, 1, 'epsilon', out.data[k], x.data[k]), 5),
    );
  });

  it('clip_sample clamps x̂0 to ±clip_sample_range', () => {
    const cfg = parseSchedulerConfig({
      ...vectors.scheduler_config,
      clip_sample: true,
      clip_sample_range: 0.5,
    });
    const { alphasCumprod } = ddimSchedule(cfg);
    const got = ddimStep(cfg, 10, out, 901, x);
    got.data.forEach((v, k) =>
      expect(v).toBeCloseTo(
        scalarStep(alphasCumprod[901], alphasCumprod[801], 'epsilon', out.data[k], x.data[k], 0, 0, 0.5),
        5,
      ),
    );
  });

  it('timestep_spacing trailing: round(arange(1000, 0, -1000/S)) - 1', () => {
    const cfg = parseSchedulerConfig({ ...vectors.scheduler_config, timestep_spacing: 'trailing' });
    expect(ddimTimesteps(cfg, 10)).toEqual([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
    expect(ddimTimesteps(cfg, 3)).toEqual([999, 666, 332]);
    // NumPy's arange gives 62 values for S = 61 (the last -1); we keep exactly S.
    const t61 = ddimTimesteps(cfg, 61);
    expect(t61.length).toBe(61);
    expect(Math.min(...t61)).toBeGreaterThanOrEqual(0);
  });

  it('timestep_spacing linspace: round(linspace(0, 999, S)) reversed, halves to even', () => {
    const cfg = parseSchedulerConfig({ ...vectors.scheduler_config, timestep_spacing: 'linspace' });
    expect(ddimTimesteps(cfg, 4)).toEqual([999, 666, 333, 0]);
    expect(ddimTimesteps(cfg, 3)).toEqual([999, 500, 0]); // 499.5 rounds to the even 500
  });

  it('SD21_BASE_SCHEDULER_CONFIG is the config the vectors were made with', () => {
    expect(parseSchedulerConfig(SD21_BASE_SCHEDULER_CONFIG)).toEqual(sd21);
  });

  it('refuses a schedule that reaches outside 0..num_train_timesteps-1, naming steps, spacing and steps_offset', () => {
    // leading + steps_offset 1 with S = 1000: arange(1000)·1 + 1 ends at 1000, past ā's last index.
    expect(() => ddimTimesteps(sd21, 1000)).toThrow(
      /steps = 1000 with timestep_spacing "leading" and steps_offset 1 gives timestep 1000, outside 0\.\.999.*at most 999 steps/,
    );
    const at999 = ddimTimesteps(sd21, 999);
    expect(at999[0]).toBe(999);
    expect(at999.at(-1)).toBe(1);
    // Without the offset every S up to num_train_timesteps fits; more steps than that never do.
    const noOffset = parseSchedulerConfig({ ...vectors.scheduler_config, steps_offset: 0 });
    expect(ddimTimesteps(noOffset, 1000)).toEqual(Array.from({ length: 1000 }, (_, i) => 999 - i));
    expect(() => ddimTimesteps(sd21, 1001)).toThrow(/steps must be an integer from 1 to 1000/);
    // A large offset leaves fewer usable steps: the hint names the largest S that fits.
    const offset5 = parseSchedulerConfig({ ...vectors.scheduler_config, steps_offset: 5 });
    expect(ddimTimesteps(offset5, 995).at(0)).toBe(999);
    expect(() => ddimTimesteps(offset5, 996)).toThrow(
      /steps_offset 5 gives timestep 1000.*at most 995 steps/,
    );
    // Every S from 1 to 999 stays in range for SD 2.1-base.
    for (let S = 1; S < 1000; S++) {
      const ts = ddimTimesteps(sd21, S);
      expect(Math.max(...ts) < 1000 && Math.min(...ts) >= 0).toBe(true);
    }
  });

  it('beta schedules: linear is linspace(beta_start, beta_end); squaredcos_cap_v2 follows the cosine ā', () => {
    const linear = ddimSchedule(parseSchedulerConfig({ beta_schedule: 'linear' }));
    expect(linear.alphasCumprod[0]).toBeCloseTo(1 - 0.0001, 7);
    expect(linear.alphasCumprod[1]).toBeCloseTo((1 - 0.0001) * (1 - (0.0001 + 0.0199 / 999)), 7);
    const cosine = ddimSchedule(parseSchedulerConfig({ beta_schedule: 'squaredcos_cap_v2' }));
    const f = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    for (const t of [0, 100, 500, 900])
      expect(cosine.alphasCumprod[t]).toBeCloseTo(f((t + 1) / 1000) / f(0), 5);
  });

  it('config defaults are diffusers DDIMScheduler defaults and unknown keys are ignored', () => {
    const cfg = parseSchedulerConfig({
      _class_name: 'PNDMScheduler',
      skip_prk_steps: true,
      trained_betas: null,
    });
    expect(cfg).toMatchObject({
      num_train_timesteps: 1000,
      beta_start: 0.0001,
      beta_end: 0.02,
      beta_schedule: 'linear',
      clip_sample: true,
      set_alpha_to_one: true,
      steps_offset: 0,
      prediction_type: 'epsilon',
      timestep_spacing: 'leading',
    });
    expect(cfg).not.toHaveProperty('skip_prk_steps');
  });

  it('rejects what it cannot honour, naming the key', () => {
    expect(() => parseSchedulerConfig({ thresholding: true })).toThrow(/thresholding/);
    expect(() => parseSchedulerConfig({ beta_schedule: 'sigmoid' })).toThrow(/beta_schedule/);
    expect(() => parseSchedulerConfig({ prediction_type: 'flow' })).toThrow(/prediction_type/);
    expect(() => ddimTimesteps(sd21, 0)).toThrow(/steps must be/);
    expect(() => ddimStep(sd21, 50, out, 981, x, { eta: 1 })).toThrow(/needs noise/);
  });
});
