// IEEE 754 binary16 <-> binary32 by bit manipulation: round to nearest even, subnormals, ±inf, NaN.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float32 bit pattern to float16 bits, rounding to nearest, ties to even. */
function bitsToHalf(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays inf; NaN stays a quiet NaN, keeping the top payload bits.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large for half: overflow to inf
  if (e <= 0) {
    // Half subnormal (or zero): value / 2^-24 = mant' >> shift, with the implicit bit made explicit.
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++;
    return sign | h; // a carry here correctly becomes the smallest normal
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach inf: correct
  return sign | h;
}

export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  return bitsToHalf(u32[0]);
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  u32[0] = ((h & 0x8000) << 16) | ((exp + 112) << 23) | (mant << 13);
  return f32[0];
}

export function float32ToFloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let k = 0; k < src.length; k++) out[k] = bitsToHalf(bits[k]);
  return out;
}

export function float16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let k = 0; k < src.length; k++) out[k] = float16BitsToFloat32(src[k]);
  return out;
}
