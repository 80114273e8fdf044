// PNG encoding and IMAGE → 8-bit conversion, checked against an independent decoder (ffmpeg) and a
// small reference decoder in helpers.ts.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodePng, frameStrip, imagesToRgb8, previewStrip } from '../../server/runtime/video/index.ts';
import { encodePngParts } from '../../server/runtime/video/png.ts';
import { probe } from '../helpers/ffprobe.ts';
import { decodeFrameRgb, decodePng, movingFrames, tempDir } from './helpers.ts';

function randomRgb(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

describe('encodePng', () => {
  it.each([
    [1, 1],
    [7, 5],
    [32, 32],
  ])('%ix%i RGB round-trips exactly through ffmpeg and the reference decoder', async (w, h) => {
    const rgb = randomRgb(w * h * 3, w * 31 + h);
    const png = encodePng(rgb, w, h);
    const file = path.join(tempDir(), 'x.png');
    writeFileSync(file, png);
    expect(await probe(file)).toMatchObject({ codec_name: 'png', width: w, height: h, pix_fmt: 'rgb24' });
    expect(Buffer.from(await decodeFrameRgb(file, 0)).equals(Buffer.from(rgb))).toBe(true);
    expect(Buffer.from(decodePng(png).rgb).equals(Buffer.from(rgb))).toBe(true);
  });

  it('refuses a buffer that does not match the size', () => {
    expect(() => encodePng(new Uint8Array(10), 2, 2)).toThrow(/expected 12 bytes for 2x2/);
    expect(() => encodePng(new Uint8Array(0), 0, 2)).toThrow(/invalid size/);
  });
});

describe('imagesToRgb8', () => {
  it('rounds v·255, clamps to 0..255 and maps NaN to 0', () => {
    const vals = [0, 1, 0.5, 0.499 / 255, 0.501 / 255, -0.2, 1.7, NaN, 100.4 / 255];
    const data = new Float32Array(2 * 1 * 3 * 3);
    data.set(vals, 9); // frame 1 of [2, 1, 3, 3]
    const rgb = imagesToRgb8({ data, shape: [2, 1, 3, 3] }, 1);
    expect(Array.from(rgb)).toEqual([0, 255, 128, 0, 1, 0, 255, 0, 100]);
  });

  it('checks the shape and the frame index', () => {
    const t = movingFrames(2, 4, 4);
    expect(() => imagesToRgb8(t, 2)).toThrow(/frame 2 is out of range: the images have 2 frame/);
    expect(() => imagesToRgb8({ data: new Float32Array(16), shape: [1, 4, 4] }, 0)).toThrow(/\[F, H, W, 3\]/);
  });
});

describe('previewStrip', () => {
  it('has the pixels of the default frame strip, deflated at a faster level', () => {
    const t = movingFrames(16, 16, 24);
    const preview = decodePng(previewStrip(t));
    const strip = decodePng(frameStrip(t));
    expect([preview.width, preview.height]).toEqual([strip.width, strip.height]);
    expect(Buffer.from(preview.rgb).equals(Buffer.from(strip.rgb))).toBe(true);
  });

  it('encodePngParts joined are encodePng, with a reused scanline buffer too', () => {
    const raw = new Uint8Array((4 * 3 + 1) * 3);
    for (const seed of [1, 2]) {
      const rgb = randomRgb(4 * 3 * 3, seed);
      const joined = Buffer.concat(encodePngParts(rgb, 4, 3, 6, raw));
      expect(joined.equals(Buffer.from(encodePng(rgb, 4, 3)))).toBe(true);
    }
    expect(() => encodePngParts(randomRgb(36, 3), 4, 3, 6, new Uint8Array(5))).toThrow(/needs 39/);
  });

  it('encodePng gives the same pixels at every zlib level', () => {
    const rgb = randomRgb(5 * 3 * 3, 7);
    for (const level of [0, 1, 9])
      expect(Array.from(decodePng(encodePng(rgb, 5, 3, level)).rgb)).toEqual(Array.from(rgb));
  });
});

describe('frameStrip', () => {
  it('lays the chosen frames side by side', () => {
    const t = movingFrames(6, 8, 12);
    const strip = decodePng(frameStrip(t, [4, 1]));
    expect([strip.width, strip.height]).toEqual([24, 8]);
    for (const [slot, k] of [
      [0, 4],
      [1, 1],
    ]) {
      const frame = imagesToRgb8(t, k);
      for (let y = 0; y < 8; y++) {
        const row = strip.rgb.subarray((y * 24 + slot * 12) * 3, (y * 24 + slot * 12 + 12) * 3);
        expect(Array.from(row)).toEqual(Array.from(frame.subarray(y * 36, y * 36 + 36)));
      }
    }
  });

  it('defaults to up to 8 frames spread over the clip, and scales by nearest neighbour', () => {
    const t = movingFrames(16, 8, 8);
    expect(decodePng(frameStrip(t)).width).toBe(8 * 8);
    const half = decodePng(frameStrip(t, [0, 15], 0.5));
    expect([half.width, half.height]).toEqual([8, 4]);
    const full = imagesToRgb8(t, 15);
    // Target pixel (x, y) of slot 1 samples source (2x+1, 2y+1).
    const at = (x: number, y: number) =>
      Array.from(half.rgb.subarray((y * 8 + 4 + x) * 3, (y * 8 + 4 + x) * 3 + 3));
    const src = (x: number, y: number) => Array.from(full.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
    expect(at(1, 2)).toEqual(src(3, 5));
    expect(at(3, 0)).toEqual(src(7, 1));
  });

  it('refuses frames out of range and bad scales', () => {
    const t = movingFrames(2, 4, 4);
    expect(() => frameStrip(t, [2])).toThrow(/frame 2 is out of range/);
    expect(() => frameStrip(t, [])).toThrow(/no frames/);
    expect(() => frameStrip(t, [0], 0)).toThrow(/scale/);
  });
});
