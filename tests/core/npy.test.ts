import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16 } from '../../server/core/half.ts';
import { npyToTensor, readNpy, writeNpy } from '../../server/core/npy.ts';
import { tensor } from '../../server/core/tensor.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';

function python(script: string, prelude = ''): string | undefined {
  try {
    return execFileSync('python3', ['-c', prelude + script], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch {
    return undefined;
  }
}
const hasNumpy = python('import numpy') !== undefined;
if (!hasNumpy) console.warn('tests/core/npy: python3 with numpy not found; skipping the NumPy interop tests');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-npy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('.npy write then read', () => {
  it('round-trips float32 exactly, shape and values', () => {
    const t = torchRandn([1, 4, 3, 5, 2], 1);
    const back = npyToTensor(writeNpy(t));
    expect(back.shape).toEqual([1, 4, 3, 5, 2]);
    expect(back.data).toEqual(t.data);
  });

  it('round-trips float16 as the rounded halves', () => {
    const t = torchRandn([2, 17], 3);
    const a = readNpy(writeNpy(t, 'float16'));
    expect(a.dtype).toBe('float16');
    expect([...(a.data as Uint16Array)]).toEqual([...float32ToFloat16(t.data)]);
    expect(npyToTensor(writeNpy(t, 'float16')).data).toEqual(float16ToFloat32(float32ToFloat16(t.data)));
  });

  it('aligns the data to 64 bytes with a newline-terminated header, like np.save', () => {
    for (const shape of [[], [3], [1, 4, 8, 32, 32], [123456789012, 0]]) {
      const bytes = writeNpy(tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
      const headerLen = bytes[8] | (bytes[9] << 8);
      expect((10 + headerLen) % 64).toBe(0);
      expect(bytes[10 + headerLen - 1]).toBe(0x0a);
    }
  });

  it('reads version 2 and 3 headers, big-endian and integer dtypes', () => {
    const header = "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }";
    const hb = new TextEncoder().encode(header + ' '.repeat(64 - ((12 + header.length + 1) % 64)) + '\n');
    for (const version of [2, 3]) {
      const bytes = new Uint8Array(12 + hb.length + 16);
      bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0], 0);
      new DataView(bytes.buffer).setUint32(8, hb.length, true);
      bytes.set(hb, 12);
      const dv = new DataView(bytes.buffer, 12 + hb.length);
      dv.setBigInt64(0, -5n, false);
      dv.setBigInt64(8, 2n ** 40n, false);
      const a = readNpy(bytes);
      expect(a.dtype).toBe('int64');
      expect([...(a.data as BigInt64Array)]).toEqual([-5n, 2n ** 40n]);
      expect([...npyToTensor(bytes).data]).toEqual([-5, 2 ** 40]);
    }
  });

  it('rejects Fortran order and unknown data clearly', () => {
    const bytes = writeNpy(tensor(Float32Array.from([1, 2]), [2]));
    const text = new TextDecoder('latin1')
      .decode(bytes)
      .replace("'fortran_order': False", "'fortran_order': True ");
    const fortran = Uint8Array.from(text, (ch) => ch.charCodeAt(0));
    expect(() => readNpy(fortran)).toThrow(/Fortran order/);
    expect(() => readNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toThrow(/magic/);
    const complex = Uint8Array.from(new TextDecoder('latin1').decode(bytes).replace('<f4', '<c8'), (ch) =>
      ch.charCodeAt(0),
    );
    expect(() => readNpy(complex)).toThrow(/dtype "<c8" is not supported/);
    expect(() => readNpy(bytes.subarray(0, bytes.length - 1))).toThrow(/data bytes/);
  });
});

describe.skipIf(!hasNumpy)('NumPy interop (python3 + numpy)', () => {
  it('a file we write is byte-identical to np.save of the same array and np.load reads it', () => {
    const t = torchRandn([1, 4, 2, 3, 5], 42);
    const f32 = path.join(tmp, 'ours-f32.npy');
    const again = path.join(tmp, 'numpy-f32.npy');
    writeFileSync(f32, writeNpy(t));
    const out = python(
      `import numpy as np; a = np.load(${JSON.stringify(f32)}); np.save(${JSON.stringify(again)}, a); print(a.dtype, a.shape, a.ravel()[7].item() == ${t.data[7]})`,
    );
    expect(out?.trim()).toBe('float32 (1, 4, 2, 3, 5) True');
    expect(Buffer.from(readFileSync(f32)).equals(readFileSync(again))).toBe(true);
  });

  it('float16 files equal NumPy’s astype(float16), rounding edge cases included', () => {
    const edges = [
      0,
      -0,
      1,
      65504,
      65519,
      65520,
      1e10,
      -Infinity,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -25,
      1 + 2 ** -11,
      1e-10,
    ];
    const t = tensor(Float32Array.from([...edges, ...torchRandn([200], 5).data.map((v) => v * 1000)]), [213]);
    const f32 = path.join(tmp, 'edges-f32.npy');
    const theirs = path.join(tmp, 'numpy-f16.npy');
    writeFileSync(f32, writeNpy(t));
    python(
      `import numpy as np; np.save(${JSON.stringify(theirs)}, np.load(${JSON.stringify(f32)}).astype(np.float16))`,
    );
    expect(Buffer.from(writeNpy(t, 'float16')).equals(readFileSync(theirs))).toBe(true);
  });

  it('reads what NumPy writes: float64, int32, int64, uint8, bool, float16 (0-d and 1-d too)', () => {
    const file = (name: string): string => path.join(tmp, `${name}.npy`);
    python(
      [
        'import numpy as np',
        `np.save(${JSON.stringify(file('f8'))}, np.array([[1.5, -2.25, 3e-300]], dtype=np.float64))`,
        `np.save(${JSON.stringify(file('i4'))}, np.arange(-3, 3, dtype=np.int32).reshape(2, 3))`,
        `np.save(${JSON.stringify(file('i8'))}, np.array([-7, 2**40], dtype=np.int64))`,
        `np.save(${JSON.stringify(file('u1'))}, np.array([0, 255], dtype=np.uint8))`,
        `np.save(${JSON.stringify(file('b1'))}, np.array([True, False, True]))`,
        `np.save(${JSON.stringify(file('f2'))}, np.array(np.float16(65504)))`,
      ].join('\n'),
    );
    const f8 = readNpy(readFileSync(file('f8')));
    expect(f8.dtype).toBe('float64');
    expect(f8.shape).toEqual([1, 3]);
    expect([...(f8.data as Float64Array)]).toEqual([1.5, -2.25, 3e-300]);
    const i4 = npyToTensor(readFileSync(file('i4')));
    expect(i4.shape).toEqual([2, 3]);
    expect([...i4.data]).toEqual([-3, -2, -1, 0, 1, 2]);
    expect([...(readNpy(readFileSync(file('i8'))).data as BigInt64Array)]).toEqual([-7n, 2n ** 40n]);
    expect([...npyToTensor(readFileSync(file('u1'))).data]).toEqual([0, 255]);
    const b1 = readNpy(readFileSync(file('b1')));
    expect(b1.dtype).toBe('bool');
    expect([...b1.data]).toEqual([1, 0, 1]);
    const f2 = npyToTensor(readFileSync(file('f2')));
    expect(f2.shape).toEqual([]);
    expect([...f2.data]).toEqual([65504]);
  });

  it('reads a Fortran-ordered array from NumPy with a clear refusal', () => {
    const f = path.join(tmp, 'fortran.npy');
    python(
      `import numpy as np; np.save(${JSON.stringify(f)}, np.asfortranarray(np.ones((2, 3), np.float32)))`,
    );
    expect(() => readNpy(readFileSync(f))).toThrow(/Fortran order.*np\.ascontiguousarray/);
  });
});
