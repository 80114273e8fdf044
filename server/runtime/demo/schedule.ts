// The noise schedule the demo UNet was "trained" with: Stable Diffusion 2.1-base's DDIM config
// (written to scheduler/scheduler_config.json) and the per-timestep coefficients its closed-form
// denoiser needs, as float32 tables the ONNX graph gathers from by timestep.
import { ddimSchedule, parseSchedulerConfig } from '../../../nodes/lib/ddim.ts';

export const SCHEDULER_CONFIG = {
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

/** ā_t for t = 0 … 999, as the sampler's DDIM computes it from the same config. */
export function alphasCumprod(): Float32Array {
  return ddimSchedule(parseSchedulerConfig(SCHEDULER_CONFIG)).alphasCumprod;
}

export interface TimeTables {
  /** √ā / (1 − ā): weight of the cross term z·x0_k in the logits. */
  readonly cross: Float32Array;
  /** −ā / (2(1 − ā)): weight of ‖x0_k‖² in the logits. */
  readonly norm: Float32Array;
  /** 1 / √(1 − ā): weight of z in ε̂. */
  readonly sample: Float32Array;
  /** √ā / √(1 − ā): weight of E[x0 | z] in ε̂. */
  readonly mean: Float32Array;
}

export function timeTables(): TimeTables {
  const ab = alphasCumprod();
  const map = (f: (a: number) => number): Float32Array => Float32Array.from(ab, (a) => f(a));
  return {
    cross: map((a) => Math.sqrt(a) / (1 - a)),
    norm: map((a) => -a / (2 * (1 - a))),
    sample: map((a) => 1 / Math.sqrt(1 - a)),
    mean: map((a) => Math.sqrt(a) / Math.sqrt(1 - a)),
  };
}
