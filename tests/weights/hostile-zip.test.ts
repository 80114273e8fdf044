// Hostile zip containers around a PyTorch checkpoint: forged sizes, overlapping entries, a zip bomb
// in a deflated data.pkl, directory records that run past their end. Each must fail with the file,
// the entry and the reason, before anything the size of the forged field is allocated.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors, openTorchCheckpoint } from '../../server/runtime/weights/index.ts';
import { makeZip, storageOf, torchPickle, torchZip, scratchFiles } from './fixtures.ts';

const file = scratchFiles('rdflow-hostile-zip-');

const S = {
  '0': storageOf(
    'FloatStorage',
    Float32Array.from({ length: 24 }, (_, i) => i),
  ),
};
const good = () => torchZip(torchPickle([{ key: 'w', storage: '0', shape: [24] }], S), S);

/** Calls `patch` with each central directory record's offset (a plain, non-zip64 archive). */
function patchCentral(zip: Buffer, patch: (at: number, name: string) => void): Buffer {
  const eocd = zip.length - 22;
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let k = 0; k < count; k++) {
    const nameLen = zip.readUInt16LE(p + 28);
    const name = zip.toString('utf8', p + 46, p + 46 + nameLen);
    const next = p + 46 + nameLen + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
    patch(p, name);
    p = next;
  }
  return zip;
}

async function failure(bytes: Uint8Array): Promise<string> {
  try {
    const s = await openTorchCheckpoint(file(bytes), 'evil.pth');
    // Some forgeries only show when the tensor is read.
    try {
      await s.read('w');
    } finally {
      await s.close();
    }
    return 'no error';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('hostile zip containers', () => {
  it('a stored data.pkl claiming gigabytes is refused from the directory, before reading', async () => {
    const z = good();
    patchCentral(z, (at, name) => {
      if (name.endsWith('data.pkl')) z.writeUInt32LE(0xfffffff0, at + 24); // uncompressed size: ~4 GiB
    });
    expect(await failure(z)).toMatch(
      /^evil\.pth: entry "archive\/data\.pkl" is stored uncompressed but claims 4294967280 bytes in \d+$/,
    );
  });

  it('a deflated data.pkl that inflates past its declared size (a zip bomb) stops at that size', async () => {
    // 1 MB of pickle NONEs compress to a few KB; the directory claims 100 bytes.
    const bomb = makeZip([
      { name: 'archive/data.pkl', data: new Uint8Array(1 << 20).fill(0x4e), deflate: true },
      { name: 'archive/data/0', data: S['0'].data },
    ]);
    const z = patchCentral(bomb, (at, name) => {
      if (name.endsWith('data.pkl')) bomb.writeUInt32LE(100, at + 24);
    });
    expect(await failure(z)).toBe(
      'evil.pth: entry "archive/data.pkl": inflates to more than the 100 bytes the directory says',
    );
  });

  it('a deflated entry claiming more than deflate can produce is refused from the directory', async () => {
    const forged = makeZip([
      { name: 'archive/data.pkl', data: new Uint8Array(16).fill(0x4e), deflate: true },
    ]);
    patchCentral(forged, (at) => forged.writeUInt32LE(0x7fffffff, at + 24));
    expect(await failure(forged)).toMatch(
      /^evil\.pth: entry "archive\/data\.pkl" claims 2147483647 bytes from \d+ deflated ones, more than deflate can produce/,
    );
  });

  it('entries whose bytes overlap are refused, naming both', async () => {
    const z = good();
    let first = -1;
    patchCentral(z, (at, name) => {
      if (name === 'archive/data.pkl') first = z.readUInt32LE(at + 42);
      // The storage entry points back at the pickle's local header.
      if (name === 'archive/data/0') z.writeUInt32LE(first, at + 42);
    });
    expect(await failure(z)).toMatch(
      /^evil\.pth: corrupt zip: entries "archive\/data\.pkl" .* and "archive\/data\/0" .* overlap/,
    );
  });

  it('a directory record whose name runs past the directory is named, not a RangeError', async () => {
    const z = good();
    let last = -1;
    patchCentral(z, (at) => (last = at));
    z.writeUInt16LE(0xfff0, last + 28); // the last record's name length
    expect(await failure(z)).toMatch(
      /^evil\.pth: corrupt zip central directory \(entry 3 of 4 runs past its end\)$/,
    );
  });

  it('a local header whose extra field pushes the data past the end of the file is named', async () => {
    const z = good();
    patchCentral(z, (at, name) => {
      if (name === 'archive/data/0') z.writeUInt16LE(0xffff, z.readUInt32LE(at + 42) + 28);
    });
    expect(await failure(z)).toMatch(
      /^evil\.pth: entry "archive\/data\/0": its data \(bytes \d+\.\.\d+\) runs past the end of the \d+-byte file$/,
    );
  });

  it('a directory or a FIFO where a weights file should be is named at once (a FIFO blocked the open forever)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rdflow-notfile-'));
    try {
      mkdirSync(path.join(dir, 'd.safetensors'));
      execFileSync('mkfifo', [path.join(dir, 'p.bin')]);
      await expect(openSafetensors(path.join(dir, 'd.safetensors'))).rejects.toThrow(
        'd.safetensors: cannot be opened (a directory, not a file)',
      );
      await expect(openTorchCheckpoint(path.join(dir, 'p.bin'))).rejects.toThrow(
        'p.bin: cannot be opened (not a regular file)',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
