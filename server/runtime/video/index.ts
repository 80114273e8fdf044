// Video output: frames arrive clip by clip and are encoded as they come. MP4/GIF/WebP stream raw
// RGB into one ffmpeg process (the binary from the npm installer package; without it GIF falls back
// to pure JS), PNG writes one file per frame. Everything is written under temporary names in the target folder and renamed only by
// finish(), so a failed or interrupted run leaves no partial file behind.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Tensor } from '../../core/tensor-type.ts';
import { ffmpegEncoders, ffmpegPath, tryFfmpegPath } from './ffmpeg.ts';
import { startFfmpeg, type FfmpegPipe } from './ffmpeg-pipe.ts';
import { openGifJs, type GifJsWriter } from './gif-js.ts';
import { encodePngParts, imageDims, imagesToRgb8 } from './png.ts';
import type { OutputTarget } from './paths.ts';
import { sharedRgb8 } from './rgb-codec.ts';

export { ffmpegPath, ffprobePath, FfmpegMissingError } from './ffmpeg.ts';
export { FfmpegError } from './ffmpeg-pipe.ts';
export { encodePng, imagesToRgb8, frameStrip, frameStripRgb, previewStrip, spreadFrames } from './png.ts';
export { resolveOutputPath, checkFilenamePrefix, OutputPathError, type OutputTarget } from './paths.ts';
export { gifDelayCs } from './gif-js.ts';

export const VIDEO_FORMATS = ['mp4', 'gif', 'webp', 'png'] as const;
export type VideoFormat = (typeof VIDEO_FORMATS)[number];

export const FPS_MIN = 1;
export const FPS_MAX = 60;
/**
 * GIF frame delays are whole centiseconds and browsers play delays under 2 cs as 10 cs, so a GIF
 * asked for more than 50 fps is written at 50 fps by dropping frames (playback speed is kept).
 */
export const GIF_MAX_FPS = 50;

export interface VideoWriterOptions {
  format: VideoFormat;
  fps: number;
  /**
   * The final file (as resolveOutputPath returns it). For PNG, frames are numbered on from the
   * path's counter: "clip_00003.png" → clip_00003.png, clip_00004.png, ...; a path without a
   * counter ("clip.png" or "clip") gives clip_00001.png, ...
   */
  path: string | OutputTarget;
}

export interface VideoWriter {
  /** Encodes frames [F, H, W, 3] in [0, 1]; the first call fixes the size. Calls run in order. */
  write(images: Tensor): Promise<void>;
  /** Completes the file(s), renames them to their final names and returns those paths. */
  finish(): Promise<string[]>;
  /** Stops the encoder and deletes the temporary files; a no-op after finish(). */
  abort(): Promise<void>;
  /** Frames accepted so far (before any GIF frame dropping). */
  readonly frames: number;
}

function isVideoFormat(v: string): v is VideoFormat {
  return (VIDEO_FORMATS as readonly string[]).includes(v);
}

/**
 * Problems with the options before anything runs (the node's validation): unknown format, fps
 * outside 1..60, odd sizes for MP4 (H.264 in yuv420p needs even width and height; we refuse rather
 * than pad, so the video has exactly the pixels of the frames). [] when fine.
 */
export function validateVideoOptions(o: {
  format: string;
  fps: number;
  width?: number;
  height?: number;
}): string[] {
  const problems: string[] = [];
  if (!isVideoFormat(o.format)) {
    problems.push(`format "${o.format}" is not supported; use one of ${VIDEO_FORMATS.join(', ')}`);
  }
  if (!Number.isFinite(o.fps) || o.fps < FPS_MIN || o.fps > FPS_MAX) {
    problems.push(
      `fps ${o.fps} is outside ${FPS_MIN}..${FPS_MAX}` +
        (o.format === 'gif'
          ? ` (GIF above ${GIF_MAX_FPS} fps is written at ${GIF_MAX_FPS} fps, dropping frames)`
          : ''),
    );
  }
  for (const [name, v] of [
    ['width', o.width],
    ['height', o.height],
  ] as const) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} ${v} is not a positive whole number`);
    else if (o.format === 'mp4' && v % 2 !== 0) {
      problems.push(`MP4 (H.264, yuv420p) needs an even ${name}, got ${v}`);
    }
  }
  return problems;
}

let formatsPromise: Promise<VideoFormat[]> | undefined;

/**
 * The formats this machine can write: PNG and GIF always (GIF falls back to pure JS without
 * ffmpeg), MP4 when ffmpeg has libx264, WebP when it has a WebP encoder.
 */
export function supportedFormats(): Promise<VideoFormat[]> {
  formatsPromise ??= (async () => {
    const out: VideoFormat[] = [];
    const bin = tryFfmpegPath();
    const enc = bin === undefined ? new Set<string>() : await ffmpegEncoders(bin);
    if (enc.has('libx264')) out.push('mp4');
    out.push('gif');
    if (enc.has('libwebp_anim') || enc.has('libwebp')) out.push('webp');
    out.push('png');
    return out;
  })();
  return formatsPromise;
}

/** `.name.tmp-<pid>-<rand>.ext` next to `final`: hidden, and unique per process and writer. */
function tempName(final: string, tag: string): string {
  const ext = path.extname(final);
  return path.join(path.dirname(final), `.${path.basename(final, ext)}.tmp-${tag}${ext}`);
}

/** One encoder behind the writer: takes packed RGB frames, leaves complete files at their temp names. */
interface Sink {
  /** A buffer for the next frame: one the sink is done with, or a new one. */
  frameBuffer?(): Uint8Array;
  writeFrame(rgb: Uint8Array): Promise<void>;
  finish(): Promise<void>;
  kill(): Promise<void>;
  /** [temp, final] pairs created so far. */
  readonly files: Array<[string, string]>;
}

async function ffmpegSink(
  format: 'mp4' | 'gif' | 'webp',
  bin: string,
  final: string,
  tag: string,
  w: number,
  h: number,
  fps: number,
): Promise<Sink> {
  const tmp = tempName(final, tag);
  const input = ['-hide_banner', '-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${w}x${h}`];
  input.push('-framerate', String(fps), '-i', 'pipe:0');
  let output: string[];
  if (format === 'mp4') {
    output = ['-c:v', 'libx264', '-preset', 'medium', '-crf', '18', '-pix_fmt', 'yuv420p'];
    output.push('-movflags', '+faststart', '-r', String(fps), '-f', 'mp4');
  } else if (format === 'gif') {
    // One palette per frame (stats_mode=single, new=1) keeps the graph streaming: a global palette
    // would need every frame before the first could be written. Ordered (Bayer) dithering does not
    // crawl from frame to frame the way error diffusion does.
    const drop = fps > GIF_MAX_FPS ? `fps=${GIF_MAX_FPS},` : '';
    const graph =
      `[0:v]${drop}split[a][b];[a]palettegen=stats_mode=single[p];` +
      `[b][p]paletteuse=new=1:dither=bayer:bayer_scale=3[out]`;
    output = ['-filter_complex', graph, '-map', '[out]', '-loop', '0', '-f', 'gif'];
  } else {
    const enc = await ffmpegEncoders(bin);
    const codec = enc.has('libwebp_anim') ? 'libwebp_anim' : enc.has('libwebp') ? 'libwebp' : undefined;
    if (codec === undefined) {
      throw new Error(
        `this ffmpeg (${bin}) has no WebP encoder (libwebp_anim/libwebp); choose mp4, gif or png`,
      );
    }
    output = ['-c:v', codec, '-quality', '90', '-loop', '0', '-f', 'webp'];
  }
  const proc: FfmpegPipe = startFfmpeg(bin, [...input, ...output, '-y', tmp], path.basename(final));
  // Frame buffers come back once the pipe has flushed them: a few in flight, none made per frame.
  // Only those handed out here: shared clip bytes (sharedRgb8) are not ours to overwrite.
  const free: Uint8Array[] = [];
  const made = new Set<Uint8Array>();
  return {
    files: [[tmp, final]],
    frameBuffer: () => {
      const rgb = free.pop() ?? new Uint8Array(w * h * 3);
      made.add(rgb);
      return rgb;
    },
    writeFrame: (rgb) => proc.write(rgb, made.has(rgb) ? () => free.push(rgb) : undefined),
    finish: () => proc.end(),
    kill: () => proc.kill(),
  };
}

async function gifJsSink(final: string, tag: string, w: number, h: number, fps: number): Promise<Sink> {
  const tmp = tempName(final, tag);
  const files: Array<[string, string]> = [[tmp, final]];
  const outFps = Math.min(fps, GIF_MAX_FPS);
  let gif: GifJsWriter | undefined;
  try {
    gif = await openGifJs(tmp, w, h, outFps);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const g = gif;
  let n = 0;
  return {
    files,
    async writeFrame(rgb) {
      // Keep input frame n when it starts a new output frame (drops frames above 50 fps).
      const keep = n === 0 || Math.floor((n * outFps) / fps) !== Math.floor(((n - 1) * outFps) / fps);
      n++;
      if (keep) await g.writeFrame(rgb);
    },
    finish: () => g.finish(),
    kill: () => g.close(),
  };
}

/** File name of PNG frame `i` (0-based) of the sequence that `finalPath` starts (see VideoWriterOptions). */
function pngFramePath(finalPath: string, i: number): string {
  const base = path.basename(finalPath).replace(/\.png$/i, '');
  const m = /^(.*)_(\d{5,})$/.exec(base);
  const counter = (m ? Number(m[2]) : 1) + i;
  return path.join(path.dirname(finalPath), `${m ? m[1] : base}_${String(counter).padStart(5, '0')}.png`);
}

function pngSink(finalPath: string, tag: string, w: number, h: number): Sink {
  const files: Array<[string, string]> = [];
  // encodePngParts reads the frame before writeFrame awaits anything: one buffer serves every
  // frame, one more its filtered scanlines; the parts are written as they are, not joined.
  const frame = new Uint8Array(w * h * 3);
  const scanlines = new Uint8Array((w * 3 + 1) * h);
  return {
    files,
    frameBuffer: () => frame,
    async writeFrame(rgb) {
      const final = pngFramePath(finalPath, files.length);
      const tmp = tempName(final, tag);
      files.push([tmp, final]);
      await writeFile(tmp, encodePngParts(rgb, w, h, 6, scanlines));
    },
    finish: async () => {},
    kill: async () => {},
  };
}

/**
 * Opens a streaming writer: claims the name with an empty hidden temp file; the first write() fixes
 * the size and starts the encoder. The target folder must exist (resolveOutputPath creates it).
 */
export function openVideoWriter(opts: VideoWriterOptions): VideoWriter {
  const final = path.resolve(typeof opts.path === 'string' ? opts.path : opts.path.path);
  const { format, fps } = opts;
  const problems = validateVideoOptions({ format, fps });
  if (problems.length > 0) throw new Error(`video ${path.basename(final)}: ${problems.join('; ')}`);
  const ext = format === 'png' ? '.png' : `.${format}`;
  const target = format === 'png' || final.toLowerCase().endsWith(ext) ? final : final + ext;
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  // Claim the name at once with an empty temp file (the encoder overwrites it): resolveOutputPath
  // counts temp files, so a second writer opened before our first frame picks the next counter.
  const placeholder = tempName(format === 'png' ? pngFramePath(target, 0) : target, tag);
  try {
    writeFileSync(placeholder, '', { flag: 'wx' });
  } catch (e) {
    throw new Error(
      `video ${path.basename(target)}: cannot create a file in ${path.dirname(target)}: ${(e as Error).message}`,
      { cause: e },
    );
  }

  let sink: Sink | undefined;
  let size: { w: number; h: number } | undefined;
  let frames = 0;
  let state: 'open' | 'finished' | 'aborted' | 'failed' = 'open';
  let failure: unknown;
  // Operations run one after another even if a caller forgets to await.
  let chain: Promise<unknown> = Promise.resolve();

  async function cleanup(): Promise<void> {
    const s = sink;
    if (s !== undefined) {
      await s.kill().catch(() => {});
      await Promise.all(s.files.map(([tmp]) => rm(tmp, { force: true })));
    }
    await rm(placeholder, { force: true });
  }

  async function fail(e: unknown): Promise<never> {
    if (state === 'open') {
      state = 'failed';
      failure = e;
      await cleanup();
    }
    throw e;
  }

  async function start(w: number, h: number): Promise<Sink> {
    if (format === 'png') return pngSink(target, tag, w, h);
    if (format === 'gif') {
      const bin = tryFfmpegPath();
      const hasGif = bin !== undefined && (await ffmpegEncoders(bin)).has('gif');
      return hasGif ? ffmpegSink(format, bin, target, tag, w, h, fps) : gifJsSink(target, tag, w, h, fps);
    }
    // ffmpegPath() throws with the reason when it is missing or not executable.
    return ffmpegSink(format, ffmpegPath(), target, tag, w, h, fps);
  }

  async function doWrite(images: Tensor): Promise<void> {
    if (state !== 'open') {
      throw new Error(`video ${path.basename(target)}: cannot write after the writer was ${state}`);
    }
    try {
      const { frames: f, height, width } = imageDims(images);
      if (f === 0) return;
      if (size === undefined) {
        if (format === 'mp4' && (width % 2 !== 0 || height % 2 !== 0)) {
          throw new Error(
            `MP4 (H.264, yuv420p) needs even frame sizes, got ${width}x${height}; use even sizes or png/gif/webp`,
          );
        }
        size = { w: width, h: height };
        sink = await start(width, height);
      } else if (width !== size.w || height !== size.h) {
        throw new Error(
          `frames are ${width}x${height} but this video is ${size.w}x${size.h}: sizes cannot change`,
        );
      }
      const s = sink as Sink;
      // Bytes made already for this clip (for its resume checkpoint) are encoded as they are.
      const shared = sharedRgb8(images);
      const n = width * height * 3;
      for (let i = 0; i < f; i++) {
        if (state !== 'open') throw new Error(`video ${path.basename(target)} was ${state} while writing`);
        // Else the sink's buffer: reused once the encoder is done with it (see Sink.frameBuffer).
        const rgb = shared?.subarray(i * n, (i + 1) * n) ?? imagesToRgb8(images, i, s.frameBuffer?.());
        await s.writeFrame(rgb);
        frames++;
      }
    } catch (e) {
      return fail(e);
    }
  }

  async function doFinish(): Promise<string[]> {
    if (state === 'failed') throw failure;
    if (state !== 'open') throw new Error(`video ${path.basename(target)}: already ${state}`);
    try {
      if (sink === undefined) throw new Error(`video ${path.basename(target)}: no frames were written`);
      await sink.finish();
      for (const [tmp, fin] of sink.files) await rename(tmp, fin);
      state = 'finished';
      return sink.files.map(([, fin]) => fin);
    } catch (e) {
      return fail(e);
    }
  }

  function enqueue<T>(op: () => Promise<T>): Promise<T> {
    const p = chain.then(op, op);
    chain = p.catch(() => {});
    return p;
  }

  return {
    get frames() {
      return frames;
    },
    write: (images) => enqueue(() => doWrite(images)),
    finish: () => enqueue(doFinish),
    async abort() {
      // Not queued: an interrupt must stop a write that is waiting on a full pipe.
      if (state !== 'open') return;
      state = 'aborted';
      await cleanup();
      await chain;
      // A write that was mid-way may have created one more PNG frame file.
      await cleanup();
    },
  };
}
