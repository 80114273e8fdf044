// The inner loop of spec vidrd.md for one clip: DSG on the input latent, record, classifier-free
// guidance, DDIM step. With no previous record it is plain DDIM.
import type { DdimConfig } from './ddim.ts';
import { ddimStep, ddimTimesteps } from './ddim.ts';
import type { Tensor } from './tensor-type.ts';
import {
  assertShape,
  clone,
  concatBatch,
  formatShape,
  latentDims,
  repeatBatch,
  splitBatch,
} from './tensor.ts';
import { torchRandn } from './torch-rng.ts';
import type { DsgRecord } from './vidrd.ts';
import {
  applyDsgInto,
  cfgCombine,
  checkDsgParams,
  checkRecordMatches,
  dsgRecordedSteps,
  recordTail,
} from './vidrd.ts';

/** The UNet call: predicts the model output for `sample` at timestep t given text states `hidden`. */
export type DenoiseFn = (sample: Tensor, t: number, hidden: Tensor, signal?: AbortSignal) => Promise<Tensor>;

export interface SampleClipOptions {
  /** The clip's starting latent z_T [B, C, N, H, W] (not modified). */
  readonly noise: Tensor;
  /** Text conditioning [1 or B, L, D]. */
  readonly positive: Tensor;
  readonly negative: Tensor;
  /** S, DDIM steps. */
  readonly steps: number;
  /** w, guidance scale. */
  readonly cfg: number;
  readonly eta: number;
  /** Step i's DDIM noise (eta > 0 only) is torchRandn(latent shape, seed + i). */
  readonly seed: number | bigint;
  readonly scheduler: DdimConfig;
  /** The previous clip's record; absent for the first clip (plain DDIM). */
  readonly previous?: DsgRecord;
  /** β in [0, 1]. */
  readonly beta: number;
  /** M, 0 ≤ M ≤ N. */
  readonly referenceFrames: number;
  readonly denoise: DenoiseFn;
  /** true: one UNet call on a batch of 2 [negative, positive]; false: two calls, negative first. */
  readonly dynamicBatch: boolean;
  readonly signal?: AbortSignal;
  /** Called after step i (0-based) is done, so progress is (i + 1) / S. */
  readonly onStep?: (i: number, S: number) => void;
}

export interface SampleClipResult {
  readonly latent: Tensor;
  readonly record: DsgRecord;
}

function conditioningFor(cond: Tensor, B: number, what: string): Tensor {
  if (cond.shape.length !== 3 || (cond.shape[0] !== 1 && cond.shape[0] !== B)) {
    throw new Error(
      `${what}: expected conditioning [1, L, D] or [${B}, L, D], got ${formatShape(cond.shape)}`,
    );
  }
  return cond.shape[0] === B ? cond : repeatBatch(cond, B);
}

function seedPlus(seed: number | bigint, i: number): number | bigint {
  return typeof seed === 'bigint' ? seed + BigInt(i) : seed + i;
}

export async function sampleClip(opts: SampleClipOptions): Promise<SampleClipResult> {
  const { steps: S, referenceFrames: M, beta, previous, scheduler, signal } = opts;
  const dims = latentDims(opts.noise, 'noise');
  checkDsgParams(S, beta, M, dims.F, 'sampler');
  if (!Number.isFinite(opts.cfg)) throw new Error(`cfg must be a finite number, got ${opts.cfg}`);
  if (!(opts.eta >= 0)) throw new Error(`eta must be >= 0, got ${opts.eta}`);
  const shape = opts.noise.shape;
  if (previous) checkRecordMatches(previous, S, M, beta, shape);
  const negative = conditioningFor(opts.negative, dims.B, 'negative');
  const positive = conditioningFor(opts.positive, dims.B, 'positive');
  if (negative.shape[1] !== positive.shape[1] || negative.shape[2] !== positive.shape[2]) {
    throw new Error(
      `negative ${formatShape(negative.shape)} and positive ${formatShape(positive.shape)} conditionings differ in shape`,
    );
  }
  const hiddenPair = opts.dynamicBatch ? concatBatch([negative, positive]) : undefined;
  const timesteps = ddimTimesteps(scheduler, S);
  const recordedSteps = dsgRecordedSteps(S, beta, M);

  const predict = async (z: Tensor, t: number): Promise<Tensor> => {
    let eU: Tensor;
    let eC: Tensor;
    if (hiddenPair) {
      const out = await opts.denoise(concatBatch([z, z]), t, hiddenPair, signal);
      assertShape(out, [2 * dims.B, ...shape.slice(1)], `model output at timestep ${t}`);
      [eU, eC] = splitBatch(out, 2);
    } else {
      eU = await opts.denoise(z, t, negative, signal);
      assertShape(eU, shape, `model output at timestep ${t}`);
      eC = await opts.denoise(z, t, positive, signal);
      assertShape(eC, shape, `model output at timestep ${t}`);
    }
    return cfgCombine(eU, eC, opts.cfg); // e = e_u + w·(e_c - e_u)
  };

  let z = clone(opts.noise); // we own z from here: DSG may overwrite its frames in place
  let first: Tensor = z;
  const tails: Tensor[] = [];
  for (let i = 0; i < S; i++) {
    signal?.throwIfAborted();
    const t = timesteps[i];
    if (previous && M > 0) applyDsgInto(z, previous, i, beta); // DSG on the input latent of step i
    // record[i] = z, after DSG, before the model call; only what the next clip reads.
    if (i === 0) first = z;
    if (i < recordedSteps) tails.push(recordTail(z, M));
    const e = await predict(z, t);
    const noise = opts.eta > 0 ? torchRandn(shape, seedPlus(opts.seed, i)) : undefined;
    z = ddimStep(scheduler, S, e, t, z, { eta: opts.eta, noise });
    opts.onStep?.(i, S);
  }

  const record: DsgRecord = {
    kind: 'dsg-record',
    steps: S,
    referenceFrames: M,
    beta,
    shape: [...shape],
    first,
    tails,
  };
  return { latent: z, record };
}
