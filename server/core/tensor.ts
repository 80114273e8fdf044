// Small ops on the shared Tensor type. Every op returns a new tensor unless its name says "Into"
// (those write into a destination the caller owns), so tensors passed between nodes stay immutable.
// Latents are [B, C, F, H, W] with the frame axis 2.
import type { Tensor } from './tensor-type.ts';

export type { Tensor } from './tensor-type.ts';

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function assertValidShape(shape: readonly number[], what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`${what}: invalid shape ${formatShape(shape)} (dimensions must be integers >= 0)`);
    }
  }
}

/** Wraps data and shape after checking that they agree. */
export function tensor(data: Float32Array, shape: readonly number[], what = 'tensor'): Tensor {
  assertValidShape(shape, what);
  const n = numel(shape);
  if (data.length !== n) {
    throw new Error(`${what}: shape ${formatShape(shape)} needs ${n} values, got ${data.length}`);
  }
  return { data, shape: [...shape] };
}

export function zeros(shape: readonly number[]): Tensor {
  assertValidShape(shape, 'zeros');
  return { data: new Float32Array(numel(shape)), shape: [...shape] };
}

export function full(shape: readonly number[], value: number): Tensor {
  const t = zeros(shape);
  t.data.fill(value);
  return t;
}

export function clone(t: Tensor): Tensor {
  return { data: t.data.slice(), shape: [...t.shape] };
}

export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Throws `what: expected shape [..], got [..]` unless t has exactly `shape`. */
export function assertShape(t: Tensor, shape: readonly number[], what: string): void {
  if (!shapesEqual(t.shape, shape)) {
    throw new Error(`${what}: expected shape ${formatShape(shape)}, got ${formatShape(t.shape)}`);
  }
}

export function assertSameShape(a: Tensor, b: Tensor, what: string): void {
  if (!shapesEqual(a.shape, b.shape)) {
    throw new Error(`${what}: shapes differ, ${formatShape(a.shape)} vs ${formatShape(b.shape)}`);
  }
}

export interface LatentDims {
  readonly B: number;
  readonly C: number;
  readonly F: number;
  readonly H: number;
  readonly W: number;
}

/** Checks that t is a 5-D video latent [B, C, F, H, W] and returns its dimensions. */
export function latentDims(t: Tensor, what = 'latent'): LatentDims {
  if (t.shape.length !== 5) {
    throw new Error(`${what}: expected a video latent [B, C, F, H, W], got shape ${formatShape(t.shape)}`);
  }
  const [B, C, F, H, W] = t.shape;
  if (t.data.length !== B * C * F * H * W) {
    throw new Error(`${what}: shape ${formatShape(t.shape)} does not match ${t.data.length} values`);
  }
  return { B, C, F, H, W };
}

function checkFrameRange(d: LatentDims, start: number, count: number, what: string): void {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > d.F) {
    throw new Error(`${what}: frames ${start}..${start + count - 1} are outside 0..${d.F - 1}`);
  }
}

/**
 * Copies `count` frames from src (starting at srcStart) into dst (starting at dstStart), in place on
 * dst.data. B, C, H, W must agree. The caller must own dst (never a tensor another node holds).
 */
export function copyFramesInto(
  dst: Tensor,
  dstStart: number,
  src: Tensor,
  srcStart: number,
  count: number,
): void {
  const d = latentDims(dst, 'copyFrames destination');
  const s = latentDims(src, 'copyFrames source');
  if (d.B !== s.B || d.C !== s.C || d.H !== s.H || d.W !== s.W) {
    throw new Error(
      `copyFrames: source ${formatShape(src.shape)} and destination ${formatShape(dst.shape)} differ beyond the frame axis`,
    );
  }
  checkFrameRange(d, dstStart, count, 'copyFrames destination');
  checkFrameRange(s, srcStart, count, 'copyFrames source');
  const plane = d.H * d.W;
  const run = count * plane;
  const rows = d.B * d.C;
  for (let r = 0; r < rows; r++) {
    const from = (r * s.F + srcStart) * plane;
    const to = (r * d.F + dstStart) * plane;
    dst.data.set(src.data.subarray(from, from + run), to);
  }
}

/** Frames start .. start+count-1 as a new [B, C, count, H, W] tensor. */
export function getFrames(t: Tensor, start: number, count: number): Tensor {
  const d = latentDims(t, 'getFrames');
  checkFrameRange(d, start, count, 'getFrames');
  const out = zeros([d.B, d.C, count, d.H, d.W]);
  copyFramesInto(out, 0, t, start, count);
  return out;
}

/** A copy of t with frames dstStart.. replaced by all frames of src. */
export function setFrames(t: Tensor, dstStart: number, src: Tensor): Tensor {
  const out = clone(t);
  copyFramesInto(out, dstStart, src, 0, latentDims(src, 'setFrames source').F);
  return out;
}

/** Reverses the frame axis: out[:, :, j] = t[:, :, F-1-j]. */
export function flipFrameAxis(t: Tensor): Tensor {
  const d = latentDims(t, 'flipFrames');
  const out = zeros(t.shape);
  const plane = d.H * d.W;
  const rows = d.B * d.C;
  for (let r = 0; r < rows; r++) {
    const base = r * d.F * plane;
    for (let j = 0; j < d.F; j++) {
      const from = base + (d.F - 1 - j) * plane;
      out.data.set(t.data.subarray(from, from + plane), base + j * plane);
    }
  }
  return out;
}

/** Concatenates along axis 0 (the batch axis); all other dimensions must agree. */
export function concatBatch(parts: readonly Tensor[]): Tensor {
  if (parts.length === 0) throw new Error('concatBatch: nothing to concatenate');
  const rest = parts[0].shape.slice(1);
  let batch = 0;
  let total = 0;
  for (const p of parts) {
    if (p.shape.length === 0 || !shapesEqual(p.shape.slice(1), rest)) {
      throw new Error(
        `concatBatch: shapes ${parts.map((q) => formatShape(q.shape)).join(', ')} differ beyond the batch axis`,
      );
    }
    batch += p.shape[0];
    total += p.data.length;
  }
  const data = new Float32Array(total);
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  return { data, shape: [batch, ...rest] };
}

/** Splits axis 0 into `parts` equal pieces (copies, so each piece owns its buffer). */
export function splitBatch(t: Tensor, parts: number): Tensor[] {
  if (t.shape.length === 0 || !Number.isInteger(parts) || parts < 1 || t.shape[0] % parts !== 0) {
    throw new Error(`splitBatch: cannot split shape ${formatShape(t.shape)} into ${parts} equal batches`);
  }
  const shape = [t.shape[0] / parts, ...t.shape.slice(1)];
  const size = numel(shape);
  const out: Tensor[] = [];
  for (let k = 0; k < parts; k++) out.push({ data: t.data.slice(k * size, (k + 1) * size), shape });
  return out;
}

/** Repeats a tensor with batch 1 `times` times along axis 0 (e.g. one conditioning for B latents). */
export function repeatBatch(t: Tensor, times: number): Tensor {
  if (times === 1) return t;
  return concatBatch(Array.from({ length: times }, () => t));
}

/** a·x + b·y elementwise (x, y same shape). */
export function axpby(a: number, x: Tensor, b: number, y: Tensor): Tensor {
  assertSameShape(x, y, 'axpby');
  const out = new Float32Array(x.data.length);
  const xd = x.data;
  const yd = y.data;
  for (let k = 0; k < out.length; k++) out[k] = a * xd[k] + b * yd[k];
  return { data: out, shape: [...x.shape] };
}

export function add(x: Tensor, y: Tensor): Tensor {
  return axpby(1, x, 1, y);
}

export function sub(x: Tensor, y: Tensor): Tensor {
  return axpby(1, x, -1, y);
}

export function scale(x: Tensor, a: number): Tensor {
  const out = new Float32Array(x.data.length);
  const xd = x.data;
  for (let k = 0; k < out.length; k++) out[k] = a * xd[k];
  return { data: out, shape: [...x.shape] };
}

/** Largest |a - b| over all elements (for tests and diagnostics). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assertSameShape(a, b, 'maxAbsDiff');
  let m = 0;
  for (let k = 0; k < a.data.length; k++) {
    const d = Math.abs(a.data[k] - b.data[k]);
    if (d > m || Number.isNaN(d)) m = d;
  }
  return m;
}
