// Stored little-endian tensor bytes → float32, for every type a checkpoint may hold.
import { float16BitsToFloat32 } from '../../core/half.ts';
import { DTYPE_BYTES, type StoredDType } from './types.ts';

/** Every float16 bit pattern's value: one lookup per element instead of bit arithmetic. */
let halfTable: Float32Array | undefined;
function halfToFloat(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32(h);
  }
  return halfTable;
}

/**
 * `bytes` (exactly n elements of `dtype`, little-endian) as float32. With `owned` the caller hands
 * `bytes` over: a float32 result may then share its memory instead of being a copy.
 */
export function toFloat32(bytes: Uint8Array, dtype: StoredDType, n: number, owned = false): Float32Array {
  const width = DTYPE_BYTES[dtype];
  if (bytes.byteLength < n * width) {
    throw new Error(`${n} ${dtype} values need ${n * width} bytes, got ${bytes.byteLength}`);
  }
  // Typed views need an aligned offset; file reads can land anywhere, so copy only when they did.
  let src = bytes;
  const aligned = bytes.byteOffset % width === 0;
  if (!aligned || (dtype === 'float32' && !owned)) {
    src = new Uint8Array(n * width);
    src.set(bytes.subarray(0, n * width));
  }
  const buf = src.buffer;
  const at = src.byteOffset;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, at, n);
    case 'float16': {
      const table = halfToFloat();
      const h = new Uint16Array(buf, at, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[h[i]];
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: shift the bits up.
      const h = new Uint16Array(buf, at, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = h[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'float64':
      return Float32Array.from(new Float64Array(buf, at, n));
    case 'int64':
      return Float32Array.from(new BigInt64Array(buf, at, n), (v) => Number(v));
    case 'int32':
      return Float32Array.from(new Int32Array(buf, at, n));
    case 'int16':
      return Float32Array.from(new Int16Array(buf, at, n));
    case 'int8':
      return Float32Array.from(new Int8Array(buf, at, n));
    case 'uint8':
    case 'bool':
      return Float32Array.from(new Uint8Array(buf, at, n));
  }
}
