// SaveLatent writes a float32 .npy that NumPy loads with the latent's shape and values; LoadLatent
// reads files from the input folder only.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../server/core/npy.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { loadLatentNode } from '../../nodes/load-latent.ts';
import { saveLatentNode } from '../../nodes/save-latent.ts';
import type { ComboSpec } from '../../server/engine/define.ts';
import { makeContext, makePaths } from './context.ts';

const paths = makePaths();
afterAll(() => paths.cleanup());

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
if (!hasNumpy) console.warn('python3 with numpy not found: skipping the np.load check');

type FileEntry = { filename: string; subfolder: string; type: string };

async function save(latent: Tensor, prefix: string): Promise<string> {
  const res = await saveLatentNode.run({ latent, filename_prefix: prefix }, makeContext(paths).ctx);
  const [entry] = res.ui?.latents as FileEntry[];
  expect(entry.type).toBe('output');
  return path.join(paths.output, entry.subfolder, entry.filename);
}

describe('SaveLatent', () => {
  const latent = torchRandn([1, 4, 3, 2, 5], 21);

  it.skipIf(!hasNumpy)('writes float32 .npy that np.load reads with the right shape and values', async () => {
    const file = await save(latent, 'latents/test');
    const script =
      'import sys, json, numpy as np; a = np.load(sys.argv[1]); ' +
      'print(json.dumps({"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(a.astype(np.float64).sum()), "first": float(a.flat[0]), "last": float(a.flat[-1])}))';
    const out = JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' })) as {
      dtype: string;
      shape: number[];
      sum: number;
      first: number;
      last: number;
    };
    let sum = 0;
    for (const v of latent.data) sum += v;
    expect(out.dtype).toBe('float32');
    expect(out.shape).toEqual([1, 4, 3, 2, 5]);
    expect(out.first).toBe(latent.data[0]);
    expect(out.last).toBe(latent.data[latent.data.length - 1]);
    expect(out.sum).toBeCloseTo(sum, 4);
  });

  it('never overwrites: two saves give two files', async () => {
    const a = await save(latent, 'twice');
    const b = await save(latent, 'twice');
    expect(a).not.toBe(b);
  });
});

describe('LoadLatent', () => {
  it('lists .npy files of the input folder and reads one back exactly', async () => {
    const latent = torchRandn([1, 4, 2, 3, 3], 8);
    const saved = await save(latent, 'roundtrip');
    mkdirSync(path.join(paths.input, 'sub'), { recursive: true });
    copyFileSync(saved, path.join(paths.input, 'sub', 'clip.npy'));
    const spec = loadLatentNode.inputs.required.file as ComboSpec;
    const options = typeof spec.options === 'function' ? spec.options({ paths }) : spec.options;
    expect(options).toContain('sub/clip.npy');
    const res = await loadLatentNode.run({ file: 'sub/clip.npy' }, makeContext(paths).ctx);
    const back = res.outputs[0] as Tensor;
    expect(back.shape).toEqual(latent.shape);
    expect(Array.from(back.data)).toEqual(Array.from(latent.data));
  });

  it('fingerprints the file by size and mtime, so a replaced file is read again', async () => {
    const file = path.join(paths.input, 'fp.npy');
    writeFileSync(file, writeNpy(torchRandn([1, 4, 1, 2, 2], 1)));
    const before = await loadLatentNode.fingerprint?.({ file: 'fp.npy' }, { paths });
    expect(await loadLatentNode.fingerprint?.({ file: 'fp.npy' }, { paths })).toBe(before);
    writeFileSync(file, writeNpy(torchRandn([1, 4, 2, 2, 2], 1)));
    expect(await loadLatentNode.fingerprint?.({ file: 'fp.npy' }, { paths })).not.toBe(before);
  });

  it('refuses a path outside the input folder', async () => {
    const issues = await loadLatentNode.validate?.({ file: '../output/x.npy' }, { paths });
    expect(issues).toEqual([{ input: 'file', message: expect.stringContaining('..') }]);
    await expect(loadLatentNode.run({ file: '../x.npy' }, makeContext(paths).ctx)).rejects.toThrow(/\.\./);
    // A link inside the input folder must not lead out of it either.
    const outside = path.join(paths.root, 'secret.npy');
    writeFileSync(outside, writeNpy(torchRandn([1, 4, 1, 2, 2], 3)));
    symlinkSync(outside, path.join(paths.input, 'link.npy'));
    await expect(loadLatentNode.run({ file: 'link.npy' }, makeContext(paths).ctx)).rejects.toThrow(
      /links outside/,
    );
  });
});
