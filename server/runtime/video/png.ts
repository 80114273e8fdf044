// PNG encoding (8-bit RGB) and the conversion of IMAGE tensors [F, H, W, 3] in [0, 1] to bytes.
import { crc32, deflateSync } from 'node:zlib';
import type { Tensor } from '../../core/tensor-type.ts';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/**
 * One chunk as [length + type, data, CRC]: the data is not copied (an IDAT is most of the file).
 * The CRC covers the chunk type and data, not the length.
 */
function chunk(type: string, data: Uint8Array): Uint8Array[] {
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(0, data.length);
  for (let i = 0; i < 4; i++) head[4 + i] = type.charCodeAt(i);
  const crc = new Uint8Array(4);
  new DataView(crc.buffer).setUint32(0, crc32(data, crc32(head.subarray(4))));
  return [head, data, crc];
}

/**
 * Encodes packed 8-bit RGB pixels (row-major, `width*height*3` bytes) as a PNG. Every scanline uses
 * the "Sub" filter: one cheap pass that makes smooth images compress well. `level`: zlib's, 6 (its
 * default balance) unless told; the pixels are the same at any level.
 */
export function encodePng(rgb: Uint8Array, width: number, height: number, level = 6): Uint8Array {
  const parts = encodePngParts(rgb, width, height, level);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * encodePng's bytes as the parts of the file in order, for writing without joining them: a
 * writer of many frames makes only the compressed data per frame. `raw`: a buffer of
 * (width·3 + 1)·height bytes to filter the scanlines in, reused from frame to frame; made when
 * absent. The pixels are read before this returns.
 */
export function encodePngParts(
  rgb: Uint8Array,
  width: number,
  height: number,
  level = 6,
  raw?: Uint8Array,
): Uint8Array[] {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodePng: invalid size ${width}x${height}`);
  }
  const stride = width * 3;
  if (rgb.length !== stride * height) {
    throw new Error(
      `encodePng: expected ${stride * height} bytes for ${width}x${height} RGB, got ${rgb.length}`,
    );
  }
  const filtered = raw ?? new Uint8Array((stride + 1) * height);
  if (filtered.length !== (stride + 1) * height) {
    throw new Error(
      `encodePng: scanline buffer has ${filtered.length} bytes, needs ${(stride + 1) * height}`,
    );
  }
  for (let y = 0; y < height; y++) {
    const src = y * stride;
    const dst = y * (stride + 1);
    filtered[dst] = 1; // filter type Sub: each byte minus the same channel of the pixel to its left
    for (let x = 0; x < stride; x++) {
      filtered[dst + 1 + x] = (rgb[src + x] - (x >= 3 ? rgb[src + x - 3] : 0)) & 0xff;
    }
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour RGB
  // compression, filter method, interlace: all 0
  const idat = deflateSync(filtered, { level });
  return [SIGNATURE, ...chunk('IHDR', ihdr), ...chunk('IDAT', idat), ...chunk('IEND', new Uint8Array(0))];
}

/** Checks that `images` is an IMAGE tensor [F, H, W, 3] and returns its dimensions. */
export function imageDims(images: Tensor): { frames: number; height: number; width: number } {
  const s = images.shape;
  if (s.length !== 4 || s[3] !== 3) {
    throw new Error(`expected IMAGE frames [F, H, W, 3], got shape [${s.join(', ')}]`);
  }
  const [frames, height, width] = s;
  if (images.data.length !== frames * height * width * 3) {
    throw new Error(`IMAGE data has ${images.data.length} values, shape [${s.join(', ')}] needs more`);
  }
  return { frames, height, width };
}

/**
 * Frame `frame` of `images` ([F, H, W, 3], values in [0, 1]) as packed 8-bit RGB: round(v·255),
 * clamped to 0..255 (NaN → 0). Writes into `out` when given (reused buffers keep memory flat).
 */
export function imagesToRgb8(images: Tensor, frame: number, out?: Uint8Array): Uint8Array {
  const { frames, height, width } = imageDims(images);
  if (!Number.isInteger(frame) || frame < 0 || frame >= frames) {
    throw new Error(`frame ${frame} is out of range: the images have ${frames} frame(s)`);
  }
  const n = height * width * 3;
  const rgb = out ?? new Uint8Array(n);
  if (rgb.length !== n) throw new Error(`imagesToRgb8: output buffer has ${rgb.length} bytes, needs ${n}`);
  const src = images.data;
  const base = frame * n;
  for (let i = 0; i < n; i++) {
    const v = src[base + i] * 255 + 0.5;
    // `v > 0` is false for NaN, which therefore maps to 0.
    rgb[i] = v > 0 ? (v < 255 ? v : 255) : 0;
  }
  return rgb;
}

/** Default frames for a strip: up to `max` frames evenly spread from the first to the last. */
export function spreadFrames(count: number, max = 8): number[] {
  if (count <= max) return Array.from({ length: count }, (_, i) => i);
  return Array.from({ length: max }, (_, i) => Math.round((i * (count - 1)) / (max - 1)));
}

/**
 * The chosen frames side by side, resized by `scale` (nearest neighbour), as packed RGB.
 * Default frames: up to 8 evenly spread over the clip.
 */
export function frameStripRgb(
  images: Tensor,
  frames: readonly number[] = spreadFrames(imageDims(images).frames),
  scale = 1,
): { rgb: Uint8Array; width: number; height: number } {
  const { frames: count, height, width } = imageDims(images);
  if (frames.length === 0) throw new Error('frameStrip: no frames chosen');
  if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`frameStrip: scale must be > 0, got ${scale}`);
  for (const f of frames) {
    if (!Number.isInteger(f) || f < 0 || f >= count) {
      throw new Error(`frameStrip: frame ${f} is out of range: the images have ${count} frame(s)`);
    }
  }
  const tw = Math.max(1, Math.round(width * scale));
  const th = Math.max(1, Math.round(height * scale));
  const outW = tw * frames.length;
  const rgb = new Uint8Array(outW * th * 3);
  const frameRgb = new Uint8Array(width * height * 3);
  // Source column/row of each target pixel (nearest neighbour at pixel centres).
  const sx = Array.from({ length: tw }, (_, x) => Math.min(width - 1, Math.floor(((x + 0.5) * width) / tw)));
  const sy = Array.from({ length: th }, (_, y) =>
    Math.min(height - 1, Math.floor(((y + 0.5) * height) / th)),
  );
  frames.forEach((f, k) => {
    imagesToRgb8(images, f, frameRgb);
    for (let y = 0; y < th; y++) {
      const srcRow = sy[y] * width * 3;
      const dstRow = (y * outW + k * tw) * 3;
      for (let x = 0; x < tw; x++) {
        const s = srcRow + sx[x] * 3;
        const d = dstRow + x * 3;
        rgb[d] = frameRgb[s];
        rgb[d + 1] = frameRgb[s + 1];
        rgb[d + 2] = frameRgb[s + 2];
      }
    }
  });
  return { rgb, width: outW, height: th };
}

/** A PNG of the chosen frames side by side (see frameStripRgb): clip previews, the README image. */
export function frameStrip(images: Tensor, frames?: readonly number[], scale = 1): Uint8Array {
  const strip = frameStripRgb(images, frames, scale);
  return encodePng(strip.rgb, strip.width, strip.height);
}

/**
 * zlib level of clip previews: level 1 deflates a frame strip about 8× faster than level 6 for
 * some 10 % more bytes, and a preview is sent once and dropped, while the run waits for it.
 */
export const PREVIEW_PNG_LEVEL = 1;

/** A decoded clip's preview: its frame strip (see frameStripRgb) as a quickly deflated PNG. */
export function previewStrip(images: Tensor): Uint8Array {
  const strip = frameStripRgb(images);
  return encodePng(strip.rgb, strip.width, strip.height, PREVIEW_PNG_LEVEL);
}
