import { describe, expect, it } from 'vitest';
import { getFrames, maxAbsDiff, zeros } from '../../server/core/tensor.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import type { DsgRecord } from '../../server/core/vidrd.ts';
import {
  applyDsgInto,
  cfgCombine,
  dsgActive,
  dsgRecordedSteps,
  dsgStepsForFrame,
  dsgTable,
  flipFrames,
  pnsNoise,
  recordBytes,
  recordTail,
} from '../../server/core/vidrd.ts';

const shape = [1, 4, 8, 3, 3]; // N = 8 frames
const N = 8;

describe('FNR: flip(z)[:, :, j] = z[:, :, N-1-j]', () => {
  it('frame j of the flipped latent is frame N-1-j of the original', () => {
    const z = torchRandn(shape, 1);
    const r = flipFrames(z);
    for (let j = 0; j < N; j++) expect(getFrames(r, j, 1).data).toEqual(getFrames(z, N - 1 - j, 1).data);
  });
});

describe('PNS: z[j] = r[j] for j < M, α/sqrt(1+α²)·r[j] + ε[j]/sqrt(1+α²) for j ≥ M', () => {
  const r = flipFrames(torchRandn(shape, 10));
  const eps = torchRandn(shape, 11);

  it('follows the formula frame by frame (α = 4, M = 4: mix 0.9701, fresh std 0.2425)', () => {
    const z = pnsNoise(r, eps, 4, 4);
    for (let j = 0; j < N; j++) {
      const zj = getFrames(z, j, 1).data;
      const rj = getFrames(r, j, 1).data;
      const ej = getFrames(eps, j, 1).data;
      zj.forEach((v, k) => {
        const want = j < 4 ? rj[k] : (4 / Math.sqrt(17)) * rj[k] + ej[k] / Math.sqrt(17);
        expect(v).toBeCloseTo(want, 6);
      });
    }
    expect(4 / Math.sqrt(17)).toBeCloseTo(0.9701, 4);
    expect(1 / Math.sqrt(17)).toBeCloseTo(0.2425, 4);
  });

  it('α → ∞ is pure FNR: every frame equals the reversed old noise', () => {
    expect(maxAbsDiff(pnsNoise(r, eps, 1e6, 4), r)).toBeLessThan(1e-5);
    expect(pnsNoise(r, eps, Infinity, 4).data).toEqual(r.data);
    expect(pnsNoise(r, eps, 1e300, 2).data).toEqual(r.data); // no overflow to NaN
  });

  it('M = N copies every frame (no fresh noise), whatever α', () => {
    expect(pnsNoise(r, eps, 0, N).data).toEqual(r.data);
  });

  it('α = 0 gives fresh noise for frames ≥ M and the reversed noise for frames < M', () => {
    const z = pnsNoise(r, eps, 0, 3);
    expect(getFrames(z, 0, 3).data).toEqual(getFrames(r, 0, 3).data);
    expect(getFrames(z, 3, N - 3).data).toEqual(getFrames(eps, 3, N - 3).data);
  });

  it('M = 0 copies nothing', () => {
    const z = pnsNoise(r, eps, 1, 0);
    z.data.forEach((v, k) => expect(v).toBeCloseTo(Math.SQRT1_2 * (r.data[k] + eps.data[k]), 6));
  });

  it('rejects bad α and M clearly', () => {
    expect(() => pnsNoise(r, eps, -1, 4)).toThrow(/alpha must be >= 0/);
    expect(() => pnsNoise(r, eps, 1, 9)).toThrow(/reference frames M must be an integer from 0 to 8/);
    expect(() => pnsNoise(r, zeros([1, 4, 7, 3, 3]), 1, 4)).toThrow(/shapes differ/);
  });
});

describe('DSG: frame j is replaced on step i iff i < β·S·(1 - j/M)', () => {
  it('S = 50, M = 4, β = 0.4: frame 0 on steps 0–19, frame 1 on 0–14, frame 2 on 0–9, frame 3 on 0–4', () => {
    const table = dsgTable(50, 4, 0.4);
    expect(table.length).toBe(50);
    const stepsOfFrame = (j: number): number[] => table.flatMap((row, i) => (row[j] ? [i] : []));
    const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    expect(stepsOfFrame(0)).toEqual(range(20));
    expect(stepsOfFrame(1)).toEqual(range(15));
    expect(stepsOfFrame(2)).toEqual(range(10));
    expect(stepsOfFrame(3)).toEqual(range(5));
    expect([0, 1, 2, 3].map((j) => dsgStepsForFrame(j, 50, 0.4, 4))).toEqual([20, 15, 10, 5]);
    expect(dsgRecordedSteps(50, 0.4, 4)).toBe(20); // ceil(β·S)
  });

  it('frames ≥ M are never replaced', () => {
    for (let i = 0; i < 50; i++) for (let j = 4; j < 8; j++) expect(dsgActive(i, j, 50, 0.4, 4)).toBe(false);
  });

  it('is the paper rule t > (1-β)·T + β·T·j/M with T = S and t = S - i', () => {
    for (const [S, M, beta] of [
      [50, 4, 0.4],
      [25, 3, 0.6],
      [10, 2, 1],
      [7, 5, 0.3],
    ]) {
      for (let i = 0; i < S; i++) {
        for (let j = 0; j < M; j++) {
          const t = S - i;
          const paper = t > (1 - beta) * S + (beta * S * j) / M + 1e-9;
          expect(dsgActive(i, j, S, beta, M)).toBe(paper);
        }
      }
    }
  });

  it('β as typed: β = 0.05, S = 24, M = 6 replaces frame 1 on step 0 only, though 0.05·24·(1 - 1/6) > 1 in binary', () => {
    expect(0.05 * 24 * (1 - 1 / 6)).toBeGreaterThan(1);
    expect(dsgStepsForFrame(1, 24, 0.05, 6)).toBe(1);
    expect(dsgActive(1, 1, 24, 0.05, 6)).toBe(false);
  });

  it('M = 0 and β = 0 disable it', () => {
    expect(dsgTable(50, 0, 0.4).every((row) => row.length === 0)).toBe(true);
    expect(dsgRecordedSteps(50, 0.4, 0)).toBe(0);
    expect(dsgRecordedSteps(50, 0, 4)).toBe(0);
  });
});

describe('classifier-free guidance', () => {
  it('e = e_u + w·(e_c - e_u)', () => {
    const eU = torchRandn([1, 4, 2, 2, 2], 5);
    const eC = torchRandn([1, 4, 2, 2, 2], 6);
    const e = cfgCombine(eU, eC, 7.5);
    e.data.forEach((v, k) => expect(v).toBeCloseTo(eU.data[k] + 7.5 * (eC.data[k] - eU.data[k]), 5));
    expect(cfgCombine(eU, eC, 1).data).toEqual(eC.data);
  });
});

describe('how DSG reads a record: flip(past[i])[:, :, j] = past[i][:, :, N-1-j] = tails[i] frame M-1-j', () => {
  // A record of S = 10 steps, M = 3, β = 0.4 (4 recorded steps) whose past[i] frame f holds 100·i + f.
  const S = 10;
  const M = 3;
  const past = (i: number): Tensor => {
    const t = zeros([1, 1, N, 1, 2]);
    for (let f = 0; f < N; f++) t.data.fill(100 * i + f, 2 * f, 2 * f + 2);
    return t;
  };
  const record: DsgRecord = {
    kind: 'dsg-record',
    steps: S,
    referenceFrames: M,
    beta: 0.4,
    shape: [1, 1, N, 1, 2],
    first: past(0),
    tails: [0, 1, 2, 3].map((i) => recordTail(past(i), M)),
  };

  it('record tails hold frames N-M … N-1 in order', () => {
    expect([...record.tails[2].data]).toEqual([205, 205, 206, 206, 207, 207]);
    expect(recordBytes(record)).toBe(4 * (2 * N + 4 * 2 * M));
  });

  it('step i writes frame j = past[i] frame N-1-j where i < β·S·(1 - j/M), nothing else', () => {
    for (let i = 0; i < S; i++) {
      const z = zeros([1, 1, N, 1, 2]).data.fill(-1);
      const zt = { data: z, shape: [1, 1, N, 1, 2] };
      const replaced = applyDsgInto(zt, record, i, 0.4);
      const expected = [0, 1, 2].filter((j) => i < 0.4 * S * (1 - j / M) - 1e-9);
      expect(replaced, `step ${i}`).toEqual(expected);
      for (let j = 0; j < N; j++) {
        expect(z[2 * j], `step ${i}, frame ${j}`).toBe(expected.includes(j) ? 100 * i + (N - 1 - j) : -1);
      }
    }
  });

  it("uses the clip's own β: β = 0.2 reads only steps 0–1 of the same record", () => {
    const z = { data: new Float32Array(2 * N), shape: [1, 1, N, 1, 2] };
    expect(applyDsgInto(z, record, 1, 0.2)).toEqual([0, 1]); // frame 1: 1 < 0.2·10·(2/3)
    expect(applyDsgInto(z, record, 2, 0.2)).toEqual([]);
  });
});
