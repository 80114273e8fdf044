// The streaming video writer: what each format decodes to, chunked vs one-shot writes, and that
// failures and interrupts leave no partial file.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  GIF_MAX_FPS,
  openVideoWriter,
  resolveOutputPath,
  supportedFormats,
  validateVideoOptions,
  type VideoFormat,
} from '../../server/runtime/video/index.ts';
import { framesToRgb8, sharedRgb8 } from '../../server/runtime/video/rgb-codec.ts';
import {
  decodeFrameRgb,
  decodePng,
  meanAbsDiff,
  movingFrames,
  mp4TopBoxes,
  parseWebp,
  sliceFrames,
  tempDir,
} from './helpers.ts';
import { probe, probeFrameDurations } from '../helpers/ffprobe.ts';

async function writeVideo(format: VideoFormat, fps: number, chunks: Parameters<typeof sliceFrames>[0][]) {
  const dir = tempDir();
  const target = resolveOutputPath(dir, 'clip', format);
  const w = openVideoWriter({ format, fps, path: target });
  for (const c of chunks) await w.write(c);
  const files = await w.finish();
  return { dir, target, files };
}

const savedEnv = { ...process.env };
afterEach(() => {
  process.env.RDFLOW_FFMPEG = savedEnv.RDFLOW_FFMPEG;
  if (savedEnv.RDFLOW_FFMPEG === undefined) delete process.env.RDFLOW_FFMPEG;
});

describe('MP4 (H.264)', () => {
  it('decodes to exactly the frames written, at the set fps, yuv420p, with moov before mdat', async () => {
    const frames = movingFrames(16, 32, 32);
    const { files, target, dir } = await writeVideo('mp4', 8, [frames]);
    expect(files).toEqual([target.path]);
    expect(readdirSync(dir)).toEqual(['clip_00001.mp4']);
    const s = await probe(files[0]);
    expect(s).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p', width: 32, height: 32 });
    expect(Number(s.nb_read_frames)).toBe(16);
    expect(s.r_frame_rate).toBe('8/1');
    expect(mp4TopBoxes(readFileSync(files[0])).join(' ')).toMatch(/moov.*mdat/);
    // Colours survive (RGB order, not BGR): frame 5 decodes close to what was written.
    expect(meanAbsDiff(await decodeFrameRgb(files[0], 5), frames, 5)).toBeLessThan(6);
  });

  it('writing in 3 chunks gives the same video as writing once', async () => {
    const frames = movingFrames(24, 32, 48);
    const once = await writeVideo('mp4', 12, [frames]);
    const chunked = await writeVideo('mp4', 12, [
      sliceFrames(frames, 0, 8),
      sliceFrames(frames, 8, 16),
      sliceFrames(frames, 16, 24),
    ]);
    const [a, b] = [await probe(once.files[0]), await probe(chunked.files[0])];
    expect(b).toEqual(a);
    expect(Number(b.nb_read_frames)).toBe(24);
    expect([b.width, b.height]).toEqual([48, 32]);
    // Same input bytes, same deterministic encoder settings: identical streams.
    expect(readFileSync(chunked.files[0]).equals(readFileSync(once.files[0]))).toBe(true);
  });

  it('refuses odd frame sizes with a clear error and leaves nothing behind', async () => {
    const dir = tempDir();
    const w = openVideoWriter({ format: 'mp4', fps: 8, path: path.join(dir, 'odd.mp4') });
    await expect(w.write(movingFrames(2, 31, 32))).rejects.toThrow(/MP4.*even.*32x31/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a later clip of another size', async () => {
    const dir = tempDir();
    const w = openVideoWriter({ format: 'mp4', fps: 8, path: path.join(dir, 'a.mp4') });
    await w.write(movingFrames(2, 32, 32));
    await expect(w.write(movingFrames(2, 16, 32))).rejects.toThrow(/32x16 but this video is 32x32/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('GIF', () => {
  it('decodes to the frames written, with delays that add up to the set fps', async () => {
    const frames = movingFrames(24, 32, 32);
    const { files } = await writeVideo('gif', 24, [sliceFrames(frames, 0, 10), sliceFrames(frames, 10, 24)]);
    const s = await probe(files[0]);
    expect(s).toMatchObject({ codec_name: 'gif', width: 32, height: 32 });
    expect(Number(s.nb_read_frames)).toBe(24);
    // 24 fps is not a whole number of centiseconds: delays mix 4 and 5 cs and sum to 1 s.
    const d = await probeFrameDurations(files[0]);
    expect(new Set(d.map((x) => Math.round(x * 100)))).toEqual(new Set([4, 5]));
    expect(d.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2);
    // Each frame has its own palette: colours stay close despite 256 colours and dithering.
    for (const k of [0, 13, 23])
      expect(meanAbsDiff(await decodeFrameRgb(files[0], k), frames, k)).toBeLessThan(6);
  });

  it(`above ${GIF_MAX_FPS} fps drops frames to ${GIF_MAX_FPS} fps, keeping the duration`, async () => {
    const { files } = await writeVideo('gif', 60, [movingFrames(24, 16, 16)]);
    const s = await probe(files[0]);
    expect(Number(s.nb_read_frames)).toBe((24 * GIF_MAX_FPS) / 60);
    const d = await probeFrameDurations(files[0]);
    expect(d.reduce((a, b) => a + b, 0)).toBeCloseTo(24 / 60, 2);
  });

  it('without ffmpeg, the pure-JS encoder writes an equivalent GIF', async () => {
    process.env.RDFLOW_FFMPEG = path.join(tempDir(), 'no-ffmpeg-here');
    expect(
      await import('../../server/runtime/video/ffmpeg.ts').then((m) => m.tryFfmpegPath()),
    ).toBeUndefined();
    const frames = movingFrames(12, 32, 32);
    const { files } = await writeVideo('gif', 24, [sliceFrames(frames, 0, 5), sliceFrames(frames, 5, 12)]);
    delete process.env.RDFLOW_FFMPEG;
    const s = await probe(files[0]);
    expect(s).toMatchObject({ codec_name: 'gif', width: 32, height: 32 });
    expect(Number(s.nb_read_frames)).toBe(12);
    const d = await probeFrameDurations(files[0]);
    expect(d.reduce((a, b) => a + b, 0)).toBeCloseTo(0.5, 2);
    // Few colours in the test frames: the per-frame palette reproduces them closely.
    expect(meanAbsDiff(await decodeFrameRgb(files[0], 7), frames, 7)).toBeLessThan(6);
  });

  it('without ffmpeg, larger frames (palette from a pixel subsample) keep their colours', async () => {
    process.env.RDFLOW_FFMPEG = path.join(tempDir(), 'no-ffmpeg-here');
    const frames = movingFrames(3, 128, 160);
    const { files } = await writeVideo('gif', 8, [frames]);
    delete process.env.RDFLOW_FFMPEG;
    expect(await probe(files[0])).toMatchObject({ width: 160, height: 128, nb_read_frames: '3' });
    expect(meanAbsDiff(await decodeFrameRgb(files[0], 2), frames, 2)).toBeLessThan(6);
  });
});

describe('animated WebP', () => {
  it('has one ANMF frame per frame written, the frame size, looping, and fps-based durations', async () => {
    // The bundled ffprobe cannot decode animated WebP, so the RIFF container is read directly.
    expect(await supportedFormats()).toContain('webp');
    const { files } = await writeVideo('webp', 10, [movingFrames(6, 32, 48), movingFrames(6, 32, 48, 6)]);
    const webp = parseWebp(readFileSync(files[0]));
    expect(webp.canvas).toEqual({ width: 48, height: 32 });
    expect(webp.loop).toBe(0);
    expect(webp.frames).toHaveLength(12);
    expect(webp.frames.every((f) => f.width <= 48 && f.height <= 32)).toBe(true);
    expect(webp.frames.reduce((a, f) => a + f.durationMs, 0)).toBe(1200);
  });
});

describe('PNG frames', () => {
  it('writes one numbered file per frame, continuing the counter, with the exact pixels', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'f_00004.png'), ''); // an earlier run's last frame
    const target = resolveOutputPath(dir, 'f', 'png');
    expect(target.filename).toBe('f_00005.png');
    const frames = movingFrames(3, 8, 12);
    const w = openVideoWriter({ format: 'png', fps: 8, path: target });
    await w.write(sliceFrames(frames, 0, 1));
    await w.write(sliceFrames(frames, 1, 3));
    const files = await w.finish();
    expect(files.map((f) => path.basename(f))).toEqual(['f_00005.png', 'f_00006.png', 'f_00007.png']);
    expect(readdirSync(dir).sort()).toEqual(['f_00004.png', 'f_00005.png', 'f_00006.png', 'f_00007.png']);
    for (const k of [0, 2]) {
      const png = decodePng(readFileSync(files[k]));
      expect([png.width, png.height]).toEqual([12, 8]);
      expect(meanAbsDiff(png.rgb, frames, k)).toBe(0);
      // Spot checks: the red block's top-left corner and a gradient pixel.
      const at = (x: number, y: number) =>
        Array.from(png.rgb.subarray((y * 12 + x) * 3, (y * 12 + x) * 3 + 3));
      expect(at(k * 2, 2)).toEqual([255, 0, 0]);
      expect(at(11, 7)).toEqual([0, Math.round((11 / 12) * 255), Math.round((7 / 8) * 255)]);
    }
    expect(meanAbsDiff(await decodeFrameRgb(files[1], 0), frames, 1)).toBe(0); // ffmpeg agrees
  });
});

describe('frames converted once (a resume checkpoint shares its 8-bit RGB)', () => {
  it('a writer encodes the bytes made for the checkpoint instead of converting the frames again', async () => {
    const frames = movingFrames(2, 8, 12);
    const stored = framesToRgb8(frames);
    expect(sharedRgb8(frames)).toBe(stored.rgb);
    // A marker only the stored bytes have: the file shows which form was encoded.
    stored.rgb.set([1, 2, 3], 0);
    const { files } = await writeVideo('png', 8, [frames]);
    expect(Array.from(decodePng(readFileSync(files[0])).rgb.subarray(0, 3))).toEqual([1, 2, 3]);
    expect(
      Buffer.from(decodePng(readFileSync(files[1])).rgb).equals(Buffer.from(stored.rgb.subarray(288))),
    ).toBe(true);
  });

  it('the ffmpeg sink never recycles shared bytes as a frame buffer', async () => {
    const shared = movingFrames(4, 16, 16);
    const stored = framesToRgb8(shared);
    const before = stored.rgb.slice();
    // Shared clip first, then clips the writer converts into its own buffers.
    const { files } = await writeVideo('mp4', 8, [
      shared,
      movingFrames(4, 16, 16, 4),
      movingFrames(4, 16, 16, 8),
    ]);
    expect(Buffer.from(stored.rgb).equals(Buffer.from(before))).toBe(true);
    expect(Number((await probe(files[0])).nb_read_frames)).toBe(12);
  });

  it('a reshaped or unknown tensor is converted as before', () => {
    const frames = movingFrames(2, 8, 12);
    expect(sharedRgb8(frames)).toBeUndefined();
    framesToRgb8(frames);
    expect(sharedRgb8({ data: frames.data, shape: [1, 16, 12, 3] })).toBeUndefined();
  });
});

describe('no partial files', () => {
  it.each(['mp4', 'gif', 'webp', 'png'] as const)('%s: abort mid-way removes everything', async (format) => {
    const dir = tempDir();
    const w = openVideoWriter({ format, fps: 8, path: resolveOutputPath(dir, 'clip', format) });
    await w.write(movingFrames(8, 32, 32));
    // The encoder writes its output once the first frames are through: wait for temp bytes on disk.
    // (libwebp_anim assembles the whole animation in memory and writes it at the end.)
    const bytesOnDisk = () => readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
    if (format !== 'webp') {
      for (let i = 0; i < 200 && bytesOnDisk() === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(bytesOnDisk()).toBeGreaterThan(0);
    }
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    expect(
      readdirSync(dir).every((n) => /^\.clip_\d{5}\.tmp-\d+-[0-9a-f]+\.(mp4|gif|webp|png)$/.test(n)),
    ).toBe(true);
    await w.abort();
    expect(readdirSync(dir)).toEqual([]);
    await expect(w.write(movingFrames(1, 32, 32))).rejects.toThrow(/aborted/);
    await w.abort(); // idempotent
  });

  it('abort stops a write that is waiting on a full pipe', async () => {
    // A stand-in encoder that has stalled: it starts its output file, then never reads stdin. The
    // first 256×256 frame (192 KiB) overfills the pipe, so the write cannot complete until abort.
    // (Real ffmpeg may drain 64 frames before abort on a loaded machine, or not: racy.)
    const bin = tempDir();
    const fake = path.join(bin, 'stalled-ffmpeg');
    writeFileSync(fake, '#!/bin/sh\nfor out; do :; done\nprintf partial > "$out"\nexec sleep 300\n');
    chmodSync(fake, 0o755);
    process.env.RDFLOW_FFMPEG = fake;
    const dir = tempDir();
    const w = openVideoWriter({ format: 'mp4', fps: 8, path: path.join(dir, 'big.mp4') });
    let settled = false;
    const pending = w.write(movingFrames(4, 256, 256)).finally(() => {
      settled = true;
    });
    pending.catch(() => {}); // observed below; keeps an early rejection from going unhandled
    try {
      // Wait until the encoder has written into its temp file: it is running and the write is
      // past starting it, i.e. blocked on the pipe.
      const started = () => readdirSync(dir).some((f) => statSync(path.join(dir, f)).size > 0);
      for (let i = 0; i < 1000 && !started(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(started()).toBe(true);
      expect(readdirSync(dir)).toEqual([expect.stringMatching(/^\.big\.tmp-\d+-[0-9a-f]+\.mp4$/)]);
      expect(settled).toBe(false);
    } finally {
      await w.abort();
    }
    await expect(pending).rejects.toThrow(/^ffmpeg writing big\.mp4 was stopped$/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('ffmpeg failing surfaces its own message and leaves no file', async () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'gone'));
    const w = openVideoWriter({ format: 'mp4', fps: 8, path: path.join(root, 'gone', 'x.mp4') });
    // The folder vanishes before the encoder starts: ffmpeg cannot open its output.
    rmSync(path.join(root, 'gone'), { recursive: true });
    const err = await (async () => {
      await w.write(movingFrames(4, 32, 32));
      await w.finish();
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/ffmpeg failed writing x\.mp4: it exited with code \d+/);
    expect((err as Error).message).toMatch(/No such file or directory/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('reports the last lines of stderr of an ffmpeg that dies', async () => {
    const dir = tempDir();
    const fake = path.join(dir, 'fake-ffmpeg');
    writeFileSync(
      fake,
      '#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do echo "noise $i" >&2; done\necho "fatal: encoder exploded" >&2\nexit 3\n',
    );
    chmodSync(fake, 0o755);
    process.env.RDFLOW_FFMPEG = fake;
    const w = openVideoWriter({ format: 'mp4', fps: 8, path: path.join(dir, 'y.mp4') });
    const err = await (async () => {
      await w.write(movingFrames(4, 32, 32));
      await w.finish();
    })().catch((e: unknown) => e);
    const msg = (err as Error).message;
    expect(msg).toMatch(/exited with code 3/);
    expect(msg).toMatch(/fatal: encoder exploded$/);
    expect(msg).not.toMatch(/noise 1\b/); // only the tail
    expect(readdirSync(dir)).toEqual(['fake-ffmpeg']);
  });

  it('a writer into a missing folder fails at once, naming the folder', () => {
    const missing = path.join(tempDir(), 'missing');
    expect(() => openVideoWriter({ format: 'gif', fps: 8, path: path.join(missing, 'x.gif') })).toThrow(
      `video x.gif: cannot create a file in ${missing}`,
    );
  });

  it('two writers opened on the same prefix before either writes get different names', async () => {
    const dir = tempDir();
    const a = openVideoWriter({ format: 'mp4', fps: 8, path: resolveOutputPath(dir, 'same', 'mp4') });
    const b = openVideoWriter({ format: 'mp4', fps: 8, path: resolveOutputPath(dir, 'same', 'mp4') });
    await b.write(movingFrames(2, 16, 16));
    await a.write(movingFrames(2, 16, 16));
    const files = [...(await a.finish()), ...(await b.finish())].map((f) => path.basename(f));
    expect(files).toEqual(['same_00001.mp4', 'same_00002.mp4']);
    expect(readdirSync(dir).sort()).toEqual(files);
  });

  it('finish without frames is an error, not an empty file', async () => {
    const dir = tempDir();
    const w = openVideoWriter({ format: 'gif', fps: 8, path: path.join(dir, 'e.gif') });
    await expect(w.finish()).rejects.toThrow(/no frames were written/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('validateVideoOptions', () => {
  it('accepts good options', () => {
    expect(validateVideoOptions({ format: 'mp4', fps: 8, width: 256, height: 256 })).toEqual([]);
    expect(validateVideoOptions({ format: 'gif', fps: 60, width: 255, height: 17 })).toEqual([]);
  });
  it('names unknown formats, fps outside 1..60 and odd MP4 sizes', () => {
    expect(validateVideoOptions({ format: 'avi', fps: 8 })).toEqual([
      expect.stringMatching(/"avi".*mp4, gif, webp, png/),
    ]);
    expect(validateVideoOptions({ format: 'mp4', fps: 0 })).toEqual([
      expect.stringMatching(/fps 0 is outside 1\.\.60/),
    ]);
    expect(validateVideoOptions({ format: 'gif', fps: 61 })).toEqual([
      expect.stringMatching(/outside 1\.\.60.*GIF/),
    ]);
    expect(validateVideoOptions({ format: 'mp4', fps: 8, width: 33, height: 31 })).toEqual([
      expect.stringMatching(/even width, got 33/),
      expect.stringMatching(/even height, got 31/),
    ]);
  });
  it('openVideoWriter refuses bad options at once', () => {
    expect(() => openVideoWriter({ format: 'mp4', fps: 120, path: '/tmp/x.mp4' })).toThrow(/fps 120/);
  });
});

describe('a host killed mid-video', () => {
  it('leaves only a hidden temp file, which the next resolveOutputPath in that folder removes', async () => {
    const dir = tempDir();
    const fixture = path.join(import.meta.dirname, 'fixtures', 'write-then-hang.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        if (b.toString().includes('written')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`fixture exited early (${code})`)));
    });
    child.kill('SIGKILL');
    await once(child, 'exit');
    // ffmpeg (its own process group) sees end of input and exits by itself; wait for that.
    const ffmpegAlive = () =>
      readdirSync('/proc').some((p) => {
        try {
          return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
        } catch {
          return false;
        }
      });
    for (let i = 0; i < 500 && ffmpegAlive(); i++) await new Promise((r) => setTimeout(r, 10));
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left.every((n) => /^\.crash_00001\.tmp-\d+-[0-9a-f]+\.mp4$/.test(n))).toBe(true);
    expect(resolveOutputPath(dir, 'crash', 'mp4').filename).toBe('crash_00001.mp4');
    expect(readdirSync(dir)).toEqual([]);
  });
});
