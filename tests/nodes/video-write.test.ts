// VideoWrite streams clip by clip into one file, finishes it on the last loop iteration, and leaves
// nothing behind when the run ends early.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFilesRecursive } from '../../nodes/files.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { videoWriteNode } from '../../nodes/video-write.ts';
import { makeContext, makePaths } from './context.ts';
import { probeVideo } from '../helpers/ffprobe.ts';

const paths = makePaths();
afterAll(() => paths.cleanup());

/** F frames of a W×H gradient whose brightness moves with the frame index. */
function clip(frames: number, size: number, offset: number): Tensor {
  const data = new Float32Array(frames * size * size * 3);
  for (let f = 0; f < frames; f++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let ch = 0; ch < 3; ch++) {
          data[((f * size + y) * size + x) * 3 + ch] = ((x + y + 4 * (f + offset) + 10 * ch) % 64) / 63;
        }
  return { data, shape: [frames, size, size, 3] };
}

type FileEntry = { filename: string; subfolder: string; type: string };

describe('VideoWrite', () => {
  it('in a 3-iteration loop writes one MP4 of N·K frames at the set fps, listed under images', async () => {
    const N = 4;
    const K = 3;
    let rc = makeContext(paths, { loop: { iteration: 0, iterations: K } });
    let ui;
    for (let c = 0; c < K; c++) {
      if (c > 0) rc = rc.next({ iteration: c, iterations: K });
      const res = await videoWriteNode.run(
        { images: clip(N, 32, c * N), fps: 5, format: 'mp4', filename_prefix: 'loop/vid' },
        rc.ctx,
      );
      ui = res.ui;
      if (c < K - 1) expect(ui).toBeUndefined();
    }
    await rc.endRun({ ok: true });
    expect(rc.uis.map((u) => u.clips)).toEqual([
      [{ iteration: 0, iterations: K, frames: N }],
      [{ iteration: 1, iterations: K, frames: 2 * N }],
    ]);
    expect(ui?.animated).toEqual([true]);
    const images = ui?.images as FileEntry[];
    expect(images).toHaveLength(1);
    expect(images[0]).toMatchObject({ subfolder: 'loop', type: 'output' });
    expect(images[0].filename).toMatch(/\.mp4$/);
    const files = await listFilesRecursive(paths.output);
    expect(files).toEqual([`loop/${images[0].filename}`]);
    const probe = await probeVideo(path.join(paths.output, 'loop', images[0].filename));
    expect(probe).toMatchObject({ frames: N * K, fps: 5, codec: 'h264', width: 32, height: 32 });
  });

  it('outside a loop writes the file at once (GIF)', async () => {
    const rc = makeContext(paths);
    const res = await videoWriteNode.run(
      { images: clip(3, 16, 0), fps: 4, format: 'gif', filename_prefix: 'single' },
      rc.ctx,
    );
    await rc.endRun({ ok: true });
    const [entry] = res.ui?.images as FileEntry[];
    expect(entry.filename).toMatch(/^single.*\.gif$/);
    expect((await probeVideo(path.join(paths.output, entry.filename))).frames).toBe(3);
  });

  it('leaves no file when the run is interrupted before the last clip', async () => {
    const before = await listFilesRecursive(paths.output);
    let rc = makeContext(paths, { loop: { iteration: 0, iterations: 3 } });
    await videoWriteNode.run(
      { images: clip(4, 32, 0), fps: 4, format: 'mp4', filename_prefix: 'cut' },
      rc.ctx,
    );
    rc = rc.next({ iteration: 1, iterations: 3 });
    await videoWriteNode.run(
      { images: clip(4, 32, 4), fps: 4, format: 'mp4', filename_prefix: 'cut' },
      rc.ctx,
    );
    await rc.endRun({ ok: false, error: new Error('interrupted'), interrupted: true });
    expect(await listFilesRecursive(paths.output)).toEqual(before);
    expect(existsSync(path.join(paths.output, 'cut'))).toBe(false);
  });

  it('rejects a prefix leaving the output folder and an fps out of range before running', async () => {
    const issues = await videoWriteNode.validate?.(
      { fps: 0, format: 'mp4', filename_prefix: '../escape' },
      { paths },
    );
    expect(issues?.map((i) => i.input).sort()).toEqual(['filename_prefix', 'fps']);
  });

  it('refuses odd frame sizes for MP4 with a message naming the input, writing nothing', async () => {
    const before = await listFilesRecursive(paths.output);
    const rc = makeContext(paths);
    await expect(
      videoWriteNode.run({ images: clip(2, 15, 0), fps: 4, format: 'mp4', filename_prefix: 'odd' }, rc.ctx),
    ).rejects.toThrow(/images.*even/);
    await rc.endRun({ ok: false, error: new Error('failed'), interrupted: false });
    expect(await listFilesRecursive(paths.output)).toEqual(before);
  });

  it('in a loop nested in another writes one file per pass of the inner loop', async () => {
    let rc = makeContext(paths, { loop: { iteration: 0, iterations: 2 } });
    const names: string[] = [];
    for (let outer = 0; outer < 2; outer++) {
      for (let c = 0; c < 2; c++) {
        if (outer + c > 0) rc = rc.next({ iteration: c, iterations: 2 });
        const res = await videoWriteNode.run(
          { images: clip(2, 16, c), fps: 4, format: 'gif', filename_prefix: 'nested/v' },
          rc.ctx,
        );
        if (c === 1) names.push(...(res.ui?.images as FileEntry[]).map((e) => e.filename));
      }
    }
    await rc.endRun({ ok: true });
    expect(names).toHaveLength(2);
    expect(new Set(names).size).toBe(2);
    for (const n of names) expect((await probeVideo(path.join(paths.output, 'nested', n))).frames).toBe(4);
  });
});
