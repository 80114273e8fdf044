// A small typed ONNX model builder over the `onnx-proto` protobuf classes: enough to write real
// graphs for test models and the demo model without Python.
//
// Usage:
//   const b = new ModelBuilder({ name: 'tiny' });               // opset 17 by default
//   b.input('x', 'float32', ['batch', 4]);                       // string dim = symbolic
//   b.initializer('w', new Float32Array(4 * 2), [4, 2]);         // Uint16Array = float16 bits
//   const y = b.op('MatMul', ['x', 'w']);                        // output name generated
//   b.node('Add', [y, 'bias'], ['out']);                         // or name outputs yourself
//   b.output('out', 'float32', ['batch', 2]);
//   const bytes = b.toBytes();                                   // all weights inside
//   await b.save('dir/model.onnx', { externalData: 'model.onnx_data' }); // weights beside it
//
// Attribute values: a number is INT when it is an integer, FLOAT otherwise; a number[] is INTS
// when every element is an integer, FLOATS otherwise; a string is STRING; a TensorValue (from
// `tensorValue`) is TENSOR. Wrap with `attr.float(1)` / `attr.floats([1, 2])` / `attr.int(n)` /
// `attr.ints([..])` when the inferred kind is wrong (e.g. LeakyRelu alpha = 1.0 must be FLOAT).
import { mkdir, open, writeFile } from 'node:fs/promises';
import { float32ToFloat16 } from '../../core/half.ts';
import path from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const AttrType = onnx.AttributeProto.AttributeType;

/** Element types the builder writes (graph values and initializers). */
export type ElemType = 'float32' | 'float16' | 'int32' | 'int64' | 'bool';
/** A dimension: a fixed size, a symbolic name (dynamic axis), or null (unknown, unnamed). */
export type Dim = number | string | null;

const ELEM: Record<ElemType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};

/** Initializer data: Float32Array → float32, Uint16Array → float16 bits, Int32Array, BigInt64Array. */
export type TensorData = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

/** A tensor value (initializer or TENSOR attribute); make one with `tensorValue`. */
export interface TensorValue {
  readonly kind: 'tensor';
  readonly type: ElemType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

function typeOfData(data: TensorData): ElemType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'float16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'bool';
}

/** A tensor value; dims default to [data.length]. Uint8Array data is read as bool. */
export function tensorValue(data: TensorData, dims?: readonly number[]): TensorValue {
  const shape = dims ?? [data.length];
  const n = shape.reduce((a, d) => a * d, 1);
  if (n !== data.length) {
    throw new Error(`tensor of shape [${shape.join(', ')}] needs ${n} elements, got ${data.length}`);
  }
  return { kind: 'tensor', type: typeOfData(data), dims: shape, data };
}

type Tagged =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: readonly number[] }
  | { kind: 'floats'; v: readonly number[] };

/** An attribute value; see the header for how plain numbers are read. */
export type AttrValue = number | readonly number[] | string | TensorValue | Tagged;

/** Explicit attribute kinds, for when inference from the JS value picks the wrong one. */
export const attr = {
  int: (v: number): Tagged => ({ kind: 'int', v }),
  float: (v: number): Tagged => ({ kind: 'float', v }),
  ints: (v: readonly number[]): Tagged => ({ kind: 'ints', v }),
  floats: (v: readonly number[]): Tagged => ({ kind: 'floats', v }),
};

function bytesOf(data: TensorData): Uint8Array {
  // ONNX raw_data is little-endian, as typed arrays are on every platform Node ships for.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

function tensorProto(name: string, t: TensorValue): onnxProto.onnx.TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType: ELEM[t.type],
    dims: [...t.dims],
    rawData: bytesOf(t.data),
  });
}

function attributeProto(name: string, value: AttrValue): onnxProto.onnx.AttributeProto {
  const a = onnx.AttributeProto.create({ name });
  if (typeof value === 'string') {
    a.type = AttrType.STRING;
    a.s = new TextEncoder().encode(value);
  } else if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      a.type = AttrType.INT;
      a.i = value;
    } else {
      a.type = AttrType.FLOAT;
      a.f = value;
    }
  } else if (Array.isArray(value)) {
    const nums = value as readonly number[];
    if (nums.every((v) => Number.isInteger(v))) {
      a.type = AttrType.INTS;
      a.ints = [...nums];
    } else {
      a.type = AttrType.FLOATS;
      a.floats = [...nums];
    }
  } else {
    const v = value as TensorValue | Tagged;
    switch (v.kind) {
      case 'tensor':
        a.type = AttrType.TENSOR;
        a.t = tensorProto('', v);
        break;
      case 'int':
        a.type = AttrType.INT;
        a.i = v.v;
        break;
      case 'float':
        a.type = AttrType.FLOAT;
        a.f = v.v;
        break;
      case 'ints':
        a.type = AttrType.INTS;
        a.ints = [...v.v];
        break;
      case 'floats':
        a.type = AttrType.FLOATS;
        a.floats = [...v.v];
        break;
    }
  }
  return a;
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[] | null): onnxProto.onnx.ValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: ELEM[type] };
  if (dims !== null) {
    tensorType.shape = {
      dim: dims.map((d) =>
        typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {},
      ),
    };
  }
  return onnx.ValueInfoProto.create({ name, type: { tensorType } });
}

interface LazyInitializer {
  name: string;
  type: 'float32' | 'float16';
  dims: number[];
  /** Float32 values, or float16 bits (Uint16Array) for a float16 weight. */
  produce: () => Promise<Float32Array | Uint16Array>;
}

export interface ModelBuilderOptions {
  /** Graph name (shows in tools such as Netron). */
  name?: string;
  /** Default ONNX opset version: 17. */
  opset?: number;
  producerName?: string;
}

export interface SaveOptions {
  /**
   * Write initializers of at least `externalThreshold` bytes (default 1024) to this file, named
   * relative to the model file, instead of inside it (the layout large real exports use).
   */
  externalData?: string;
  externalThreshold?: number;
}

/** Builds one ONNX model: inputs, outputs, initializers and nodes, then `toBytes()` or `save()`. */
export class ModelBuilder {
  readonly opset: number;
  private readonly name: string;
  private readonly producerName: string;
  private readonly inputs: onnxProto.onnx.ValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.ValueInfoProto[] = [];
  private readonly initializers: { name: string; value: TensorValue }[] = [];
  private readonly lazy: LazyInitializer[] = [];
  private readonly nodes: onnxProto.onnx.NodeProto[] = [];
  private readonly used = new Set<string>();
  private readonly domains = new Set<string>();
  private counter = 0;

  constructor(opts: ModelBuilderOptions = {}) {
    this.opset = opts.opset ?? 17;
    this.name = opts.name ?? 'graph';
    this.producerName = opts.producerName ?? 'rdflow';
  }

  /** A graph input. dims: numbers, symbolic names, or null for an unknown rank. */
  input(name: string, type: ElemType, dims: readonly Dim[] | null): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A graph output; `name` must be produced by a node (or be an input/initializer). */
  output(name: string, type: ElemType, dims: readonly Dim[] | null): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant weight. dims default to [data.length]; Uint16Array data is float16 bits. */
  initializer(name: string, data: TensorData | TensorValue, dims?: readonly number[]): string {
    this.claim(name);
    const value = 'kind' in data ? data : tensorValue(data, dims);
    this.initializers.push({ name, value });
    return name;
  }

  /**
   * A weight whose values are produced only when the model is written with `saveStreaming`, one at
   * a time, so a converter never holds more than one tensor. Stored as `type` (float32 values are
   * rounded to float16 when `type` is float16).
   */
  lazyInitializer(
    name: string,
    type: 'float32' | 'float16',
    dims: readonly number[],
    produce: () => Promise<Float32Array | Uint16Array>,
  ): string {
    this.claim(name);
    this.lazy.push({ name, type, dims: [...dims], produce });
    return name;
  }

  /** Bytes the lazy weights will take on disk. */
  lazyBytes(): number {
    return this.lazy.reduce(
      (a, l) => a + l.dims.reduce((p, d) => p * d, 1) * (l.type === 'float16' ? 2 : 4),
      0,
    );
  }

  /** Name, operator and attributes of every node so far (tools: FLOP counts, graph statistics). */
  nodeList(): { name: string; opType: string; attrs: Record<string, unknown> }[] {
    return this.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      attrs: Object.fromEntries(
        n.attribute.map((a) => [a.name, a.ints && a.ints.length > 0 ? a.ints.map(Number) : Number(a.i)]),
      ),
    }));
  }

  /** A fresh unique value name starting with `prefix`. */
  fresh(prefix = 't'): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.used.has(n));
    this.used.add(n);
    return n;
  }

  /** A node with explicit output names. An empty input name means "optional input omitted". */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Readonly<Record<string, AttrValue>> = {},
    opts: { name?: string; domain?: string } = {},
  ): void {
    for (const o of outputs) this.used.add(o);
    if (opts.domain !== undefined && opts.domain !== '') this.domains.add(opts.domain);
    this.nodes.push(
      onnx.NodeProto.create({
        opType,
        input: [...inputs],
        output: [...outputs],
        name: opts.name ?? `${opType}_${this.nodes.length}`,
        domain: opts.domain ?? '',
        attribute: Object.entries(attrs).map(([k, v]) => attributeProto(k, v)),
      }),
    );
  }

  /** A single-output node whose output name is generated; returns that name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Readonly<Record<string, AttrValue>> = {},
    opts: { domain?: string } = {},
  ): string {
    const out = this.fresh(opType.toLowerCase());
    this.node(opType, inputs, [out], attrs, opts);
    return out;
  }

  /** The model with every weight inside it. */
  toBytes(): Uint8Array {
    if (this.lazy.length > 0)
      throw new Error('ONNX builder: a model with lazy weights is written with saveStreaming');
    return this.encode(new Map()).model;
  }

  /** Writes the model (and its external data file when asked), creating the folder. */
  async save(file: string, opts: SaveOptions = {}): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    if (opts.externalData === undefined) {
      await writeFile(file, this.toBytes());
      return;
    }
    const threshold = opts.externalThreshold ?? 1024;
    const external = new Map<string, { offset: number; length: number }>();
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { name, value } of this.initializers) {
      if (value.data.byteLength < threshold) continue;
      external.set(name, { offset, length: value.data.byteLength });
      chunks.push(bytesOf(value.data));
      offset += value.data.byteLength;
    }
    const { model } = this.encode(external, opts.externalData);
    await writeFile(file, model);
    await writeFile(path.join(path.dirname(file), opts.externalData), Buffer.concat(chunks));
  }

  /**
   * Writes the model with its weights streamed into `externalData` beside it: each lazy weight is
   * produced, written and dropped before the next, so peak memory is one tensor, not the model.
   * Weights under `externalThreshold` bytes (default 1024) stay inline. `onWeight` reports progress.
   */
  async saveStreaming(
    file: string,
    opts: {
      externalData: string;
      externalThreshold?: number;
      onWeight?: (name: string, bytes: number) => void;
    },
  ): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    const threshold = opts.externalThreshold ?? 1024;
    const external = new Map<string, { offset: number; length: number }>();
    const inline: { name: string; value: TensorValue }[] = [];
    const fh = await open(path.join(path.dirname(file), opts.externalData), 'w');
    let offset = 0;
    try {
      const write = async (name: string, value: TensorValue): Promise<void> => {
        const bytes = value.data.byteLength;
        if (bytes < threshold) {
          inline.push({ name, value });
        } else {
          const view = new Uint8Array(value.data.buffer, value.data.byteOffset, bytes);
          let done = 0;
          while (done < bytes) done += (await fh.write(view, done, bytes - done, offset + done)).bytesWritten;
          external.set(name, { offset, length: bytes });
          offset += bytes;
        }
        opts.onWeight?.(name, bytes);
      };
      for (const { name, value } of this.initializers) await write(name, value);
      for (const l of this.lazy) {
        const values = await l.produce();
        const n = l.dims.reduce((p, d) => p * d, 1);
        if (values.length !== n) {
          throw new Error(
            `weight "${l.name}": produced ${values.length} values for shape [${l.dims.join(', ')}]`,
          );
        }
        if (values instanceof Uint16Array && l.type !== 'float16') {
          throw new Error(`weight "${l.name}": float16 bits produced for a ${l.type} weight`);
        }
        const stored =
          l.type === 'float16' && values instanceof Float32Array ? float32ToFloat16(values) : values;
        await write(l.name, tensorValue(stored, l.dims));
      }
    } finally {
      await fh.close();
    }
    const { model } = this.encode(external, opts.externalData, inline);
    await writeFile(file, model);
  }

  private extraDomains(): { domain: string; version: number }[] {
    // Contrib operator sets (com.microsoft) are versioned 1.
    return [...this.domains].map((domain) => ({ domain, version: 1 }));
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`ONNX builder: value name "${name}" is already used`);
    this.used.add(name);
  }

  private encode(
    external: Map<string, { offset: number; length: number }>,
    location = '',
    streamed?: readonly { name: string; value: TensorValue }[],
  ): { model: Uint8Array } {
    const externalProto = (
      name: string,
      type: ElemType,
      dims: readonly number[],
    ): onnxProto.onnx.TensorProto => {
      const where = external.get(name);
      if (where === undefined) throw new Error(`ONNX builder: weight "${name}" was not written`);
      return onnx.TensorProto.create({
        name,
        dataType: ELEM[type],
        dims: [...dims],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: location },
          { key: 'offset', value: String(where.offset) },
          { key: 'length', value: String(where.length) },
        ].map((e) => onnx.StringStringEntryProto.create(e)),
      });
    };
    const initializer =
      streamed === undefined
        ? this.initializers.map(({ name, value }) =>
            external.has(name) ? externalProto(name, value.type, value.dims) : tensorProto(name, value),
          )
        : [
            ...streamed.map(({ name, value }) => tensorProto(name, value)),
            ...this.initializers
              .filter(({ name }) => external.has(name))
              .map(({ name, value }) => externalProto(name, value.type, value.dims)),
            ...this.lazy
              .filter(({ name }) => external.has(name))
              .map((l) => externalProto(l.name, l.type, l.dims)),
          ];
    const graph = onnx.GraphProto.create({
      name: this.name,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer,
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: this.producerName,
      opsetImport: [{ domain: '', version: this.opset }, ...this.extraDomains()],
      graph,
    });
    return { model: onnx.ModelProto.encode(model).finish() };
  }
}
