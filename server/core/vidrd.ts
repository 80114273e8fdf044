// The Reuse-and-Diffuse operations of spec vidrd.md: FNR (frame reversal), PNS (noise recycling),
// DSG (staged guidance on the first M frames), classifier-free guidance, and the sampler's record.
import type { Tensor } from './tensor-type.ts';
import { assertSameShape, copyFramesInto, flipFrameAxis, formatShape, latentDims, numel } from './tensor.ts';

/** FNR: reverses the frame axis, flip(z)[:, :, j] = z[:, :, N-1-j]. */
export function flipFrames(t: Tensor): Tensor {
  return flipFrameAxis(t);
}

function checkReferenceFrames(M: number, N: number, what: string): void {
  if (!Number.isInteger(M) || M < 0 || M > N) {
    throw new Error(
      `${what}: reference frames M must be an integer from 0 to ${N} (the clip's frames), got ${M}`,
    );
  }
}

/**
 * PNS: the next clip's starting noise from the reversed previous z_T (`reversed` = flip(past[0]))
 * and a standard normal `eps` of the same shape (randn seeded with PNSNoise.seed + c):
 *   z[:, :, j] = r[:, :, j]                                        for j < M
 *   z[:, :, j] = α/sqrt(1+α²) · r[:, :, j] + eps[:, :, j]/sqrt(1+α²)  for j ≥ M
 * (eps/sqrt(1+α²) is the spec's ε ~ N(0, 1/(1+α²) I)). α = Infinity gives pure FNR.
 */
export function pnsNoise(reversed: Tensor, eps: Tensor, alpha: number, M: number): Tensor {
  const d = latentDims(reversed, 'PNS reversed noise');
  assertSameShape(reversed, eps, 'PNS reversed noise vs fresh noise');
  if (!(alpha >= 0)) throw new Error(`PNS: alpha must be >= 0, got ${alpha}`);
  checkReferenceFrames(M, d.F, 'PNS');
  // hypot keeps both coefficients finite for huge α; α = ∞ is the limit (1, 0).
  const mix = alpha === Infinity ? 1 : alpha / Math.hypot(1, alpha);
  const epsScale = 1 / Math.hypot(1, alpha);
  const out = new Float32Array(reversed.data.length);
  const r = reversed.data;
  const e = eps.data;
  const plane = d.H * d.W;
  const rows = d.B * d.C;
  for (let row = 0; row < rows; row++) {
    const base = row * d.F * plane;
    const copyEnd = base + M * plane;
    const end = base + d.F * plane;
    for (let k = base; k < copyEnd; k++) out[k] = r[k];
    for (let k = copyEnd; k < end; k++) out[k] = mix * r[k] + epsScale * e[k];
  }
  return { data: out, shape: [...reversed.shape] };
}

// β·S·(1 - j/M) is meant with β as the decimal the user typed: 0.05·24·(1 - 1/6) evaluates to
// 1.0000000000000002 in binary but must still mean "step 0 only", so we compare against the exact
// bound less a tolerance far below one step.
const DSG_TOLERANCE = 1e-9;

function dsgBound(j: number, S: number, beta: number, M: number): number {
  const bound = (beta * S * (M - j)) / M;
  return bound - DSG_TOLERANCE * Math.max(1, bound);
}

/** DSG rule: on step i, frame j of the input latent is replaced iff j < M and i < β·S·(1 - j/M). */
export function dsgActive(i: number, j: number, S: number, beta: number, M: number): boolean {
  if (M <= 0 || j < 0 || j >= M) return false;
  return i < dsgBound(j, S, beta, M);
}

/** Number of steps on which frame j is replaced (steps 0 … count-1). */
export function dsgStepsForFrame(j: number, S: number, beta: number, M: number): number {
  if (M <= 0 || j < 0 || j >= M) return 0;
  return Math.min(S, Math.max(0, Math.ceil(dsgBound(j, S, beta, M))));
}

/** Steps whose record DSG ever reads: ceil(β·S) (frame 0's count), 0 when M = 0. */
export function dsgRecordedSteps(S: number, beta: number, M: number): number {
  return dsgStepsForFrame(0, S, beta, M);
}

/** table[i][j] = dsgActive(i, j, S, β, M) for steps i < S and reference frames j < M. */
export function dsgTable(S: number, M: number, beta: number): boolean[][] {
  return Array.from({ length: S }, (_, i) =>
    Array.from({ length: M }, (_, j) => dsgActive(i, j, S, beta, M)),
  );
}

export function checkDsgParams(S: number, beta: number, M: number, N: number, what: string): void {
  if (!Number.isInteger(S) || S < 1) throw new Error(`${what}: steps must be a positive integer, got ${S}`);
  if (!(beta >= 0 && beta <= 1)) throw new Error(`${what}: beta must be in [0, 1], got ${beta}`);
  checkReferenceFrames(M, N, what);
}

/** Classifier-free guidance: e_u + w·(e_c - e_u). */
export function cfgCombine(eU: Tensor, eC: Tensor, w: number): Tensor {
  assertSameShape(eU, eC, 'CFG unconditional vs conditional prediction');
  const out = new Float32Array(eU.data.length);
  const u = eU.data;
  const c = eC.data;
  for (let k = 0; k < out.length; k++) out[k] = u[k] + w * (c[k] - u[k]);
  return { data: out, shape: [...eU.shape] };
}

/**
 * What one clip's sampling leaves for the next clip, and nothing more (spec: "Only two parts of a
 * record are ever read"): record[0] whole, and the last M frames of record[i] for the steps DSG
 * uses. Its size is numel(latent) + ceil(β·S)·B·C·M·H·W floats, whatever S·N is beyond that.
 */
export interface DsgRecord {
  readonly kind: 'dsg-record';
  /** S, the DDIM steps of the clip that made it. */
  readonly steps: number;
  /** M, the reference frames. */
  readonly referenceFrames: number;
  /** β, the staged-guidance strength. */
  readonly beta: number;
  /** The latent shape [B, C, N, H, W]. */
  readonly shape: readonly number[];
  /** record[0]: the clip's input latent at step 0 (after DSG), whole. */
  readonly first: Tensor;
  /** tails[i] = record[i][:, :, N-M:] ([B, C, M, H, W]) for i < dsgRecordedSteps(S, β, M). */
  readonly tails: readonly Tensor[];
}

export function recordBytes(r: DsgRecord): number {
  let n = r.first.data.byteLength;
  for (const t of r.tails) n += t.data.byteLength;
  return n;
}

/** A record's tail slice of a latent: frames N-M … N-1 of z. */
export function recordTail(z: Tensor, M: number): Tensor {
  const d = latentDims(z, 'record');
  const out: Tensor = { data: new Float32Array(d.B * d.C * M * d.H * d.W), shape: [d.B, d.C, M, d.H, d.W] };
  copyFramesInto(out, 0, z, d.F - M, M);
  return out;
}

/**
 * DSG in place on z (a latent the caller owns): for each j < M with dsgActive(i, j) under this
 * clip's β, sets
 * z[:, :, j] = flip(past[i])[:, :, j] = past[i][:, :, N-1-j], i.e. tails[i] frame M-1-j.
 * Returns the frames it replaced.
 */
export function applyDsgInto(z: Tensor, past: DsgRecord, i: number, beta: number): number[] {
  const M = past.referenceFrames;
  const replaced: number[] = [];
  for (let j = 0; j < M; j++) {
    if (!dsgActive(i, j, past.steps, beta, M)) continue;
    const tail = past.tails[i];
    if (!tail) throw new Error(`DSG: the previous record has no frames for step ${i}`);
    copyFramesInto(z, j, tail, M - 1 - j, 1);
    replaced.push(j);
  }
  return replaced;
}

/**
 * Checks that a previous clip's record fits this clip: same S, M and latent shape, and enough
 * recorded steps for this clip's β (a different β is fine if the record covers it).
 */
export function checkRecordMatches(
  past: DsgRecord,
  S: number,
  M: number,
  beta: number,
  shape: readonly number[],
): void {
  const problems: string[] = [];
  if (past.steps !== S) problems.push(`it was made with ${past.steps} steps, this clip uses ${S}`);
  if (past.referenceFrames !== M) {
    problems.push(`it was made with ${past.referenceFrames} reference frames, this clip uses ${M}`);
  }
  if (past.shape.length !== shape.length || past.shape.some((v, k) => v !== shape[k])) {
    problems.push(`its latent shape is ${formatShape(past.shape)}, this clip's is ${formatShape(shape)}`);
  }
  const needed = dsgRecordedSteps(S, beta, M);
  if (problems.length === 0 && past.tails.length < needed) {
    problems.push(
      `it holds ${past.tails.length} guided steps (beta ${past.beta}), this clip's beta ${beta} needs ${needed}`,
    );
  }
  if (problems.length > 0) {
    throw new Error(`previous record does not fit this clip: ${problems.join('; ')}`);
  }
  if (
    past.first.data.length !== numel(shape) ||
    past.tails.some((t) => t.data.length !== (numel(shape) / shape[2]) * M)
  ) {
    throw new Error('previous record is damaged: its tensors have the wrong size');
  }
}
