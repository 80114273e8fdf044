// Pure-JS GIF writer (gifenc) for machines without a usable ffmpeg: each frame is quantised to its
// own 256-colour palette, encoded and appended to the file at once, so memory stays flat.
import { open, type FileHandle } from 'node:fs/promises';

type Palette = number[][];
interface GifencStream {
  bytesView(): Uint8Array;
  reset(): void;
}
interface GifencEncoder {
  writeHeader(): void;
  writeFrame(
    index: Uint8Array,
    width: number,
    height: number,
    opts: { palette: Palette; delay: number; first: boolean; repeat: number },
  ): void;
  readonly stream: GifencStream;
}
interface GifencApi {
  GIFEncoder(opts: { auto: boolean; initialCapacity?: number }): GifencEncoder;
  quantize(rgba: Uint8Array, maxColors: number, opts?: { format?: 'rgb565' | 'rgb444' }): Palette;
  applyPalette(rgba: Uint8Array, palette: Palette, format?: 'rgb565' | 'rgb444'): Uint8Array;
}

async function loadGifenc(): Promise<GifencApi> {
  // Node loads the CommonJS build (everything under `default`); an ESM-aware loader may give names.
  const m = (await import('gifenc')) as Partial<GifencApi> & { default?: Partial<GifencApi> };
  const api = typeof m.quantize === 'function' ? m : m.default;
  if (!api || typeof api.GIFEncoder !== 'function' || typeof api.applyPalette !== 'function') {
    throw new Error('the gifenc package does not export GIFEncoder/quantize/applyPalette');
  }
  return api as GifencApi;
}

/**
 * GIF delays are whole centiseconds. Frame k lasts round((k+1)·100/fps) − round(k·100/fps) cs, so
 * the rounding never accumulates (24 fps → 4, 4, 5, 4, 4, 4, 5, ... cs).
 */
export function gifDelayCs(k: number, fps: number): number {
  return Math.round(((k + 1) * 100) / fps) - Math.round((k * 100) / fps);
}

const PALETTE_SAMPLE_PIXELS = 16384;

/** Every `step`-th pixel of every `step`-th row of `rgba` into `out`. */
function subsample(
  rgba: Uint8Array,
  width: number,
  height: number,
  step: number,
  out: Uint8Array,
): Uint8Array {
  let o = 0;
  for (let y = 0; y < height; y += step) {
    for (let x = 0; x < width; x += step) {
      const i = (y * width + x) * 4;
      out[o++] = rgba[i];
      out[o++] = rgba[i + 1];
      out[o++] = rgba[i + 2];
      out[o++] = 255;
    }
  }
  return out;
}

export interface GifJsWriter {
  writeFrame(rgb: Uint8Array): Promise<void>;
  finish(): Promise<void>;
  close(): Promise<void>;
}

/** Opens `file` (created/truncated) for a `width`×`height` GIF at `fps` (≤ 50, see index.ts). */
export async function openGifJs(
  file: string,
  width: number,
  height: number,
  fps: number,
): Promise<GifJsWriter> {
  const gifenc = await loadGifenc();
  const fh: FileHandle = await open(file, 'w');
  const enc = gifenc.GIFEncoder({ auto: false, initialCapacity: width * height + 4096 });
  const rgba = new Uint8Array(width * height * 4);
  // The palette is built from a lattice of at most ~16k pixels: quantising every pixel of a 256×256
  // frame costs ~4× more for a palette that differs little.
  const step = Math.max(1, Math.ceil(Math.sqrt((width * height) / PALETTE_SAMPLE_PIXELS)));
  const sample =
    step > 1 ? new Uint8Array(Math.ceil(width / step) * Math.ceil(height / step) * 4) : undefined;
  let k = 0;
  let closed = false;
  async function flush(): Promise<void> {
    const bytes = enc.stream.bytesView();
    if (bytes.length > 0) await fh.write(bytes);
    enc.stream.reset();
  }
  return {
    async writeFrame(rgb) {
      for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        rgba[i] = rgb[j];
        rgba[i + 1] = rgb[j + 1];
        rgba[i + 2] = rgb[j + 2];
        rgba[i + 3] = 255;
      }
      const palette = gifenc.quantize(sample ? subsample(rgba, width, height, step, sample) : rgba, 256, {
        format: 'rgb565',
      });
      const index = gifenc.applyPalette(rgba, palette, 'rgb565');
      if (k === 0) enc.writeHeader();
      // gifenc takes the delay in ms and rounds it to cs; pass exact multiples of 10.
      enc.writeFrame(index, width, height, {
        palette,
        delay: gifDelayCs(k, fps) * 10,
        first: k === 0,
        repeat: 0,
      });
      k++;
      await flush();
    },
    async finish() {
      await fh.write(Uint8Array.of(0x3b)); // GIF trailer
      closed = true;
      await fh.close();
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
