import { describe, expect, it } from 'vitest';
import {
  axpby,
  clone,
  concatBatch,
  copyFramesInto,
  flipFrameAxis,
  getFrames,
  latentDims,
  maxAbsDiff,
  numel,
  repeatBatch,
  setFrames,
  splitBatch,
  tensor,
  zeros,
} from '../../server/core/tensor.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';

// A latent whose every value encodes its index: b·10000 + c·1000 + f·100 + y·10 + x.
function indexed(B: number, C: number, F: number, H: number, W: number): Tensor {
  const t = zeros([B, C, F, H, W]);
  let k = 0;
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let f = 0; f < F; f++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) t.data[k++] = b * 1e4 + c * 1e3 + f * 100 + y * 10 + x;
  return t;
}
const frameOf = (v: number): number => Math.floor(v / 100) % 10;

describe('tensor basics', () => {
  it('numel, zeros, clone (a clone owns its buffer)', () => {
    expect(numel([2, 3, 4])).toBe(24);
    expect(numel([])).toBe(1);
    const t = indexed(1, 2, 3, 2, 2);
    const c = clone(t);
    c.data[0] = -1;
    expect(t.data[0]).toBe(0);
    expect(c.shape).toEqual(t.shape);
  });

  it('shape checks name what is wrong', () => {
    expect(() => tensor(new Float32Array(5), [2, 3], 'noise')).toThrow(
      'noise: shape [2, 3] needs 6 values, got 5',
    );
    expect(() => latentDims(zeros([4, 8, 8]), 'latent')).toThrow(
      /expected a video latent \[B, C, F, H, W\], got shape \[4, 8, 8\]/,
    );
    expect(() => axpby(1, zeros([2]), 1, zeros([3]))).toThrow(/shapes differ, \[2\] vs \[3\]/);
  });
});

describe('frame axis (2) of [B, C, F, H, W]', () => {
  const t = indexed(2, 3, 5, 2, 2);

  it('flip reverses the frames in every batch and channel: out[:, :, j] = t[:, :, F-1-j]', () => {
    const f = flipFrameAxis(t);
    for (let k = 0; k < t.data.length; k++) {
      const v = t.data[k];
      const j = frameOf(v);
      expect(f.data[k]).toBe(v - j * 100 + (4 - j) * 100);
    }
    expect(flipFrameAxis(f).data).toEqual(t.data);
  });

  it('getFrames takes a frame range of every batch and channel', () => {
    const g = getFrames(t, 3, 2);
    expect(g.shape).toEqual([2, 3, 2, 2, 2]);
    expect(new Set([...g.data].map(frameOf))).toEqual(new Set([3, 4]));
    expect(g.data[0]).toBe(300);
    expect(g.data[g.data.length - 1]).toBe(1e4 + 2e3 + 400 + 11);
  });

  it('setFrames replaces a range and leaves the input and the other frames alone', () => {
    const src = getFrames(flipFrameAxis(t), 0, 2); // frames 4, 3 of t
    const s = setFrames(t, 1, src);
    expect(t.data[4]).toBe(100); // input untouched (b 0, c 0, frame 1)
    const frames = [...getFrames(s, 0, 5).data.subarray(0, 20)].map(frameOf);
    expect(frames).toEqual([0, 0, 0, 0, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4]);
    expect(() => copyFramesInto(zeros([2, 3, 5, 2, 2]), 4, src, 0, 2)).toThrow(
      /frames 4\.\.5 are outside 0\.\.4/,
    );
    expect(() => copyFramesInto(zeros([1, 3, 5, 2, 2]), 0, src, 0, 1)).toThrow(
      /differ beyond the frame axis/,
    );
  });
});

describe('batch axis and elementwise ops', () => {
  it('concat then split along the batch gives the parts back', () => {
    const a = indexed(1, 2, 2, 2, 2);
    const b = axpby(1, a, 0, a);
    b.data.fill(7);
    const both = concatBatch([a, b]);
    expect(both.shape).toEqual([2, 2, 2, 2, 2]);
    const [a2, b2] = splitBatch(both, 2);
    expect(a2.data).toEqual(a.data);
    expect(b2.data).toEqual(b.data);
    expect(repeatBatch(a, 3).shape).toEqual([3, 2, 2, 2, 2]);
    expect(() => concatBatch([a, zeros([1, 2, 3, 2, 2])])).toThrow(/differ beyond the batch axis/);
    expect(() => splitBatch(zeros([3, 2]), 2)).toThrow(/cannot split shape \[3, 2\] into 2/);
  });

  it('axpby computes a·x + b·y elementwise', () => {
    const x = tensor(Float32Array.from([1, 2, 3]), [3]);
    const y = tensor(Float32Array.from([10, 20, 30]), [3]);
    expect([...axpby(2, x, -0.5, y).data]).toEqual([-3, -6, -9]);
    expect(maxAbsDiff(x, y)).toBe(27);
  });
});
