// PyTorch zip checkpoints: the upstream-made tiny models (against their safetensors twins and the
// README's counts), then hand-made archives for views, shared storages, wrappers, zip64, refused
// globals and broken files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  openComponentWeights,
  openTorchCheckpoint,
  numel,
  type WeightSource,
} from '../../server/runtime/weights/index.ts';
import { modelsDir } from '../helpers/convert.ts';
import { Pickle, storageOf, torchPickle, torchZip, type StorageSpec, type TensorSpec } from './fixtures.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'rdflow-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function file(bytes: Uint8Array, name = `t${n++}.pth`): string {
  const f = path.join(tmp, name);
  writeFileSync(f, bytes);
  return f;
}

async function withSource<T>(src: Promise<WeightSource>, fn: (s: WeightSource) => Promise<T>): Promise<T> {
  const s = await src;
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Float count of the non-buffer tensors (the README's parameter counts exclude position_ids). */
function params(s: WeightSource, prefix = ''): { keys: number; params: number } {
  let keys = 0;
  let total = 0;
  for (const t of s.tensors.values()) {
    if (!t.key.startsWith(prefix) || t.key.endsWith('position_ids')) continue;
    keys++;
    total += numel(t.shape);
  }
  return { keys, params: total };
}

describe('upstream checkpoints', () => {
  for (const part of ['text_encoder', 'unet', 'vae']) {
    it(`modelscope-tiny ${part}: .bin equals .safetensors bit for bit, every key`, async () => {
      const st = await openComponentWeights(path.join(modelsDir, 'modelscope-tiny', part), `${part}/`);
      const pt = await openComponentWeights(path.join(modelsDir, 'modelscope-tiny-bin', part), `${part}/`);
      try {
        expect(st.tensors.size).toBeGreaterThan(30);
        expect([...pt.tensors.keys()].sort()).toEqual([...st.tensors.keys()].sort());
        expect(pt.tensors.values().next().value!.file).toMatch(new RegExp(`^${part}/.*\\.bin$`));
        for (const [k, info] of st.tensors) {
          expect(pt.tensors.get(k)!.shape).toEqual(info.shape);
          expect(pt.tensors.get(k)!.dtype).toBe(info.dtype);
          const [a, b] = [await st.read(k), await pt.read(k)];
          expect(a.length).toBe(numel(info.shape));
          if (!bits(a).equals(bits(b)))
            throw new Error(`${part}: ${k} differs between .bin and .safetensors`);
        }
      } finally {
        await st.close();
        await pt.close();
      }
    });
  }

  it('vidrd-tiny ModelT2V.pth: the state_dict wrapper, 732 unet. and 37 text_encoder. keys', async () => {
    await withSource(openTorchCheckpoint(path.join(modelsDir, 'vidrd-tiny', 'ModelT2V.pth')), async (s) => {
      const keys = [...s.tensors.keys()];
      expect(keys.length).toBe(732 + 37);
      expect(keys.filter((k) => k.startsWith('unet.')).length).toBe(732);
      expect(keys.filter((k) => k.startsWith('text_encoder.')).length).toBe(37);
      // README: video UNet 939,364 parameters, text encoder 46,304 (position_ids is a buffer).
      expect(params(s, 'unet.')).toEqual({ keys: 732, params: 939_364 });
      expect(params(s, 'text_encoder.')).toEqual({ keys: 36, params: 46_304 });
      const pos = s.tensors.get('text_encoder.text_model.embeddings.position_ids')!;
      expect(pos.dtype).toBe('int64');
      expect(pos.shape).toEqual([1, 77]);
      expect(Array.from(await s.read(pos.key))).toEqual(Array.from({ length: 77 }, (_, i) => i));
      const w = await s.read('unet.conv_in.weight');
      expect(s.tensors.get('unet.conv_in.weight')!.shape).toEqual([32, 4, 3, 3]);
      expect(w.length).toBe(32 * 4 * 9);
      expect(w.some((v) => v !== 0)).toBe(true);
    });
  });

  it('vidrd-tiny vae_finetuned and the stable-diffusion-2-1-base components open with the README counts', async () => {
    const sd = path.join(modelsDir, 'vidrd-tiny', 'stable-diffusion-2-1-base');
    const cases: [string, number][] = [
      [path.join(modelsDir, 'vidrd-tiny', 'vae_finetuned'), 443_559],
      [path.join(sd, 'unet'), 720_036],
      [path.join(sd, 'text_encoder'), 46_304],
      [path.join(sd, 'vae'), -1],
    ];
    for (const [dir, count] of cases) {
      await withSource(openComponentWeights(dir), async (s) => {
        if (count > 0) expect(params(s).params).toBe(count);
        const name = dir.endsWith('text_encoder') ? 'pytorch_model.bin' : 'diffusion_pytorch_model.bin';
        for (const t of s.tensors.values()) expect(t.file).toBe(`${dir}/${name}`);
        const last = [...s.tensors.keys()].at(-1)!;
        expect((await s.read(last)).length).toBe(numel(s.tensors.get(last)!.shape));
      });
    }
    await withSource(openComponentWeights(path.join(sd, 'text_encoder')), async (s) => {
      expect(s.tensors.get('text_model.embeddings.position_ids')).toMatchObject({
        dtype: 'int64',
        shape: [1, 77],
      });
    });
  });
});

// A storage of 24 distinct floats that the views below slice.
const base = Float32Array.from({ length: 24 }, (_, i) => i * 1.5 - 7);
const S: Record<string, StorageSpec> = { '0': storageOf('FloatStorage', base) };

async function open(
  tensors: TensorSpec[],
  storages = S,
  opts: Parameters<typeof torchPickle>[2] = {},
  zipOpts = {},
) {
  return openTorchCheckpoint(
    file(torchZip(torchPickle(tensors, storages, opts), storages, zipOpts)),
    'crafted.pth',
  );
}

describe('crafted checkpoints', () => {
  it('reads strided views (transpose, offset, step) by gathering, and storages shared between tensors', async () => {
    const tensors: TensorSpec[] = [
      { key: 'whole', storage: '0', shape: [4, 6] },
      { key: 'transposed', storage: '0', shape: [6, 4], stride: [1, 6] },
      { key: 'offset_rows', storage: '0', offset: 6, shape: [2, 6] },
      { key: 'every_other', storage: '0', offset: 1, shape: [2, 3], stride: [12, 2] },
      { key: 'broadcast', storage: '0', offset: 5, shape: [3, 2], stride: [0, 1] },
      { key: 'scalar', storage: '0', offset: 23, shape: [] },
      { key: 'param', storage: '0', offset: 2, shape: [2, 2], stride: [4, 1], parameter: true },
      { key: 'param_state', storage: '0', offset: 20, shape: [4], parameter: 'with_state' },
    ];
    await withSource(open(tensors), async (s) => {
      expect([...s.tensors.keys()]).toEqual(tensors.map((t) => t.key));
      expect(Array.from(await s.read('whole'))).toEqual(Array.from(base));
      const tr = await s.read('transposed');
      for (let i = 0; i < 6; i++) for (let j = 0; j < 4; j++) expect(tr[i * 4 + j]).toBe(base[j * 6 + i]);
      expect(Array.from(await s.read('offset_rows'))).toEqual(Array.from(base.subarray(6, 18)));
      expect(Array.from(await s.read('every_other'))).toEqual([1, 3, 5, 13, 15, 17].map((i) => base[i]));
      expect(Array.from(await s.read('broadcast'))).toEqual([5, 6, 5, 6, 5, 6].map((i) => base[i]));
      expect(Array.from(await s.read('scalar'))).toEqual([base[23]]);
      expect(Array.from(await s.read('param'))).toEqual([2, 3, 6, 7].map((i) => base[i]));
      expect(Array.from(await s.read('param_state'))).toEqual(Array.from(base.subarray(20)));
      expect(s.tensors.get('transposed')).toEqual({
        key: 'transposed',
        dtype: 'float32',
        shape: [6, 4],
        file: 'crafted.pth',
      });
    });
  });

  it('decodes every storage type, including int64 buffers listed as int64', async () => {
    const half = Uint16Array.from([0x3c00, 0xc000, 0x3555]); // 1, -2, 0.33325195
    const bf = Uint16Array.from([0x3f80, 0xc040, 0x4049]); // 1, -3, 3.140625
    const storages: Record<string, StorageSpec> = {
      f16: storageOf('HalfStorage', half),
      bf16: storageOf('BFloat16Storage', bf),
      f64: storageOf('DoubleStorage', Float64Array.from([0.25, -1e10])),
      i64: storageOf('LongStorage', BigInt64Array.from([0n, 1n, -5n, 76n])),
      i32: storageOf('IntStorage', Int32Array.from([7, -8])),
      i16: storageOf('ShortStorage', Int16Array.from([-300, 300])),
      i8: storageOf('CharStorage', Int8Array.from([-1, 2])),
      u8: storageOf('ByteStorage', Uint8Array.from([255, 0])),
      b: storageOf('BoolStorage', Uint8Array.from([1, 0, 1])),
    };
    const tensors = Object.entries(storages).map(([k, st]) => ({ key: k, storage: k, shape: [st.numel] }));
    await withSource(open(tensors, storages), async (s) => {
      const want: Record<string, number[]> = {
        f16: [1, -2, 0.333251953125],
        bf16: [1, -3, 3.140625],
        f64: [0.25, Math.fround(-1e10)],
        i64: [0, 1, -5, 76],
        i32: [7, -8],
        i16: [-300, 300],
        i8: [-1, 2],
        u8: [255, 0],
        b: [1, 0, 1],
      };
      for (const [k, v] of Object.entries(want)) expect(Array.from(await s.read(k)), k).toEqual(v);
      expect(s.tensors.get('i64')!.dtype).toBe('int64');
      expect(s.tensors.get('bf16')!.dtype).toBe('bfloat16');
    });
  });

  it('unwraps {"state_dict"}, {"model"}, {"module"} when the top level has no tensors, skipping non-tensors', async () => {
    const t: TensorSpec[] = [{ key: 'w', storage: '0', shape: [24] }];
    for (const wrap of ['state_dict', 'model', 'module']) {
      await withSource(
        open(t, S, { wrap, extras: [{ key: 'epoch', int: 7 }], orderedDict: true }),
        async (s) => {
          expect([...s.tensors.keys()]).toEqual(['w']);
          expect(Array.from(await s.read('w'))).toEqual(Array.from(base));
        },
      );
    }
    // Tensors at the top level win: the dict beside them is not a state dict to pick.
    await withSource(
      open([{ key: 'top', storage: '0', shape: [2] }], S, {
        extras: [
          { key: 'step', int: 1 },
          { key: 'state_dict', tensors: t },
        ],
      }),
      async (s) => expect([...s.tensors.keys()]).toEqual(['top']),
    );
    await expect(open([], S, { extras: [{ key: 'epoch', int: 1 }] })).rejects.toThrow(
      /crafted\.pth: no tensors at the top level and no "state_dict"\/"model"\/"module" dict inside \(keys: "epoch"\)/,
    );
  });

  it('reads zip64 archives and a deflated data.pkl', async () => {
    const t: TensorSpec[] = [{ key: 'w', storage: '0', offset: 4, shape: [2, 2], stride: [1, 2] }];
    await withSource(open(t, S, {}, { zip64: true, deflatePickle: true }), async (s) => {
      expect(Array.from(await s.read('w'))).toEqual([4, 6, 5, 7].map((i) => base[i]));
    });
  });

  it('reads a protocol-4 pickle (FRAME, MEMOIZE, STACK_GLOBAL)', async () => {
    const q = new Pickle().proto(4).frame(0).emptyDict().raw(0x94).str('w');
    q.stackGlobal('torch._utils', '_rebuild_tensor_v2').raw(0x94);
    q.mark();
    q.mark()
      .str('storage')
      .stackGlobal('torch', 'FloatStorage')
      .str('0')
      .str('cpu')
      .int(24)
      .tuple()
      .binpersid();
    q.int(0).int(24).raw(0x85).int(1).raw(0x85).bool(false);
    q.stackGlobal('collections', 'OrderedDict').emptyTuple().reduce();
    q.tuple().reduce().raw(0x94).setitem().stop();
    const f = file(torchZip(q.bytes(), S));
    await withSource(openTorchCheckpoint(f, 'p4.pth'), async (s) => {
      expect(Array.from(await s.read('w'))).toEqual(Array.from(base));
    });
  });
});

describe('refused globals: loading never runs code', () => {
  const zipWith = (pkl: Uint8Array) => file(torchZip(pkl, S));
  const cases: [string, Uint8Array, RegExp][] = [
    [
      'os.system via GLOBAL',
      new Pickle().proto(2).global('posix', 'system').ustr('touch /tmp/x').raw(0x85).reduce().stop().bytes(),
      /forbidden global posix\.system/,
    ],
    [
      'os.system via STACK_GLOBAL',
      new Pickle().proto(4).stackGlobal('os', 'system').str('id').raw(0x85).reduce().stop().bytes(),
      /forbidden global os\.system/,
    ],
    [
      'builtins.eval',
      new Pickle().proto(2).global('builtins', 'eval').ustr('1+1').raw(0x85).reduce().stop().bytes(),
      /forbidden global builtins\.eval/,
    ],
    [
      'a REDUCE of an allowed-looking name (torch._utils + os.system)',
      new Pickle()
        .proto(4)
        .stackGlobal('torch._utils', 'os.system')
        .str('id')
        .raw(0x85)
        .reduce()
        .stop()
        .bytes(),
      /forbidden global torch\._utils\.os\.system/,
    ],
    [
      'a look-alike rebuild function',
      new Pickle()
        .proto(2)
        .global('torch._utils', '_rebuild_device_tensor_from_numpy')
        .emptyTuple()
        .reduce()
        .stop()
        .bytes(),
      /forbidden global torch\._utils\._rebuild_device_tensor_from_numpy/,
    ],
    [
      'INST of subprocess.Popen',
      new Pickle()
        .proto(0)
        .mark()
        .ustr('ls')
        .raw(0x69, ...Buffer.from('subprocess\nPopen\n'))
        .stop()
        .bytes(),
      /forbidden global subprocess\.Popen/,
    ],
    [
      'REDUCE of an allowed non-callable (a storage type)',
      new Pickle().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes(),
      /REDUCE of torch\.FloatStorage, which is not callable/,
    ],
    [
      'a global nested inside a state dict',
      new Pickle()
        .proto(2)
        .emptyDict()
        .ustr('w')
        .global('nt', 'system')
        .ustr('x')
        .raw(0x85)
        .reduce()
        .setitem()
        .stop()
        .bytes(),
      /forbidden global nt\.system/,
    ],
    [
      'an extension-registry global',
      new Pickle().proto(2).raw(0x82, 1).stop().bytes(),
      /refuses extension-registry global/,
    ],
  ];
  for (const [what, pkl, re] of cases) {
    it(`refuses ${what}, naming the file and the global`, async () => {
      const err = await openTorchCheckpoint(zipWith(pkl), 'evil.pth').then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/^evil\.pth: archive\/data\.pkl: /);
      expect(err?.message).toMatch(re);
    });
  }

  it('refuses BUILD on anything but a dict or tensor', async () => {
    const pkl = new Pickle().proto(2).ustr('s').emptyDict().build().stop().bytes();
    await expect(openTorchCheckpoint(zipWith(pkl), 'evil.pth')).rejects.toThrow(
      /BUILD on string .* is not allowed/,
    );
  });
});

describe('broken files', () => {
  const good = () => torchZip(torchPickle([{ key: 'w', storage: '0', shape: [24] }], S), S);

  it('truncated zip: names the file and the reason', async () => {
    const z = good();
    await expect(openTorchCheckpoint(file(z.subarray(0, z.length - 30)), 'cut.pth')).rejects.toThrow(
      /^cut\.pth: truncated or not a zip file \(no end-of-central-directory record/,
    );
  });

  it('zip without data.pkl', async () => {
    const z = torchZip(new Uint8Array(), S, { omitPickle: true });
    await expect(openTorchCheckpoint(file(z), 'nopkl.pth')).rejects.toThrow(
      /^nopkl\.pth: no <archive>\/data\.pkl in the zip: not a torch\.save checkpoint/,
    );
  });

  it('a storage file shorter than the tensor needs names the key and the storage entry', async () => {
    const short = { '0': { ...S['0'], data: S['0'].data.subarray(0, 40) } };
    const z = torchZip(torchPickle([{ key: 'w', storage: '0', shape: [4, 6] }], short), short);
    await expect(openTorchCheckpoint(file(z), 'short.pth')).rejects.toThrow(
      /^short\.pth: tensor "w": storage file shorter than the tensor needs \("archive\/data\/0" holds 40 bytes .* needs 96\)/,
    );
    // A view past the storage's declared numel is refused the same way.
    const z2 = torchZip(torchPickle([{ key: 'v', storage: '0', offset: 20, shape: [5] }], S), S);
    await expect(openTorchCheckpoint(file(z2), 'past.pth')).rejects.toThrow(
      /tensor "v": storage file shorter/,
    );
  });

  it('a missing storage entry names the key', async () => {
    const z = torchZip(torchPickle([{ key: 'w', storage: '0', shape: [24] }], S), {});
    await expect(openTorchCheckpoint(file(z), 'nostore.pth')).rejects.toThrow(
      /^nostore\.pth: tensor "w": its storage entry "archive\/data\/0" is missing/,
    );
  });

  it('legacy (non-zip) torch.save format gets the re-save advice', async () => {
    // What _use_new_zipfile_serialization=False writes first: a pickled magic number (protocol 2 LONG1).
    const legacy = Uint8Array.from([
      0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ]);
    await expect(openTorchCheckpoint(file(legacy), 'old.bin')).rejects.toThrow(
      'old.bin: legacy PyTorch format (saved with _use_new_zipfile_serialization=False); re-save it with a current torch.save',
    );
    await expect(openTorchCheckpoint(file(Buffer.from('hello world')), 'txt.bin')).rejects.toThrow(
      /^txt\.bin: not a PyTorch zip checkpoint/,
    );
  });

  it('a missing file names it', async () => {
    await expect(openTorchCheckpoint(path.join(tmp, 'nope.pth'))).rejects.toThrow(
      /^nope\.pth: cannot be opened \(ENOENT\)/,
    );
  });
});
