// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw data. Only the header is parsed up front; each tensor
// is read by offset when asked for, so a multi-GB file costs one tensor's memory at a time.
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { toFloat32 } from './decode.ts';
import { DTYPE_BYTES, numel, type StoredDType, type TensorInfo, type WeightSource } from './types.ts';

const DTYPES: Record<string, StoredDType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
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
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new Error(`${label}: cannot be opened (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      cause: e,
    });
  }
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
        const buf = Buffer.alloc(t.end - t.begin);
        const { bytesRead } = await fh.read(buf, 0, buf.length, t.begin);
        if (bytesRead !== buf.length) throw new Error(`${label}: truncated while reading tensor "${key}"`);
        return toFloat32(buf, t.dtype, numel(t.shape));
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
