// Reads a model's graph inputs/outputs (names, element types, shapes) and the external data files
// it names, straight from the ONNX protobuf, without loading weights or creating a session: used
// to validate a model folder before any run. Walks the wire format with positional reads, so a
// multi-GB model.onnx costs a few small reads (weights are skipped by length, never read).
import { open, type FileHandle } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import type { ModelIO, ValueSpec } from '../io.ts';

const { onnx } = onnxProto;

const ELEM_NAMES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};

// Field numbers of onnx.proto: ModelProto.graph; GraphProto.initializer/input/output.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
/** Initializers larger than this are inline weights (external ones hold only a few strings). */
const SMALL_TENSOR = 64 * 1024;

/** Buffered positional reader over a file: varints and byte ranges at a cursor. */
class Cursor {
  private buf = Buffer.alloc(64 * 1024);
  private bufStart = 0;
  private bufLen = 0;
  pos = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  private async fill(at: number, n: number): Promise<void> {
    if (at >= this.bufStart && at + n <= this.bufStart + this.bufLen) return;
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, at);
    this.bufStart = at;
    this.bufLen = bytesRead;
    if (bytesRead < Math.min(n, this.size - at) || at + n > this.size) {
      throw new Error('truncated protobuf (file ends inside a field)');
    }
  }

  async varint(): Promise<number> {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      await this.fill(this.pos, 1);
      const b = this.buf[this.pos - this.bufStart];
      this.pos++;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new Error('malformed protobuf varint');
  }

  async bytes(n: number): Promise<Uint8Array> {
    await this.fill(this.pos, n);
    const at = this.pos - this.bufStart;
    this.pos += n;
    return Uint8Array.from(this.buf.subarray(at, at + n));
  }

  /** Skips a field's value of wire type `wt`. */
  async skip(wt: number): Promise<void> {
    if (wt === 0) await this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 2) {
      const n = await this.varint(); // read before `this.pos` is: the varint moves it
      this.pos += n;
    } else if (wt === 5) this.pos += 4;
    else throw new Error(`unsupported protobuf wire type ${wt}`);
  }
}

function valueSpec(v: onnxProto.onnx.IValueInfoProto): ValueSpec {
  const t = v.type?.tensorType;
  const dims = t?.shape?.dim;
  return {
    name: v.name ?? '',
    type: ELEM_NAMES[t?.elemType ?? 0] ?? `onnx type ${t?.elemType ?? 0}`,
    shape:
      t?.shape === null || t?.shape === undefined
        ? null
        : (dims ?? []).map((d) =>
            d.dimParam
              ? d.dimParam
              : d.dimValue !== null && d.dimValue !== undefined
                ? Number(d.dimValue)
                : '?',
          ),
  };
}

export interface OnnxHeader extends ModelIO {
  /** External data files the initializers name, relative to the model file. */
  externalFiles: string[];
}

/** Reads inputs, outputs and external data locations of an .onnx file. Throws on a non-ONNX file. */
export async function readOnnxHeader(file: string): Promise<OnnxHeader> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const c = new Cursor(fh, size);
    const inputs: ValueSpec[] = [];
    const outputs: ValueSpec[] = [];
    const initializers = new Set<string>();
    const external = new Set<string>();
    let sawGraph = false;
    while (c.pos < size) {
      const tag = await c.varint();
      if (tag >>> 3 !== MODEL_GRAPH || (tag & 7) !== 2) {
        await c.skip(tag & 7);
        continue;
      }
      sawGraph = true;
      const graphLen = await c.varint();
      const end = c.pos + graphLen;
      while (c.pos < end) {
        const gtag = await c.varint();
        const field = gtag >>> 3;
        const wt = gtag & 7;
        if (wt !== 2 || ![GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_INITIALIZER].includes(field)) {
          await c.skip(wt);
          continue;
        }
        const len = await c.varint();
        if (field === GRAPH_INITIALIZER && len > SMALL_TENSOR) {
          c.pos += len;
          continue;
        }
        const body = await c.bytes(len);
        if (field === GRAPH_INITIALIZER) {
          const t = onnx.TensorProto.decode(body);
          initializers.add(t.name);
          if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
            const loc = t.externalData.find((e) => e.key === 'location')?.value;
            if (loc) external.add(loc);
          }
        } else {
          (field === GRAPH_INPUT ? inputs : outputs).push(valueSpec(onnx.ValueInfoProto.decode(body)));
        }
      }
    }
    if (!sawGraph) throw new Error('not an ONNX model (no graph found)');
    // Old exports (IR < 4) list weights among the graph inputs; they are not inputs to feed.
    return { inputs: inputs.filter((i) => !initializers.has(i.name)), outputs, externalFiles: [...external] };
  } finally {
    await fh.close();
  }
}
