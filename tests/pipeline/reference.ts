// Independent re-statements of the spec used as test oracles: plain DDIM with classifier-free
// guidance (vidrd.md "Scheduler: DDIM as diffusers defines it", eta = 0), in float64 loops.
// The timesteps, CFG and step math are restated here; only the ā table (and parsing the config)
// comes from server/core/ddim.ts, which checks ā against PyTorch's values on its own
// (tests/core/ddim.test.ts), so these oracles do not test the sampler against itself.
import { ddimSchedule, parseSchedulerConfig } from '../../server/core/ddim.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';

export type Predict = (sample: Tensor, t: number, hidden: Tensor) => Promise<Tensor>;

/**
 * Plain DDIM (eta = 0, epsilon prediction, "leading" spacing) with guidance
 * e = e_u + w·(e_c - e_u), each branch a separate batch-1 call. Only for batch size 1.
 */
export async function plainDdim(o: {
  noise: Tensor;
  positive: Tensor;
  negative: Tensor;
  steps: number;
  cfg: number;
  config: Record<string, unknown>;
  predict: Predict;
}): Promise<Float64Array> {
  const config = parseSchedulerConfig(o.config);
  if (config.prediction_type !== 'epsilon' || config.timestep_spacing !== 'leading' || config.clip_sample) {
    throw new Error('plainDdim restates epsilon prediction, leading spacing and no clipping only');
  }
  const ac = ddimSchedule(config).alphasCumprod;
  const T = ac.length;
  const ratio = Math.floor(T / o.steps);
  const offset = config.steps_offset;
  let z = Float64Array.from(o.noise.data);
  for (let i = 0; i < o.steps; i++) {
    const t = (o.steps - 1 - i) * ratio + offset;
    const prev = t - ratio;
    const aT = ac[t];
    const aPrev = prev >= 0 ? ac[prev] : config.set_alpha_to_one ? 1 : ac[0];
    const sample: Tensor = { data: Float32Array.from(z), shape: o.noise.shape };
    const eU = await o.predict(sample, t, o.negative);
    const eC = await o.predict(sample, t, o.positive);
    const next = new Float64Array(z.length);
    for (let k = 0; k < z.length; k++) {
      const e = eU.data[k] + o.cfg * (eC.data[k] - eU.data[k]);
      const x0 = (z[k] - Math.sqrt(1 - aT) * e) / Math.sqrt(aT);
      next[k] = Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * e;
    }
    z = next;
  }
  return z;
}

/** Largest |a - b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
