// Test helpers for video output: synthetic frames, ffmpeg decoding, and small independent
// parsers (PNG, WebP RIFF, MP4 boxes) used to check what the writers produced.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateSync } from 'node:zlib';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { ffmpegPath } from '../../server/runtime/video/index.ts';

const run = promisify(execFile);

export function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'rdflow-video-'));
}

/**
 * F frames of H×W: a red block moving right on a blue-green gradient, so frames differ and colour
 * channels are distinguishable. Values exactly k/255 so 8-bit conversions are lossless.
 */
export function movingFrames(f: number, h: number, w: number, start = 0): Tensor {
  const data = new Float32Array(f * h * w * 3);
  for (let k = 0; k < f; k++) {
    const bx = ((start + k) * 2) % w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = ((k * h + y) * w + x) * 3;
        const inBlock = x >= bx && x < bx + Math.max(2, w >> 2) && y >= h >> 2 && y < (h >> 2) * 3;
        data[i] = inBlock ? 1 : 0;
        data[i + 1] = inBlock ? 0 : Math.round((x / w) * 255) / 255;
        data[i + 2] = inBlock ? 0 : Math.round((y / h) * 255) / 255;
      }
    }
  }
  return { data, shape: [f, h, w, 3] };
}

/** Frames [from, to) of an IMAGE tensor (a view copy). */
export function sliceFrames(t: Tensor, from: number, to: number): Tensor {
  const per = t.shape[1] * t.shape[2] * 3;
  return { data: t.data.slice(from * per, to * per), shape: [to - from, t.shape[1], t.shape[2], 3] };
}

/** Decodes frame `index` of a video to packed RGB with the bundled ffmpeg. */
export async function decodeFrameRgb(file: string, index: number): Promise<Uint8Array> {
  const { stdout } = await run(
    ffmpegPath(),
    [
      '-v',
      'error',
      '-i',
      file,
      '-vf',
      `select=eq(n\\,${index})`,
      '-vframes',
      '1',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-',
    ],
    { encoding: 'buffer', maxBuffer: 64 << 20 },
  );
  return new Uint8Array(stdout);
}

/** Mean absolute difference (0..255) between packed RGB frame bytes and frame k of `t`. */
export function meanAbsDiff(rgb: Uint8Array, t: Tensor, k: number): number {
  const per = t.shape[1] * t.shape[2] * 3;
  if (rgb.length !== per) throw new Error(`decoded ${rgb.length} bytes, expected ${per}`);
  let s = 0;
  for (let i = 0; i < per; i++) s += Math.abs(rgb[i] - Math.round(t.data[k * per + i] * 255));
  return s / per;
}

/** A minimal PNG decoder (8-bit RGB, non-interlaced, all five filter types) for checking output. */
export function decodePng(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => bytes[i] === b)) throw new Error('not a PNG');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 8;
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  while (o < bytes.length) {
    const len = view.getUint32(o);
    const type = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    const data = bytes.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      width = view.getUint32(o + 8);
      height = view.getUint32(o + 12);
      if (data[8] !== 8 || data[9] !== 2 || data[12] !== 0) throw new Error('only 8-bit RGB non-interlaced');
    } else if (type === 'IDAT') idat.push(data);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= 3 ? rgb[y * stride + x - 3] : 0;
      const b = y > 0 ? rgb[(y - 1) * stride + x] : 0;
      const c = x >= 3 && y > 0 ? rgb[(y - 1) * stride + x - 3] : 0;
      let p = 0;
      if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else if (f === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      rgb[y * stride + x] = (v + p) & 0xff;
    }
  }
  return { width, height, rgb };
}

/** Top-level chunks of a RIFF/WebP file, and the frames of an animated WebP (ANMF chunks). */
export function parseWebp(bytes: Uint8Array): {
  canvas: { width: number; height: number };
  frames: Array<{ width: number; height: number; durationMs: number }>;
  loop?: number;
} {
  const text = (o: number): string => String.fromCharCode(...bytes.subarray(o, o + 4));
  const u24 = (o: number): number => bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16);
  if (text(0) !== 'RIFF' || text(8) !== 'WEBP') throw new Error('not a WebP file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 12;
  let canvas = { width: 0, height: 0 };
  let loop: number | undefined;
  const frames: Array<{ width: number; height: number; durationMs: number }> = [];
  while (o + 8 <= bytes.length) {
    const type = text(o);
    const size = view.getUint32(o + 4, true);
    const d = o + 8;
    if (type === 'VP8X') canvas = { width: u24(d + 4) + 1, height: u24(d + 7) + 1 };
    else if (type === 'ANIM') loop = view.getUint16(d + 4, true);
    else if (type === 'ANMF')
      frames.push({ width: u24(d + 6) + 1, height: u24(d + 9) + 1, durationMs: u24(d + 12) });
    o = d + size + (size & 1);
  }
  return { canvas, frames, loop };
}

/** Top-level MP4 box types in file order (to check that "moov" precedes "mdat": faststart). */
export function mp4TopBoxes(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let o = 0;
  while (o + 8 <= bytes.length) {
    let size = view.getUint32(o);
    out.push(String.fromCharCode(...bytes.subarray(o + 4, o + 8)));
    if (size === 1) size = Number(view.getBigUint64(o + 8));
    if (size === 0) break;
    o += size;
  }
  return out;
}
