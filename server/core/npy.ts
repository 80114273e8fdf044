// .npy read and write, the interchange format with NumPy/PyTorch. Reads format versions 1, 2 and 3
// (C order); writes float32 or float16 with the header NumPy itself writes (version 1 unless the
// header needs more than 65535 bytes, padded with spaces and a newline so data starts 64-aligned).
import { float16ToFloat32, float32ToFloat16 } from './half.ts';
import type { Tensor } from './tensor-type.ts';
import { formatShape, numel } from './tensor.ts';

export type NpyDtype =
  | 'float16'
  | 'float32'
  | 'float64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool';

export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

export interface NpyArray {
  /** NumPy's dtype name; float16 data comes as raw bits (Uint16Array), bool as 0/1 bytes. */
  readonly dtype: NpyDtype;
  readonly shape: number[];
  readonly data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64; // numpy.lib.format.ARRAY_ALIGN

interface DtypeInfo {
  readonly dtype: NpyDtype;
  readonly size: number;
}

// Type code (after the byte-order character) -> dtype.
const CODES: Record<string, DtypeInfo> = {
  f2: { dtype: 'float16', size: 2 },
  f4: { dtype: 'float32', size: 4 },
  f8: { dtype: 'float64', size: 8 },
  i1: { dtype: 'int8', size: 1 },
  i2: { dtype: 'int16', size: 2 },
  i4: { dtype: 'int32', size: 4 },
  i8: { dtype: 'int64', size: 8 },
  u1: { dtype: 'uint8', size: 1 },
  u2: { dtype: 'uint16', size: 2 },
  u4: { dtype: 'uint32', size: 4 },
  u8: { dtype: 'uint64', size: 8 },
  b1: { dtype: 'bool', size: 1 },
};

function fail(reason: string): never {
  throw new Error(`not a readable .npy file: ${reason}`);
}

interface Header {
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: number[];
  readonly dataOffset: number;
}

function parseHeader(bytes: Uint8Array): Header {
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b)) fail('missing the \\x93NUMPY magic');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail('truncated header');
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    fail(`format version ${major}.${bytes[7]} is not supported (1, 2 and 3 are)`);
  }
  if (start + headerLen > bytes.length) fail('truncated header');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(start, start + headerLen),
  );
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) fail(`header has no descr, fortran_order or shape: ${text.trim()}`);
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const d = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(d) || d < 0) fail(`bad shape entry "${s}"`);
      return d;
    });
  return { descr: descr[1], fortranOrder: fortran[1] === 'True', shape: dims, dataOffset: start + headerLen };
}

/** Parses a .npy file. Multi-byte little-endian data is copied into a typed array of its dtype. */
export function readNpy(bytes: Uint8Array): NpyArray {
  const h = parseHeader(bytes);
  if (h.fortranOrder) {
    fail('the array is stored in Fortran order; save it in C order (np.ascontiguousarray) and try again');
  }
  const order = h.descr[0];
  const info = CODES[h.descr.slice(1)];
  if (!info || !'<>|='.includes(order)) fail(`dtype "${h.descr}" is not supported`);
  const bigEndian = order === '>' && info.size > 1;
  const n = numel(h.shape);
  const byteLength = n * info.size;
  if (h.dataOffset + byteLength > bytes.length) {
    fail(`shape ${formatShape(h.shape)} of ${info.dtype} needs ${byteLength} data bytes, file has fewer`);
  }
  // Copy into a fresh, aligned buffer (also makes the result independent of the input bytes). Not
  // bytes.slice: on a Node Buffer that is a view into a shared pool.
  const raw = new Uint8Array(byteLength);
  raw.set(bytes.subarray(h.dataOffset, h.dataOffset + byteLength));
  if (bigEndian) {
    for (let k = 0; k < byteLength; k += info.size) raw.subarray(k, k + info.size).reverse();
  }
  const buf = raw.buffer;
  const data: NpyData = (() => {
    switch (info.dtype) {
      case 'float16':
        return new Uint16Array(buf, 0, n);
      case 'float32':
        return new Float32Array(buf, 0, n);
      case 'float64':
        return new Float64Array(buf, 0, n);
      case 'int8':
        return new Int8Array(buf, 0, n);
      case 'int16':
        return new Int16Array(buf, 0, n);
      case 'int32':
        return new Int32Array(buf, 0, n);
      case 'int64':
        return new BigInt64Array(buf, 0, n);
      case 'uint8':
      case 'bool':
        return new Uint8Array(buf, 0, n);
      case 'uint16':
        return new Uint16Array(buf, 0, n);
      case 'uint32':
        return new Uint32Array(buf, 0, n);
      case 'uint64':
        return new BigUint64Array(buf, 0, n);
    }
  })();
  return { dtype: info.dtype, shape: h.shape, data };
}

/** Any supported .npy as a float32 Tensor (float16/float64/integers/bool converted). */
export function npyToTensor(bytes: Uint8Array): Tensor {
  const a = readNpy(bytes);
  let data: Float32Array;
  if (a.dtype === 'float32') data = a.data as Float32Array;
  else if (a.dtype === 'float16') data = float16ToFloat32(a.data as Uint16Array);
  else if (a.data instanceof BigInt64Array || a.data instanceof BigUint64Array) {
    const src = a.data;
    data = new Float32Array(src.length);
    for (let k = 0; k < src.length; k++) data[k] = Number(src[k]);
  } else data = Float32Array.from(a.data);
  return { data, shape: a.shape };
}

// NumPy's header: the dict literal, then room for the first axis to grow to 21 digits (np.save
// leaves it so arrays can be appended in place), then 1..64 spaces and a newline up to 64-alignment.
function headerText(descr: string, shape: readonly number[]): string {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const growth = shape.length > 0 ? Math.max(0, 21 - String(shape[0]).length) : 0;
  return dict + ' '.repeat(growth);
}

/** Serialises a tensor as .npy (float32 or float16, little-endian, C order), byte for byte as np.save. */
export function writeNpy(t: Tensor, dtype: 'float32' | 'float16' = 'float32'): Uint8Array {
  if (numel(t.shape) !== t.data.length) {
    throw new Error(`writeNpy: shape ${formatShape(t.shape)} does not match ${t.data.length} values`);
  }
  const descr = dtype === 'float16' ? '<f2' : '<f4';
  const header = new TextEncoder().encode(headerText(descr, t.shape));
  // Version 1 stores the header length in 2 bytes; NumPy moves to version 2 when it does not fit.
  const wrap = (prefix: number): number =>
    header.length + 1 + (ALIGN - ((prefix + header.length + 1) % ALIGN));
  let version = 1;
  let prefix = 10;
  let headerLen = wrap(prefix);
  if (headerLen > 0xffff) {
    version = 2;
    prefix = 12;
    headerLen = wrap(prefix);
  }
  const payload =
    dtype === 'float16'
      ? new Uint8Array(float32ToFloat16(t.data).buffer)
      : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Uint8Array(prefix + headerLen + payload.length);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  out.set(header, prefix);
  out.fill(0x20, prefix + header.length, prefix + headerLen - 1);
  out[prefix + headerLen - 1] = 0x0a;
  out.set(payload, prefix + headerLen);
  return out;
}
