// The checkpoint form of video frames: 8-bit RGB that a writer turns back into the same bytes.
import { expect, test } from 'vitest';
import { imagesToRgb8 } from '../../server/runtime/video/index.ts';
import { framesToRgb8, rgb8Codec, rgb8ToFrames } from '../../server/runtime/video/rgb-codec.ts';

test('every byte value survives encode → decode → imagesToRgb8, for any float that made it', () => {
  // 2 frames of 16×16: every value 0..255 plus rounding edges, out-of-range values and NaN.
  const n = 2 * 16 * 16 * 3;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const b = i % 256;
    const jitter = [0, 0.4999, -0.4999, 0.5001][Math.floor(i / 256) % 4];
    data[i] = (b + jitter) / 255;
  }
  data[7] = -0.2;
  data[8] = 1.7;
  data[9] = Number.NaN;
  const images = { data, shape: [2, 16, 16, 3] };
  const stored = framesToRgb8(images);
  expect(stored.rgb.length).toBe(n);
  const back = rgb8ToFrames(stored);
  expect(back.shape).toEqual(images.shape);
  for (const f of [0, 1]) {
    expect(Buffer.from(imagesToRgb8(back, f)).equals(Buffer.from(imagesToRgb8(images, f)))).toBe(true);
  }
  // The codec object is what VideoWrite declares.
  const again = rgb8Codec.decode(rgb8Codec.encode(images)) as typeof images;
  expect(Buffer.from(imagesToRgb8(again, 1)).equals(Buffer.from(imagesToRgb8(images, 1)))).toBe(true);
});

test('all 256 values decode to floats that imagesToRgb8 maps back exactly', () => {
  const rgb = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
  const frames = rgb8ToFrames({ shape: [1, 16, 16, 3], rgb });
  expect(Array.from(imagesToRgb8(frames, 0))).toEqual(Array.from(rgb));
});
