// Stored little-endian tensor bytes → float32, for every floating type a checkpoint may hold.
import { float16ToFloat32 } from '../../../nodes/lib/half.ts';
import type { StoredDType } from './types.ts';

/** `bytes` (exactly n elements of `dtype`, little-endian) as a fresh Float32Array. */
export function toFloat32(bytes: Uint8Array, dtype: StoredDType, n: number): Float32Array {
  // Copy into an aligned buffer first: file reads land at arbitrary offsets.
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  const buf = aligned.buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, 0, n);
    case 'float16':
      return float16ToFloat32(new Uint16Array(buf, 0, n));
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: shift the bits up.
      const src = new Uint16Array(buf, 0, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'float64':
      return Float32Array.from(new Float64Array(buf, 0, n));
    case 'int64':
      return Float32Array.from(new BigInt64Array(buf, 0, n), (v) => Number(v));
    case 'int32':
      return Float32Array.from(new Int32Array(buf, 0, n));
    case 'int16':
      return Float32Array.from(new Int16Array(buf, 0, n));
    case 'int8':
      return Float32Array.from(new Int8Array(buf, 0, n));
    case 'uint8':
    case 'bool':
      return Float32Array.from(new Uint8Array(buf, 0, n));
  }
}
