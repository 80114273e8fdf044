// Cache keys: literal signatures tell apart values that differ in type or content, and stay stable.
import { describe, expect, test } from 'vitest';
import { literalSignature } from '../../server/engine/cache.ts';

describe('literalSignature', () => {
  test('equal values get equal signatures, on first and repeated use', () => {
    for (const v of [5, 'a red ball', true, null, undefined, 0.25, { a: [1, 2] }]) {
      const first = literalSignature(v);
      expect(literalSignature(v)).toBe(first);
      expect(literalSignature(structuredClone(v))).toBe(first);
    }
  });

  test('values that differ in type or content get different signatures', () => {
    const values = [5, '5', 6, true, 'true', null, undefined, 'null', 0.5, [5], { v: 5 }, ''];
    const sigs = values.map((v) => literalSignature(v));
    expect(new Set(sigs).size).toBe(values.length);
  });
});
