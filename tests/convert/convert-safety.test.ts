// What a conversion must never do to the user's files: replace a folder holding the source, record
// a source that changed while it was read as up to date, let two conversions into one DEST delete
// each other's work, or lose a replaced model to a crash between its two renames.
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureConverted, isUpToDate } from '../../server/runtime/convert/cache.ts';
import { convertModel } from '../../server/runtime/convert/index.ts';
import { inspectModelFolder } from '../../server/runtime/index.ts';
import { modelsDir } from '../helpers/convert.ts';

const work = mkdtempSync(path.join(tmpdir(), 'rdflow-convert-safety-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const MS = path.join(modelsDir, 'modelscope-tiny');
const parent = () => mkdtempSync(path.join(work, 'case-'));
const leftovers = (dir: string) => readdirSync(dir).filter((n) => n.includes('.partial-'));

describe('rdflow convert: the source and DEST stay whole', () => {
  it('--force into a folder that holds the source is refused, and the source survives', async () => {
    const dir = parent();
    const src = path.join(dir, 'models', 'ms');
    cpSync(MS, src, { recursive: true });
    const dest = path.join(dir, 'models');
    await expect(convertModel(src, dest, { force: true })).rejects.toThrow(
      `${dest} contains the source ${src}; choose another destination`,
    );
    expect(existsSync(path.join(src, 'unet', 'config.json'))).toBe(true);
  });

  it('a source changed while it is read fails the conversion instead of being recorded as current', async () => {
    const dir = parent();
    const src = path.join(dir, 'src');
    cpSync(MS, src, { recursive: true });
    const dest = path.join(dir, 'out');
    const weights = path.join(src, 'unet', 'diffusion_pytorch_model.safetensors');
    let touched = false;
    const err = await convertModel(src, dest, {
      onProgress: (p) => {
        if (p.phase === 'write' && !touched) {
          touched = true;
          utimesSync(weights, new Date(), new Date(Date.now() + 60_000));
        }
      },
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toBe(
      `${src}: the source changed while it was being converted (unet/diffusion_pytorch_model.safetensors); convert it again`,
    );
    expect(existsSync(dest)).toBe(false);
    expect(await isUpToDate(src, dest)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  it('a source of symlinks (the Hugging Face cache layout) is stale once a link points at a new file', async () => {
    const dir = parent();
    const src = path.join(dir, 'src');
    cpSync(MS, src, { recursive: true });
    const blobs = path.join(dir, 'blobs');
    mkdirSync(blobs);
    const weights = path.join(src, 'unet', 'diffusion_pytorch_model.safetensors');
    renameSync(weights, path.join(blobs, 'a'));
    symlinkSync(path.join(blobs, 'a'), weights);
    const dest = path.join(dir, 'out');
    await convertModel(src, dest);
    expect(await isUpToDate(src, dest)).toBe(true);
    // A new revision downloaded: the link now names another blob.
    copyFileSync(path.join(blobs, 'a'), path.join(blobs, 'b'));
    utimesSync(path.join(blobs, 'b'), new Date(), new Date(Date.now() + 60_000));
    rmSync(weights);
    symlinkSync(path.join(blobs, 'b'), weights);
    expect(await isUpToDate(src, dest)).toBe(false);
  });

  it('a cached conversion whose index lost its stamp is out of date, not an error', async () => {
    const dir = parent();
    const dest = path.join(dir, 'out');
    mkdirSync(dest);
    writeFileSync(path.join(dest, 'model_index.json'), JSON.stringify({ rdflow: { converter: 1 } }));
    expect(await isUpToDate(MS, dest)).toBe(false);
  });

  it('LoadVideoModel cache: one caller interrupted does not abort the conversion another caller waits for', async () => {
    const models = parent();
    const first = new AbortController();
    let writes = 0;
    const a = ensureConverted(MS, models, {
      signal: first.signal,
      onProgress: (p) => {
        if (p.phase === 'write' && ++writes === 2) first.abort(new Error('first caller interrupted'));
      },
    });
    const secondSaw: string[] = [];
    const b = ensureConverted(MS, models, { onProgress: (p) => secondSaw.push(p.phase) });
    await expect(a).rejects.toThrow('first caller interrupted');
    const dest = await b;
    expect(await inspectModelFolder(dest)).toEqual([]);
    expect(secondSaw).toContain('component-done');
  });

  it('two conversions into one DEST at once both finish, leaving one whole model', async () => {
    const dir = parent();
    const dest = path.join(dir, 'out');
    await Promise.all([convertModel(MS, dest, { force: true }), convertModel(MS, dest, { force: true })]);
    expect(await inspectModelFolder(dest)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  it('a model moved aside by a process that died mid-replace is put back, not deleted', async () => {
    const dir = parent();
    const dest = path.join(dir, 'out');
    await convertModel(MS, dest);
    // As a replace leaves it when killed between its renames: DEST moved aside, new one not yet in.
    const aside = path.join(dir, `.out.partial-${2 ** 22 + 7}-dead.old`);
    cpSync(dest, aside, { recursive: true });
    rmSync(dest, { recursive: true });
    const ac = new AbortController();
    // The next conversion sweeps at its start; abort it right after, before it writes DEST.
    await convertModel(MS, dest, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === 'write') ac.abort(new Error('stop'));
      },
    }).catch(() => undefined);
    expect(await inspectModelFolder(dest)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });
});
