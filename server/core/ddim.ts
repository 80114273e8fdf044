// DDIM as diffusers' DDIMScheduler computes it, configured from a model's scheduler_config.json
// (spec: vidrd.md, "Scheduler"). Symbols: ā_t = alphas_cumprod[t] ("alphaBar"), β = 1 - ā,
// x̂0 = predicted clean sample, ε̂ = predicted noise, σ_t = the eta-scaled DDIM standard deviation.
import { z } from 'zod';
import type { Tensor } from './tensor-type.ts';
import { assertSameShape } from './tensor.ts';

// diffusers' keys and defaults (DDIMScheduler.__init__); unknown keys (_class_name, PNDM's
// skip_prk_steps, ...) are dropped.
const schedulerConfigSchema = z.object({
  num_train_timesteps: z.number().int().min(1).default(1000),
  beta_start: z.number().positive().default(0.0001),
  beta_end: z.number().positive().default(0.02),
  beta_schedule: z.enum(['linear', 'scaled_linear', 'squaredcos_cap_v2']).default('linear'),
  trained_betas: z.array(z.number()).nullable().default(null),
  clip_sample: z.boolean().default(true),
  clip_sample_range: z.number().positive().default(1.0),
  set_alpha_to_one: z.boolean().default(true),
  steps_offset: z.number().int().min(0).default(0),
  prediction_type: z.enum(['epsilon', 'v_prediction', 'sample']).default('epsilon'),
  thresholding: z
    .literal(false, { error: 'thresholding (dynamic thresholding) is not supported' })
    .default(false),
  timestep_spacing: z.enum(['leading', 'trailing', 'linspace']).default('leading'),
  rescale_betas_zero_snr: z.boolean().default(false),
});

export type DdimConfig = z.output<typeof schedulerConfigSchema>;

/**
 * scheduler/scheduler_config.json of Stable Diffusion 2.1-base (spec: vidrd.md, "Scheduler") with
 * DDIMScheduler as its class: the schedule the demo model ships, and the one tests sample with.
 */
export const SD21_BASE_SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.8.0',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  set_alpha_to_one: false,
  steps_offset: 1,
  clip_sample: false,
  skip_prk_steps: true,
  timestep_spacing: 'leading',
  trained_betas: null,
} as const;

/** Parses a diffusers scheduler_config.json object; throws naming each bad key. */
export function parseSchedulerConfig(json: unknown): DdimConfig {
  const r = schedulerConfigSchema.safeParse(json ?? {});
  if (r.success) {
    const cfg = r.data;
    if (cfg.trained_betas !== null && cfg.trained_betas.length !== cfg.num_train_timesteps) {
      throw new Error(
        `scheduler config: trained_betas has ${cfg.trained_betas.length} entries, num_train_timesteps is ${cfg.num_train_timesteps}`,
      );
    }
    return cfg;
  }
  const problems = r.error.issues.map(
    (i) => `${i.path.length ? i.path.join('.') : '(config)'}: ${i.message}`,
  );
  throw new Error(`scheduler config: ${problems.join('; ')}`);
}

// torch.linspace(start, end, n, dtype=float32), each value rounded once to float32. (Of the variants
// tried, this one with a float32 cumprod reproduces the vectors' ā exactly, first five and last.)
function linspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = n > 1 ? start + ((end - start) * k) / (n - 1) : start;
  return out;
}

// diffusers' betas_for_alpha_bar with the cosine transform ("squaredcos_cap_v2"), in float64.
function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = Math.min(1 - alphaBar((k + 1) / n) / alphaBar(k / n), maxBeta);
  return out;
}

// diffusers' rescale_zero_terminal_snr: shift and scale sqrt(ā) so the last timestep has zero SNR.
function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const sqrtAlphaBar = new Float64Array(n);
  let prod = 1;
  for (let k = 0; k < n; k++) {
    prod *= 1 - betas[k];
    sqrtAlphaBar[k] = Math.sqrt(prod);
  }
  const first = sqrtAlphaBar[0];
  const last = sqrtAlphaBar[n - 1];
  const alphaBar = sqrtAlphaBar.map((v) => (((v - last) * first) / (first - last)) ** 2);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = 1 - (k === 0 ? alphaBar[0] : alphaBar[k] / alphaBar[k - 1]);
  return out;
}

export interface DdimSchedule {
  readonly config: DdimConfig;
  /** ā_t for t = 0 … num_train_timesteps-1, float32 as diffusers keeps it. */
  readonly alphasCumprod: Float32Array;
  /** ā used after the last step: 1 with set_alpha_to_one, else ā_0. */
  readonly finalAlphaCumprod: number;
}

const schedules = new WeakMap<DdimConfig, DdimSchedule>();

/** The training noise schedule of a config (cached per config object). */
export function ddimSchedule(cfg: DdimConfig): DdimSchedule {
  const cached = schedules.get(cfg);
  if (cached) return cached;
  if (cfg.thresholding) throw new Error('scheduler config: thresholding is not supported');
  const n = cfg.num_train_timesteps;
  let betas: Float32Array;
  if (cfg.trained_betas !== null) betas = Float32Array.from(cfg.trained_betas);
  else if (cfg.beta_schedule === 'linear') betas = linspaceF32(cfg.beta_start, cfg.beta_end, n);
  else if (cfg.beta_schedule === 'scaled_linear') {
    betas = linspaceF32(Math.sqrt(cfg.beta_start), Math.sqrt(cfg.beta_end), n).map((b) => b * b);
  } else betas = cosineBetas(n);
  if (cfg.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  // ᾱ_t = ∏_{s≤t} (1 - β_s), a float32 running product as torch.cumprod computes it.
  const alphasCumprod = new Float32Array(n);
  let prod = 1;
  for (let k = 0; k < n; k++) {
    prod = Math.fround(prod * Math.fround(1 - betas[k]));
    alphasCumprod[k] = prod;
  }
  if (cfg.rescale_betas_zero_snr) alphasCumprod[n - 1] = 2 ** -24; // as diffusers: avoid ā = 0
  const schedule = {
    config: cfg,
    alphasCumprod,
    finalAlphaCumprod: cfg.set_alpha_to_one ? 1 : alphasCumprod[0],
  };
  schedules.set(cfg, schedule);
  return schedule;
}

// np.round: halves go to the even neighbour.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The S timesteps for a spacing, unchecked: "leading" adds steps_offset, which can reach past the
// last trained timestep (S = 1000, offset 1 gives 1000).
function spacedTimesteps(cfg: DdimConfig, steps: number): number[] {
  const n = cfg.num_train_timesteps;
  const out: number[] = [];
  if (cfg.timestep_spacing === 'linspace') {
    // np.linspace(0, n-1, S).round()[::-1]
    const step = (n - 1) / Math.max(steps - 1, 1);
    for (let i = steps - 1; i >= 0; i--)
      out.push(i === steps - 1 && steps > 1 ? n - 1 : roundHalfEven(i * step));
  } else if (cfg.timestep_spacing === 'leading') {
    // arange(S) · (n // S), reversed, + steps_offset
    const ratio = Math.floor(n / steps);
    for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + cfg.steps_offset);
  } else {
    // round(arange(n, 0, -n/S)) - 1. NumPy's arange yields S+1 values for some S (e.g. 61) through
    // float rounding, the last one becoming -1; we keep exactly S.
    const ratio = n / steps;
    for (let i = 0; i < steps; i++) out.push(roundHalfEven(n - i * ratio) - 1);
  }
  return out;
}

const inRange = (ts: readonly number[], n: number): boolean => ts.every((t) => t >= 0 && t < n);

/**
 * The S model timesteps, noisiest first (diffusers' set_timesteps). Throws when S is not an integer
 * in 1..num_train_timesteps, or when the spacing and steps_offset put a timestep outside
 * 0..num_train_timesteps-1 (the model has no ā for it; diffusers would fail later, inside the UNet).
 */
export function ddimTimesteps(cfg: DdimConfig, steps: number): number[] {
  const n = cfg.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > n) {
    throw new Error(`steps must be an integer from 1 to ${n} (num_train_timesteps), got ${steps}`);
  }
  const out = spacedTimesteps(cfg, steps);
  if (!inRange(out, n)) {
    const bad = out.find((t) => t < 0 || t >= n);
    let most = steps - 1;
    while (most > 0 && !inRange(spacedTimesteps(cfg, most), n)) most--;
    throw new Error(
      `steps = ${steps} with timestep_spacing "${cfg.timestep_spacing}" and steps_offset ` +
        `${cfg.steps_offset} gives timestep ${bad}, outside 0..${n - 1} (num_train_timesteps ${n})` +
        (most > 0 ? `; use at most ${most} steps with this scheduler` : ''),
    );
  }
  return out;
}

export interface DdimStepOptions {
  /** η: 0 is deterministic DDIM, 1 is DDPM-like. */
  readonly eta?: number;
  /** Standard normal noise of the sample's shape; required when eta > 0. */
  readonly noise?: Tensor;
}

/**
 * One DDIM update from timestep t to t - num_train_timesteps // S (diffusers' DDIMScheduler.step with
 * use_clipped_model_output = false). Returns a new tensor.
 */
export function ddimStep(
  cfg: DdimConfig,
  steps: number,
  modelOutput: Tensor,
  t: number,
  sample: Tensor,
  opts: DdimStepOptions = {},
): Tensor {
  const { alphasCumprod, finalAlphaCumprod } = ddimSchedule(cfg);
  const n = cfg.num_train_timesteps;
  if (!Number.isInteger(t) || t < 0 || t >= n)
    throw new Error(`timestep must be an integer in 0..${n - 1}, got ${t}`);
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`steps must be a positive integer, got ${steps}`);
  assertSameShape(modelOutput, sample, 'ddimStep model output vs sample');
  const eta = opts.eta ?? 0;
  if (!(eta >= 0)) throw new Error(`eta must be >= 0, got ${eta}`);
  if (eta > 0) {
    if (!opts.noise) throw new Error('ddimStep: eta > 0 needs noise');
    assertSameShape(opts.noise, sample, 'ddimStep noise vs sample');
  }

  const tPrev = t - Math.floor(n / steps);
  const alphaBarT = alphasCumprod[t];
  const alphaBarPrev = tPrev >= 0 ? alphasCumprod[tPrev] : finalAlphaCumprod;
  const betaBarT = 1 - alphaBarT;
  const betaBarPrev = 1 - alphaBarPrev;
  const sqrtAlphaBarT = Math.sqrt(alphaBarT);
  const sqrtBetaBarT = Math.sqrt(betaBarT);
  const sqrtAlphaBarPrev = Math.sqrt(alphaBarPrev);
  // σ_t = η · sqrt((1 - ā_prev) / (1 - ā_t) · (1 - ā_t / ā_prev))
  const sigmaT = eta * Math.sqrt((betaBarPrev / betaBarT) * (1 - alphaBarT / alphaBarPrev));
  // Direction pointing to x_t: sqrt(1 - ā_prev - σ_t²) · ε̂ (clamped at 0 against rounding).
  const dirCoef = Math.sqrt(Math.max(0, betaBarPrev - sigmaT * sigmaT));
  const clip = cfg.clip_sample ? cfg.clip_sample_range : Infinity;

  const x = sample.data;
  const m = modelOutput.data;
  const noise = eta > 0 && opts.noise ? opts.noise.data : undefined;
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    let x0: number;
    let eps: number;
    if (cfg.prediction_type === 'epsilon') {
      x0 = (x[k] - sqrtBetaBarT * m[k]) / sqrtAlphaBarT; // x̂0 = (x_t - sqrt(1-ā_t)·ε) / sqrt(ā_t)
      eps = m[k];
    } else if (cfg.prediction_type === 'sample') {
      x0 = m[k];
      eps = (x[k] - sqrtAlphaBarT * x0) / sqrtBetaBarT; // ε̂ = (x_t - sqrt(ā_t)·x̂0) / sqrt(1-ā_t)
    } else {
      x0 = sqrtAlphaBarT * x[k] - sqrtBetaBarT * m[k]; // x̂0 = sqrt(ā_t)·x_t - sqrt(1-ā_t)·v
      eps = sqrtAlphaBarT * m[k] + sqrtBetaBarT * x[k]; // ε̂ = sqrt(ā_t)·v + sqrt(1-ā_t)·x_t
    }
    if (x0 > clip) x0 = clip;
    else if (x0 < -clip) x0 = -clip;
    let prev = sqrtAlphaBarPrev * x0 + dirCoef * eps; // x_prev = sqrt(ā_prev)·x̂0 + dir
    if (noise) prev += sigmaT * noise[k]; // + σ_t·z
    out[k] = prev;
  }
  return { data: out, shape: [...sample.shape] };
}
