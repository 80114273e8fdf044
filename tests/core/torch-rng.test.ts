import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { maxAbsDiff, numel } from '../../server/core/tensor.ts';
import { Mt19937, TorchGenerator, torchRandn, torchSeedToUint32 } from '../../server/core/torch-rng.ts';
import { readVectorJson, readVectorNpy } from './vectors.ts';

const randnJson = z.object({
  cases: z.array(
    z.object({
      kind: z.enum(['torch_cpu_randn', 'torch_cpu_randn_sequence']),
      seed: z.number().int(),
      shape: z.array(z.number().int()),
      file: z.string(),
      draws: z.number().int().optional(),
    }),
  ),
});
const { cases } = randnJson.parse(readVectorJson('randn.json'));

describe('torch.manual_seed(s); torch.randn(shape) matches PyTorch', () => {
  it('covers both paths (numel < 16 and >= 16, with and without a tail)', () => {
    const sizes = cases.map((c) => numel(c.shape));
    expect(sizes.some((n) => n < 16)).toBe(true);
    expect(sizes.some((n) => n >= 16 && n % 16 === 0)).toBe(true);
    expect(sizes.some((n) => n > 16 && n % 16 !== 0)).toBe(true);
  });

  for (const c of cases) {
    it(`${c.file}: seed ${c.seed}, shape [${c.shape.join(', ')}]${c.draws ? `, ${c.draws} draws` : ''}, within 1e-5`, () => {
      const expected = readVectorNpy(c.file);
      const draws = c.kind === 'torch_cpu_randn_sequence' ? (c.draws ?? 1) : 1;
      expect(expected.shape).toEqual(draws > 1 ? [draws, ...c.shape] : c.shape);
      // One generator, successive draws continue its stream (array[k] is the k-th randn).
      const g = new TorchGenerator(c.seed);
      const n = numel(c.shape);
      for (let k = 0; k < draws; k++) {
        const got = g.randn(c.shape);
        expect(got.shape).toEqual(c.shape);
        const want = { data: expected.data.subarray(k * n, (k + 1) * n), shape: c.shape };
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      }
      if (draws === 1) expect(maxAbsDiff(torchRandn(c.shape, c.seed), expected)).toBeLessThan(1e-5);
    });
  }
});

describe('MT19937 and seeds', () => {
  it('is the standard MT19937: seed 5489 gives 3499211612 first and 4123659995 as the 10000th output', () => {
    const mt = new Mt19937(5489);
    expect(mt.nextUint32()).toBe(3499211612);
    for (let k = 2; k < 10000; k++) mt.nextUint32();
    expect(mt.nextUint32()).toBe(4123659995);
  });

  it('uses only the low 32 bits of a seed, as PyTorch does (ComfyUI seeds reach 2^64-1)', () => {
    expect(torchSeedToUint32(7)).toBe(7);
    expect(torchSeedToUint32(2 ** 32 + 7)).toBe(7);
    expect(torchSeedToUint32(2n ** 64n - 1n)).toBe(0xffffffff);
    expect(torchSeedToUint32(-1)).toBe(0xffffffff); // negative Python ints wrap to uint64
    expect(torchSeedToUint32(2n ** 40n + 42n)).toBe(42);
    expect(torchRandn([1, 4, 2, 3, 5], 2n ** 40n + 42n).data).toEqual(torchRandn([1, 4, 2, 3, 5], 42).data);
  });

  it('rejects a non-integer seed', () => {
    expect(() => torchRandn([4], 1.5)).toThrow(/seed must be an integer/);
  });

  it('numel < 16 keeps the second Box–Muller value for the next element and the next call', () => {
    const whole = new TorchGenerator(42).randn([6]);
    const g = new TorchGenerator(42);
    const parts = [...g.randn([3]).data, ...g.randn([3]).data];
    expect(parts).toEqual([...whole.data]);
  });
});
