// readModelInfo on a converted folder whose model_index.json was edited by hand: limits it cannot
// use fall back to the defaults instead of reaching validation and listings half-formed.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { folderBytes } from '../../server/runtime/convert/catalog.ts';
import { describeLimits, ONNX_EXPORT_LIMITS, readModelInfo } from '../../server/runtime/families/info.ts';

const work = mkdtempSync(path.join(tmpdir(), 'rdflow-model-info-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function folder(name: string, rdflow: unknown): string {
  const dir = path.join(work, name);
  mkdirSync(path.join(dir, 'unet'), { recursive: true });
  writeFileSync(path.join(dir, 'unet', 'model.onnx'), '');
  writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify({ rdflow }));
  return dir;
}

describe('readModelInfo: recorded limits', () => {
  it('well-formed limits are used as recorded', () => {
    const limits = { latentChannels: 4, sizeMultiple: 8, frames: { min: 1 } };
    expect(readModelInfo(folder('ok', { family: 'modelscope', limits }))).toEqual({
      family: 'modelscope',
      limits,
    });
  });

  it('limits without frames, with a zero size multiple or a frames.max below min are not used', () => {
    const bad = [
      { latentChannels: 4, sizeMultiple: 8 },
      { latentChannels: 4, sizeMultiple: 0, frames: { min: 1 } },
      { latentChannels: 4, sizeMultiple: 8, frames: { min: 8, max: 2 } },
      { latentChannels: 4, sizeMultiple: 8, frames: { min: 1 }, size: { width: 'x' } },
    ];
    bad.forEach((limits, i) => {
      const info = readModelInfo(folder(`bad${i}`, { family: 'modelscope', limits }));
      expect(info.limits, JSON.stringify(limits)).toEqual(ONNX_EXPORT_LIMITS);
      expect(() => describeLimits(info.limits)).not.toThrow();
    });
  });
});

describe('folderBytes (rdflow models SIZE)', () => {
  it('counts links to files as their targets (a Hugging Face snapshot), not links to folders', async () => {
    const blobs = path.join(work, 'blobs');
    mkdirSync(blobs);
    writeFileSync(path.join(blobs, 'w'), new Uint8Array(1000));
    const snap = path.join(work, 'snapshot');
    mkdirSync(path.join(snap, 'unet'), { recursive: true });
    symlinkSync(path.join(blobs, 'w'), path.join(snap, 'unet', 'weights.safetensors'));
    writeFileSync(path.join(snap, 'model_index.json'), '{}');
    symlinkSync(snap, path.join(snap, 'loop'));
    symlinkSync(path.join(work, 'nowhere'), path.join(snap, 'dangling'));
    expect(await folderBytes(snap)).toBe(1002);
  });
});
