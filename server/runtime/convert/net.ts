// A graph under construction whose weights come from a checkpoint: `param(key, shape)` binds a
// state-dict key to a lazily written initializer and records what the architecture expects, so
// that after building, every key is accounted for as PyTorch's strict load does (missing,
// unexpected, wrong shape), before a byte of the model is written.
import { ModelBuilder, type AttrValue } from '../onnx/builder.ts';
import type { WeightSource } from '../weights/types.ts';

export type WeightDType = 'float32' | 'float16';

/** What the source checkpoint lacks or has too much of, relative to the graph built from config. */
export interface KeyReport {
  readonly missing: string[];
  readonly unexpected: string[];
  /** "key: checkpoint [a, b], config implies [c, d]". */
  readonly mismatched: string[];
}

export interface ParamOptions {
  /**
   * Store the weight transposed ([out, in] → [in, out], the layout MatMul wants); a 1×1 conv
   * weight [out, in, 1, 1] is stored as [in, out] too. Other dims are refused.
   */
  transpose?: boolean;
  /** Reshape stored data to these dims (same element count), e.g. a per-channel scale to [C,1,1]. */
  reshape?: readonly number[];
}

export interface NetOptions {
  name: string;
  /** Storage type of weights; the graph computes in float32 either way (float16 weights are cast at load). */
  dtype?: WeightDType;
  /** Keys present in the source that are buffers, not weights (e.g. CLIP's position_ids): never "unexpected". */
  ignore?: (key: string) => boolean;
  /** Prefix of every key in the source (e.g. "unet." inside a training checkpoint). */
  prefix?: string;
  opset?: number;
}

export class Net {
  readonly b: ModelBuilder;
  readonly dtype: WeightDType;
  private readonly used = new Map<string, readonly number[]>();
  private readonly missing: string[] = [];
  private readonly mismatched: string[] = [];
  private readonly consts = new Map<string, string>();
  private constCount = 0;

  constructor(
    private readonly source: WeightSource,
    private readonly opts: NetOptions,
  ) {
    this.b = new ModelBuilder({ name: opts.name, opset: opts.opset ?? 17 });
    this.dtype = opts.dtype ?? 'float32';
  }

  /**
   * The float32 value of state-dict weight `key`, which the config says has `shape`. A key the
   * checkpoint lacks, or holds with another shape, is recorded (see `report`) and stands in as zeros
   * so the build can go on and list every problem at once.
   */
  param(key: string, shape: readonly number[], opts: ParamOptions = {}): string {
    const full = (this.opts.prefix ?? '') + key;
    if (this.used.has(full)) throw new Error(`graph uses weight "${full}" twice`);
    this.used.set(full, shape);
    const info = this.source.tensors.get(full);
    if (info === undefined) this.missing.push(key);
    else if (!sameShape(info.shape, shape)) {
      this.mismatched.push(
        `${key}: checkpoint [${info.shape.join(', ')}], config implies [${shape.join(', ')}]`,
      );
    }
    if (opts.transpose && (shape.length < 2 || shape.slice(2).some((d) => d !== 1))) {
      throw new Error(
        `weight "${full}": cannot store [${shape.join(', ')}] transposed (2-D or [out, in, 1, 1] only)`,
      );
    }
    const dims = opts.reshape ?? (opts.transpose ? [shape[1], shape[0]] : shape);
    const ok = info !== undefined && sameShape(info.shape, shape);
    const produce = async (): Promise<Float32Array | Uint16Array> => {
      if (!ok) throw new Error(`weight "${full}" is missing or has the wrong shape`);
      // float16 stored and wanted: copy the bits, no decode and re-encode.
      const half =
        this.dtype === 'float16' && info.dtype === 'float16' ? await this.source.readHalf?.(full) : undefined;
      const data = half ?? (await this.source.read(full));
      if (this.dtype === 'float16' && data instanceof Float32Array) checkHalfRange(data, full, info.file);
      return opts.transpose ? transpose2d(data, shape[0], shape[1]) : data;
    };
    const name = this.b.lazyInitializer(key, this.dtype, dims, produce);
    if (this.dtype === 'float32') return name;
    return this.b.op('Cast', [name], { to: 1 });
  }

  /** Whether the source holds `key` (under this net's prefix): for layouts whose key names vary by version. */
  has(key: string): boolean {
    return this.source.tensors.has((this.opts.prefix ?? '') + key);
  }

  /** The source's keys under this net's prefix, prefix removed (to classify what a converter skips). */
  keys(): string[] {
    const prefix = this.opts.prefix ?? '';
    return [...this.source.tensors.keys()]
      .filter((k) => k.startsWith(prefix))
      .map((k) => k.slice(prefix.length));
  }

  /** Every weight the graph reads: full state-dict key → the shape the config implies. */
  expected(): ReadonlyMap<string, readonly number[]> {
    return this.used;
  }

  /** Number of weight values the graph reads from the checkpoint. */
  parameters(): number {
    let n = 0;
    for (const shape of this.used.values()) n += shape.reduce((a, d) => a * d, 1);
    return n;
  }

  /** Keys of the source under this net's prefix that the graph never asked for. */
  report(): KeyReport {
    const prefix = this.opts.prefix ?? '';
    const unexpected: string[] = [];
    for (const key of this.source.tensors.keys()) {
      if (!key.startsWith(prefix)) continue;
      if (this.used.has(key)) continue;
      const local = key.slice(prefix.length);
      if (this.opts.ignore?.(local)) continue;
      unexpected.push(local);
    }
    return { missing: [...this.missing], unexpected, mismatched: [...this.mismatched] };
  }

  /** A float32 constant (deduplicated by value). */
  constF(values: readonly number[] | Float32Array, dims?: readonly number[]): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.constant(data, dims ?? [data.length]);
  }

  /** An int64 constant (shapes, axes, indices). */
  constI(values: readonly number[], dims?: readonly number[]): string {
    return this.constant(
      BigInt64Array.from(values, (v) => BigInt(v)),
      dims ?? [values.length],
    );
  }

  private constant(data: Float32Array | BigInt64Array, dims: readonly number[]): string {
    const tag = `${data instanceof Float32Array ? 'f' : 'i'}:${dims.join(',')}:${Array.from(data as ArrayLike<number | bigint>).join(',')}`;
    const cached = tag.length < 256 ? this.consts.get(tag) : undefined;
    if (cached !== undefined) return cached;
    const name = this.b.initializer(`const_${this.consts.size}_${this.constCount++}`, data, dims);
    if (tag.length < 256) this.consts.set(tag, name);
    return name;
  }

  op(
    type: string,
    inputs: readonly string[],
    attrs: Readonly<Record<string, AttrValue>> = {},
    domain?: string,
  ): string {
    return this.b.op(type, inputs, attrs, domain === undefined ? {} : { domain });
  }

  /** Dims `start..end` of x's shape as an int64 tensor ([end-start]). */
  shape(x: string, start: number, end?: number): string {
    return this.op('Shape', [x], end === undefined ? { start } : { start, end });
  }

  /** x reshaped to `parts`: numbers are fixed dims (0 = copy, -1 = infer), strings int64 [k] tensors. */
  reshape(x: string, parts: readonly (number | string)[]): string {
    if (parts.every((p) => typeof p === 'number'))
      return this.op('Reshape', [x, this.constI(parts as number[])]);
    const pieces: string[] = [];
    let run: number[] = [];
    for (const p of parts) {
      if (typeof p === 'number') run.push(p);
      else {
        if (run.length > 0) pieces.push(this.constI(run));
        run = [];
        pieces.push(p);
      }
    }
    if (run.length > 0) pieces.push(this.constI(run));
    return this.op('Reshape', [x, this.op('Concat', pieces, { axis: 0 })]);
  }

  transpose(x: string, perm: readonly number[]): string {
    return this.op('Transpose', [x], { perm: [...perm] });
  }
}

/** Throws one error listing every key problem of the given nets' reports (`what` names the component). */
export function assertStrict(what: string, report: KeyReport): void {
  const lines: string[] = [];
  if (report.missing.length > 0)
    lines.push(`missing keys (${report.missing.length}): ${report.missing.join(', ')}`);
  if (report.unexpected.length > 0) {
    lines.push(`unexpected keys (${report.unexpected.length}): ${report.unexpected.join(', ')}`);
  }
  if (report.mismatched.length > 0) {
    lines.push(`shape mismatches (${report.mismatched.length}): ${report.mismatched.join('; ')}`);
  }
  if (lines.length > 0)
    throw new Error(`${what}: the checkpoint does not fit the config: ${lines.join('; ')}`);
}

/** float16 rounds magnitudes from 65520 up to infinity: such a weight would silently break the model. */
const HALF_OVERFLOW = 65520;

function checkHalfRange(data: Float32Array, key: string, file: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if ((v >= HALF_OVERFLOW || v <= -HALF_OVERFLOW) && Number.isFinite(v)) {
      throw new Error(
        `${file}: weight "${key}" holds ${v} (element ${i}), beyond float16's range (±65504): convert with --dtype float32`,
      );
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function transpose2d<T extends Float32Array | Uint16Array>(data: T, rows: number, cols: number): T {
  const out = new (data.constructor as new (n: number) => T)(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
