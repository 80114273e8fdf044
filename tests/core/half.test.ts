import { describe, expect, it } from 'vitest';
import {
  float16BitsToFloat32,
  float16ToFloat32,
  float32ToFloat16,
  float32ToFloat16Bits,
} from '../../server/core/half.ts';

const bits = (v: number): number => float32ToFloat16Bits(v);

describe('float32 -> float16 (IEEE binary16, round to nearest even)', () => {
  it('exact values keep their bits', () => {
    expect(bits(0)).toBe(0x0000);
    expect(bits(-0)).toBe(0x8000);
    expect(bits(1)).toBe(0x3c00);
    expect(bits(-2)).toBe(0xc000);
    expect(bits(65504)).toBe(0x7bff); // largest finite half
    expect(bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(bits(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
  });

  it('rounds to nearest, ties to even', () => {
    const ulp = 2 ** -10; // spacing of halves in [1, 2)
    expect(bits(1 + ulp / 2)).toBe(0x3c00); // tie: 1.0 is even
    expect(bits(1 + (3 * ulp) / 2)).toBe(0x3c02); // tie: 1+2ulp is even
    expect(bits(1 + ulp / 2 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(bits(1 + ulp / 2 - 2 ** -20)).toBe(0x3c00); // below the tie
    expect(bits(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal: 0 is even
    expect(bits(3 * 2 ** -25)).toBe(0x0002); // tie between subnormals 1 and 2: 2 is even
    expect(bits(2 ** -25 + 2 ** -35)).toBe(0x0001);
    expect(bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up from subnormal into the smallest normal
  });

  it('overflows to inf, keeps inf and NaN', () => {
    expect(bits(65519)).toBe(0x7bff); // below the midpoint 65520
    expect(bits(65520)).toBe(0x7c00); // tie with 65536 rounds to even = inf
    expect(bits(1e10)).toBe(0x7c00);
    expect(bits(-Infinity)).toBe(0xfc00);
    expect(bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(bits(NaN) & 0x03ff).not.toBe(0);
    expect(bits(1e-10)).toBe(0x0000);
    expect(bits(-1e-10)).toBe(0x8000);
  });
});

describe('float16 -> float32', () => {
  it('decodes normals, subnormals, zeros, inf and NaN', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x83ff)).toBe(-1023 * 2 ** -24);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });

  it('every one of the 65536 half values survives half -> float -> half', () => {
    const all = new Uint16Array(65536).map((_, k) => k);
    const back = float32ToFloat16(float16ToFloat32(all));
    const wrong: number[] = [];
    for (let k = 0; k < 65536; k++) {
      const isNaN = (k & 0x7c00) === 0x7c00 && (k & 0x03ff) !== 0;
      const ok = isNaN ? (back[k] & 0x7c00) === 0x7c00 && (back[k] & 0x03ff) !== 0 : back[k] === k;
      if (!ok) wrong.push(k);
    }
    expect(wrong).toEqual([]);
  });

  it('the array converters agree with the scalar ones (incl. a subarray view)', () => {
    const src = Float32Array.from([0, 1.5, -3.25, 1e-6, 7e4]);
    const view = src.subarray(1, 4);
    expect([...float32ToFloat16(view)]).toEqual([...view].map(bits));
  });
});
