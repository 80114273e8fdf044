// The streaming safetensors writer (read back by the reader), component folders (single files,
// shards, format preference, missing pieces) and broken safetensors files.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  openComponentWeights,
  openSafetensors,
  writeSafetensors,
  type SafetensorsEntry,
  type WeightSource,
} from '../../server/runtime/weights/index.ts';
import { storageOf, torchPickle, torchZip } from './fixtures.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'rdflow-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function folder(): string {
  const d = path.join(tmp, `d${n++}`);
  mkdirSync(d);
  return d;
}

/** Deterministic values with every mantissa bit in play. */
function values(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * 10 ** ((i % 7) - 3);
  }
  return out;
}

/** What a float32 becomes in bfloat16 (round to nearest even), computed independently of the writer. */
function bf16Round(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const lower = u & 0xffff;
  let hi = u >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (hi & 1) === 1)) hi++;
  return new Float32Array(new Uint32Array([hi << 16]).buffer)[0];
}

async function readAll(s: WeightSource): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const k of s.tensors.keys()) m.set(k, await s.read(k));
  return m;
}

describe('writeSafetensors', () => {
  it('float32/float16/bfloat16 read back exactly, header aligned, metadata kept, one produce at a time', async () => {
    const f = path.join(folder(), 'w.safetensors');
    const a = values(6 * 5, 1);
    const b = values(17, 2);
    const c = values(3 * 4 * 2, 3);
    let live = 0;
    let maxLive = 0;
    const entry = (
      key: string,
      dtype: SafetensorsEntry['dtype'],
      shape: number[],
      v: Float32Array,
    ): SafetensorsEntry => ({
      key,
      dtype,
      shape,
      produce: async () => {
        live++;
        maxLive = Math.max(maxLive, live);
        await new Promise((r) => setTimeout(r, 1));
        live--;
        return v;
      },
    });
    async function* gen() {
      yield entry('a.weight', 'float32', [6, 5], a);
      yield entry('b.bias', 'bfloat16', [17], b);
      yield entry('c', 'float16', [3, 4, 2], c);
      yield entry('empty', 'float32', [0, 3], new Float32Array(0));
    }
    await writeSafetensors(f, gen(), { format: 'pt', note: 'test' });
    expect(maxLive).toBe(1);
    const raw = readFileSync(f);
    const hlen = Number(raw.readBigUInt64LE(0));
    expect(hlen % 8).toBe(0);
    const header = JSON.parse(raw.toString('utf8', 8, 8 + hlen)) as Record<string, unknown>;
    expect(header.__metadata__).toEqual({ format: 'pt', note: 'test' });
    expect(header['b.bias']).toEqual({ dtype: 'BF16', shape: [17], data_offsets: [120, 154] });
    expect(raw.length).toBe(8 + hlen + 120 + 34 + 48);
    const s = await openSafetensors(f);
    try {
      expect([...s.tensors.keys()]).toEqual(['a.weight', 'b.bias', 'c', 'empty']);
      expect(s.tensors.get('b.bias')).toMatchObject({ dtype: 'bfloat16', shape: [17] });
      expect(Array.from(await s.read('a.weight'))).toEqual(Array.from(a));
      expect(Array.from(await s.read('b.bias'))).toEqual(Array.from(b, bf16Round));
      expect(Array.from(await s.read('c'))).toEqual(Array.from(c, half));
      expect((await s.read('empty')).length).toBe(0);
    } finally {
      await s.close();
    }
    expect(readdirSync(path.dirname(f))).toEqual(['w.safetensors']);
  });

  it('bfloat16 rounds to nearest even; values already bfloat16 survive bit for bit', async () => {
    const exact = Float32Array.from([1, -2.5, 3.140625, 1e-30, -0, Infinity]).map(bf16Round);
    const ties = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]);
    const f = path.join(folder(), 'bf.safetensors');
    await writeSafetensors(f, [
      { key: 'exact', dtype: 'bfloat16', shape: [exact.length], produce: () => exact },
      { key: 'ties', dtype: 'bfloat16', shape: [3], produce: () => ties },
    ]);
    const s = await openSafetensors(f);
    try {
      const e = await s.read('exact');
      expect(Buffer.from(e.buffer).equals(Buffer.from(exact.buffer))).toBe(true);
      expect(Array.from(await s.read('ties'))).toEqual([1, 1 + 2 ** -6, 1 + 2 ** -7]);
    } finally {
      await s.close();
    }
  });

  it('a failing or wrong-sized produce leaves neither the file nor a temp file', async () => {
    const d = folder();
    const f = path.join(d, 'x.safetensors');
    await expect(
      writeSafetensors(f, [
        { key: 'w', dtype: 'float32', shape: [2, 3], produce: () => new Float32Array(5) },
      ]),
    ).rejects.toThrow(/x\.safetensors: tensor "w": produce\(\) gave 5 values, shape \[2, 3\] needs 6/);
    await expect(
      writeSafetensors(f, [
        { key: 'ok', dtype: 'float32', shape: [1], produce: () => new Float32Array(1) },
        { key: 'w', dtype: 'float16', shape: [1], produce: () => Promise.reject(new Error('boom')) },
      ]),
    ).rejects.toThrow(/^.*x\.safetensors: tensor "w": boom$/);
    await expect(
      writeSafetensors(f, [
        { key: 'w', dtype: 'float32', shape: [1], produce: () => new Float32Array(1) },
        { key: 'w', dtype: 'float32', shape: [1], produce: () => new Float32Array(1) },
      ]),
    ).rejects.toThrow(/tensor key "w" is repeated/);
    expect(readdirSync(d)).toEqual([]);
  });
});

/** float32 → float16 → float32, computed independently of the writer (round to nearest even). */
function half(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  // The binade from the float32 exponent bits (log2 can be off by one next to powers of two).
  const e = Math.max(((new Uint32Array(new Float32Array([v]).buffer)[0] >>> 23) & 0xff) - 127, -14);
  const q = 2 ** (e - 10);
  const r = v / q;
  let k = Math.round(r);
  if (Math.abs(r - Math.trunc(r)) === 0.5 && k % 2 !== 0) k -= Math.sign(r);
  return Math.fround(k * q);
}

async function shard(dir: string, name: string, tensors: Record<string, Float32Array>) {
  await writeSafetensors(
    path.join(dir, name),
    Object.entries(tensors).map(([key, v]) => ({
      key,
      dtype: 'float32' as const,
      shape: [v.length],
      produce: () => v,
    })),
  );
}

function writeIndex(dir: string, name: string, map: Record<string, string>) {
  writeFileSync(path.join(dir, name), JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }));
}

const A = values(5, 10);
const B = values(7, 11);
const C = values(3, 12);

describe('openComponentWeights', () => {
  it('merges a sharded safetensors checkpoint behind one source', async () => {
    const d = folder();
    await shard(d, 'diffusion_pytorch_model-00001-of-00002.safetensors', { 'a.w': A, 'b.w': B });
    await shard(d, 'diffusion_pytorch_model-00002-of-00002.safetensors', { 'c.w': C });
    writeIndex(d, 'diffusion_pytorch_model.safetensors.index.json', {
      'a.w': 'diffusion_pytorch_model-00001-of-00002.safetensors',
      'b.w': 'diffusion_pytorch_model-00001-of-00002.safetensors',
      'c.w': 'diffusion_pytorch_model-00002-of-00002.safetensors',
    });
    const s = await openComponentWeights(d, 'unet/');
    try {
      expect([...s.tensors.keys()]).toEqual(['a.w', 'b.w', 'c.w']);
      expect(s.tensors.get('c.w')!.file).toBe('unet/diffusion_pytorch_model-00002-of-00002.safetensors');
      const all = await readAll(s);
      expect(Array.from(all.get('a.w')!)).toEqual(Array.from(A));
      expect(Array.from(all.get('b.w')!)).toEqual(Array.from(B));
      expect(Array.from(all.get('c.w')!)).toEqual(Array.from(C));
      await expect(s.read('nope')).rejects.toThrow(/no tensor "nope"/);
    } finally {
      await s.close();
    }
  });

  it('merges a sharded .bin checkpoint', async () => {
    const d = folder();
    const st = (v: Float32Array) => ({ '0': storageOf('FloatStorage', v) });
    const bin = (key: string, v: Float32Array) =>
      torchZip(torchPickle([{ key, storage: '0', shape: [v.length] }], st(v)), st(v), {
        archive: 'pytorch_model',
      });
    writeFileSync(path.join(d, 'pytorch_model-00001-of-00002.bin'), bin('x', A));
    writeFileSync(path.join(d, 'pytorch_model-00002-of-00002.bin'), bin('y', B));
    writeIndex(d, 'pytorch_model.bin.index.json', {
      x: 'pytorch_model-00001-of-00002.bin',
      y: 'pytorch_model-00002-of-00002.bin',
    });
    const s = await openComponentWeights(d, 'text_encoder');
    try {
      expect(s.tensors.get('y')!.file).toBe('text_encoder/pytorch_model-00002-of-00002.bin');
      expect(Array.from(await s.read('x'))).toEqual(Array.from(A));
      expect(Array.from(await s.read('y'))).toEqual(Array.from(B));
    } finally {
      await s.close();
    }
  });

  it('prefers safetensors when a folder holds both formats', async () => {
    const d = folder();
    await shard(d, 'model.safetensors', { w: A });
    const st = { '0': storageOf('FloatStorage', B) };
    writeFileSync(
      path.join(d, 'pytorch_model.bin'),
      torchZip(torchPickle([{ key: 'w', storage: '0', shape: [7] }], st), st),
    );
    const s = await openComponentWeights(d);
    try {
      expect(s.tensors.get('w')!.file).toBe(`${d}/model.safetensors`);
      expect(Array.from(await s.read('w'))).toEqual(Array.from(A));
    } finally {
      await s.close();
    }
  });

  it('names the folder and the files looked for when there are no weights', async () => {
    const d = folder();
    writeFileSync(path.join(d, 'config.json'), '{}');
    await expect(openComponentWeights(d, 'vae')).rejects.toThrow(
      'vae: no weights found (looked for model.safetensors, diffusion_pytorch_model.safetensors, *.safetensors.index.json, pytorch_model.bin, diffusion_pytorch_model.bin, *.bin.index.json, variants such as diffusion_pytorch_model.fp16.safetensors)',
    );
  });

  it('opens a variant download (diffusion_pytorch_model.fp16.safetensors) when the plain files are absent', async () => {
    const d = folder();
    await shard(d, 'diffusion_pytorch_model.fp16.safetensors', { w: A });
    const s = await openComponentWeights(d, 'unet/');
    try {
      expect(s.tensors.get('w')!.file).toBe('unet/diffusion_pytorch_model.fp16.safetensors');
      expect(Array.from(await s.read('w'))).toEqual(Array.from(A));
    } finally {
      await s.close();
    }
  });

  it('a key in two shards, a missing shard, and a key not where the index says are errors naming them', async () => {
    const d = folder();
    await shard(d, 'm-1.safetensors', { a: A, dup: B });
    await shard(d, 'm-2.safetensors', { dup: C });
    writeIndex(d, 'model.safetensors.index.json', { a: 'm-1.safetensors', dup: 'm-2.safetensors' });
    await expect(openComponentWeights(d, 'te/')).rejects.toThrow(
      'te/model.safetensors.index.json: tensor "dup" is in two shards: te/m-1.safetensors and te/m-2.safetensors',
    );

    const d2 = folder();
    await shard(d2, 'm-1.safetensors', { a: A });
    writeIndex(d2, 'model.safetensors.index.json', { a: 'm-1.safetensors', b: 'm-2.safetensors' });
    await expect(openComponentWeights(d2, 'te/')).rejects.toThrow(
      'te/model.safetensors.index.json: weight_map names shard file(s) missing from the folder: m-2.safetensors',
    );

    const d3 = folder();
    await shard(d3, 'm-1.safetensors', { a: A });
    await shard(d3, 'm-2.safetensors', { b: B });
    writeIndex(d3, 'model.safetensors.index.json', { a: 'm-2.safetensors', b: 'm-2.safetensors' });
    await expect(openComponentWeights(d3, 'te/')).rejects.toThrow(
      /weight_map puts "a" in m-2\.safetensors, but no shard holds it/,
    );

    const d4 = folder();
    writeIndex(d4, 'model.safetensors.index.json', { a: '../elsewhere.safetensors' });
    await expect(openComponentWeights(d4, 'te/')).rejects.toThrow(
      /weight_map\["a"\] = "\.\.\/elsewhere\.safetensors" is not a file name/,
    );
  });
});

describe('broken safetensors', () => {
  it('truncated files name the file and the tensor', async () => {
    const d = folder();
    const f = path.join(d, 'model.safetensors');
    await shard(d, 'model.safetensors', { first: A, last: B });
    const raw = readFileSync(f);
    writeFileSync(f, raw.subarray(0, raw.length - 4));
    await expect(openComponentWeights(d, 'enc/')).rejects.toThrow(
      /^enc\/model\.safetensors: truncated: tensor "last" ends at byte \d+, the file has \d+/,
    );
    writeFileSync(f, raw.subarray(0, 20));
    await expect(openSafetensors(f, 'cut.safetensors')).rejects.toThrow(
      /^cut\.safetensors: not a safetensors file or truncated/,
    );
    writeFileSync(f, raw.subarray(0, 5));
    await expect(openSafetensors(f, 'tiny.safetensors')).rejects.toThrow(
      /^tiny\.safetensors: truncated safetensors file/,
    );
    expect(existsSync(f)).toBe(true);
  });
});
