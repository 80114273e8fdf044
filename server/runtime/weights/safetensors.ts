// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw data. Only the header is parsed up front; each tensor
// is read by offset when asked for, so a multi-GB file costs one tensor's memory at a time.
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { float32ToFloat16 } from '../../core/half.ts';
import { toFloat32 } from './decode.ts';
import { openForReading, readExactly } from './zip.ts';
import {
  DTYPE_BYTES,
  halfBits,
  numel,
  type StoredDType,
  type TensorInfo,
  type WeightSource,
} from './types.ts';

const DTYPES: Record<string, StoredDType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** Headers larger than this are refused before allocating (real ones are well under 10 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

interface Entry extends TensorInfo {
  readonly begin: number;
  readonly end: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Opens one safetensors file; `label` names it in messages (default: its base name). */
export async function openSafetensors(file: string, label = path.basename(file)): Promise<WeightSource> {
  const fh = await openForReading(file, label);
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(8);
    if (size < 8 || (await fh.read(head, 0, 8, 0)).bytesRead < 8) {
      throw new Error(`${label}: truncated safetensors file (${size} bytes, no header)`);
    }
    const headerLen = head.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER) || Number(headerLen) + 8 > size) {
      throw new Error(
        `${label}: not a safetensors file or truncated (header of ${headerLen} bytes in a ${size}-byte file)`,
      );
    }
    const hlen = Number(headerLen);
    const hbuf = Buffer.alloc(hlen);
    await fh.read(hbuf, 0, hlen, 8);
    let header: unknown;
    try {
      header = JSON.parse(hbuf.toString('utf8'));
    } catch (e) {
      throw new Error(`${label}: safetensors header is not valid JSON (${(e as Error).message})`, {
        cause: e,
      });
    }
    if (!isRecord(header)) throw new Error(`${label}: safetensors header is not a JSON object`);
    const dataStart = 8 + hlen;
    const tensors = new Map<string, Entry>();
    for (const [key, raw] of Object.entries(header)) {
      if (key === '__metadata__') continue;
      if (!isRecord(raw)) throw new Error(`${label}: tensor "${key}": header entry is not an object`);
      const dtype = typeof raw.dtype === 'string' ? DTYPES[raw.dtype] : undefined;
      if (dtype === undefined) {
        throw new Error(`${label}: tensor "${key}": unsupported dtype ${JSON.stringify(raw.dtype)}`);
      }
      const shape = raw.shape;
      const offs = raw.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        throw new Error(`${label}: tensor "${key}": bad shape ${JSON.stringify(shape)}`);
      }
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o))) {
        throw new Error(`${label}: tensor "${key}": bad data_offsets ${JSON.stringify(offs)}`);
      }
      const [b, e] = offs as [number, number];
      const want = numel(shape as number[]) * DTYPE_BYTES[dtype];
      if (e - b !== want || b < 0) {
        throw new Error(
          `${label}: tensor "${key}": data_offsets [${b}, ${e}] hold ${e - b} bytes, but ${dtype} [${(shape as number[]).join(', ')}] needs ${want}`,
        );
      }
      if (dataStart + e > size) {
        throw new Error(
          `${label}: truncated: tensor "${key}" ends at byte ${dataStart + e}, the file has ${size}`,
        );
      }
      tensors.set(key, {
        key,
        dtype,
        shape: shape as number[],
        file: label,
        begin: dataStart + b,
        end: dataStart + e,
      });
    }
    return {
      tensors,
      async read(key: string): Promise<Float32Array> {
        const t = tensors.get(key);
        if (t === undefined) throw new Error(`${label}: no tensor "${key}"`);
        const buf = await readExactly(fh, t.begin, t.end - t.begin, () => `${label}: tensor "${key}"`);
        return toFloat32(buf, t.dtype, numel(t.shape), true);
      },
      async readHalf(key: string): Promise<Uint16Array | undefined> {
        const t = tensors.get(key);
        if (t === undefined || t.dtype !== 'float16') return undefined;
        return halfBits(await readExactly(fh, t.begin, t.end - t.begin, () => `${label}: tensor "${key}"`));
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** One tensor to write: its values are produced only when its turn comes. */
export interface SafetensorsEntry {
  readonly key: string;
  readonly dtype: 'float32' | 'float16' | 'bfloat16';
  readonly shape: readonly number[];
  readonly produce: () => Float32Array | Promise<Float32Array>;
}

const WRITE_DTYPES = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** float32 → bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN). */
function toBFloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const u = bits[i];
    if ((u & 0x7fffffff) > 0x7f800000) out[i] = ((u >>> 16) & 0x8000) | 0x7fc0;
    else out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Writes a safetensors file: the header (from every entry's key, dtype and shape), then each
 * entry's `produce()` in turn, so one tensor is in memory at a time. The file appears under its
 * name only when complete (written to a temporary name in the same folder, then renamed).
 */
export async function writeSafetensors(
  file: string,
  entries: Iterable<SafetensorsEntry> | AsyncIterable<SafetensorsEntry>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const list: SafetensorsEntry[] = [];
  for await (const e of entries) list.push(e);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const e of list) {
    if (e.key === '__metadata__' || Object.hasOwn(header, e.key)) {
      throw new Error(
        `${file}: tensor key "${e.key}" is ${e.key === '__metadata__' ? 'reserved' : 'repeated'}`,
      );
    }
    if (!(e.dtype in WRITE_DTYPES))
      throw new Error(`${file}: tensor "${e.key}": cannot write dtype ${e.dtype}`);
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${file}: tensor "${e.key}": bad shape [${e.shape.join(', ')}]`);
    }
    const bytes = numel(e.shape) * DTYPE_BYTES[e.dtype];
    header[e.key] = {
      dtype: WRITE_DTYPES[e.dtype],
      shape: [...e.shape],
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  // The data must start 8-byte aligned: pad the JSON with spaces, as the reference writer does.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const fh = await open(tmp, 'wx');
  let ok = false;
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, Math.min(b.length - done, 1 << 30), pos + done);
        done += bytesWritten;
      }
      pos += b.length;
    };
    await write(len);
    await write(json);
    for (const e of list) {
      let values: Float32Array;
      try {
        values = await e.produce();
      } catch (err) {
        throw new Error(`${file}: tensor "${e.key}": ${(err as Error).message}`, { cause: err });
      }
      const n = numel(e.shape);
      if (!(values instanceof Float32Array) || values.length !== n) {
        throw new Error(
          `${file}: tensor "${e.key}": produce() gave ${values instanceof Float32Array ? values.length : typeof values} values, shape [${e.shape.join(', ')}] needs ${n}`,
        );
      }
      const out =
        e.dtype === 'float32'
          ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
          : (() => {
              const h = e.dtype === 'float16' ? float32ToFloat16(values) : toBFloat16(values);
              return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
            })();
      await write(out);
    }
    await fh.datasync();
    ok = true;
  } finally {
    await fh.close();
    if (!ok) await unlink(tmp).catch(() => undefined);
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`${file}: cannot be written (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      cause: e,
    });
  }
}
