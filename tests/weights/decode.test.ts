// toFloat32 on unaligned input (reads can land at any byte), and the owned/not-owned contract.
import { describe, expect, it } from 'vitest';
import { toFloat32 } from '../../server/runtime/weights/decode.ts';

describe('toFloat32', () => {
  it('decodes from an odd byte offset for every width', () => {
    const backing = new Uint8Array(1 + 16);
    const at = backing.subarray(1);
    new DataView(at.buffer, 1).setFloat32(0, 1.5, true);
    new DataView(at.buffer, 1).setFloat32(4, -2, true);
    expect(Array.from(toFloat32(at, 'float32', 2))).toEqual([1.5, -2]);
    new DataView(at.buffer, 1).setUint16(0, 0x3c00, true);
    new DataView(at.buffer, 1).setUint16(2, 0xfc00, true);
    expect(Array.from(toFloat32(at, 'float16', 2, true))).toEqual([1, -Infinity]);
    new DataView(at.buffer, 1).setBigInt64(0, -77n, true);
    expect(Array.from(toFloat32(at, 'int64', 1, true))).toEqual([-77]);
    new DataView(at.buffer, 1).setFloat64(8, 0.125, true);
    expect(Array.from(toFloat32(at.subarray(8), 'float64', 1))).toEqual([0.125]);
  });

  it('copies float32 unless the bytes are handed over', () => {
    const bytes = new Uint8Array(new Float32Array([3, 4]).buffer);
    const copy = toFloat32(bytes, 'float32', 2);
    copy[0] = 9;
    expect(new Float32Array(bytes.buffer)[0]).toBe(3);
    expect(toFloat32(bytes, 'float32', 2, true).buffer).toBe(bytes.buffer);
    expect(() => toFloat32(bytes, 'float32', 3)).toThrow(/3 float32 values need 12 bytes, got 8/);
  });
});
