// Measures the streaming writer: peak RSS growth of this process and of ffmpeg while writing N
// frames at 256×256 in 8-frame chunks, and encode time per frame. Not a test (no timing asserts):
//   npx tsx tests/video/measure.ts            (runs every scenario, each in a fresh process)
//   npx tsx tests/video/measure.ts mp4 600    (one scenario; prints one JSON line)
//   RDFLOW_FFMPEG=/none npx tsx tests/video/measure.ts gif 600   (the pure-JS GIF encoder)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openVideoWriter, resolveOutputPath, type VideoFormat } from '../../server/runtime/video/index.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { movingFrames, tempDir } from './helpers.ts';

const SIZE = 256;
const CHUNK = 8;

/**
 * Frames where every pixel changes from frame to frame (drifting interference bands plus the moving
 * block of the test frames), so encoders do real work rather than skipping static areas.
 */
function busyFrames(f: number, start: number): Tensor {
  const t = movingFrames(f, SIZE, SIZE, start);
  for (let k = 0; k < f; k++) {
    const ph = (start + k) * 0.25;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const i = ((k * SIZE + y) * SIZE + x) * 3;
        const v = 0.5 + 0.5 * Math.sin(x * 0.11 + ph) * Math.cos(y * 0.07 - ph * 0.6);
        t.data[i] = 0.7 * t.data[i] + 0.3 * v;
        t.data[i + 1] = 0.5 * t.data[i + 1] + 0.5 * v;
      }
    }
  }
  return t;
}

/** Peak resident memory (VmHWM, bytes) of this process's child processes (ffmpeg), 0 if none. */
function childPeakRss(): number {
  let peak = 0;
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/PPid:\s+(\d+)/.exec(status)?.[1]) !== process.pid) continue;
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024);
    } catch {
      // the process ended meanwhile
    }
  }
  return peak;
}

async function scenario(format: VideoFormat, frames: number): Promise<void> {
  const dir = tempDir();
  // Warm up the code paths and allocator, so the baseline includes them.
  busyFrames(CHUNK, 0);
  const base = process.memoryUsage().rss;
  const w = openVideoWriter({ format, fps: 8, path: resolveOutputPath(dir, 'm', format) });
  let encodeMs = 0;
  let ffmpegPeak = 0;
  for (let k = 0; k < frames; k += CHUNK) {
    const clip = busyFrames(Math.min(CHUNK, frames - k), k);
    const t0 = performance.now();
    await w.write(clip);
    encodeMs += performance.now() - t0;
    ffmpegPeak = Math.max(ffmpegPeak, childPeakRss());
  }
  const t0 = performance.now();
  const files = await w.finish();
  encodeMs += performance.now() - t0;
  const peak = process.resourceUsage().maxRSS * 1024;
  const bytes = files.reduce((n, f) => n + readFileSync(f).length, 0);
  rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      format,
      frames,
      nodePeakRssGrowthMiB: +((peak - base) / 2 ** 20).toFixed(1),
      ffmpegPeakRssMiB: +(ffmpegPeak / 2 ** 20).toFixed(1),
      msPerFrame: +(encodeMs / frames).toFixed(2),
      fileKiB: Math.round(bytes / 1024),
    }),
  );
}

const [format, n] = process.argv.slice(2);
if (format !== undefined) {
  await scenario(format as VideoFormat, Number(n));
} else {
  const self = fileURLToPath(import.meta.url);
  for (const f of ['mp4', 'gif', 'webp', 'png'] as const) {
    for (const frames of f === 'mp4' ? [24, 600, 2400] : [24, 600]) {
      process.stdout.write(execFileSync('npx', ['tsx', self, f, String(frames)], { encoding: 'utf8' }));
    }
  }
}
