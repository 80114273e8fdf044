// Shared by the converter tests: the upstream-made checkpoints in ../shared/vectors/models, their
// expected cases, running a built Net through onnxruntime, and the README's tolerance.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { readNpy, type NpyArray } from '../../server/core/npy.ts';
import type { Net } from '../../server/runtime/convert/net.ts';
import { vectorsDir } from '../core/vectors.ts';

export const modelsDir = path.join(vectorsDir, 'models');
export const expectedDir = path.join(modelsDir, 'expected');

export interface CaseTensor {
  file?: string;
  value?: number;
  shape: number[];
  dtype: string;
}

export interface ModelCase {
  name: string;
  component: string;
  inputs: Record<string, CaseTensor>;
  outputs: Record<string, CaseTensor>;
  token_ids?: number[][];
  prompts?: string[];
  scaling_factor?: number;
}

/** The cases of expected/<model>/cases.json. */
export function readCases(model: string): ModelCase[] {
  const doc = JSON.parse(readFileSync(path.join(expectedDir, model, 'cases.json'), 'utf8')) as {
    cases: ModelCase[];
  };
  return doc.cases;
}

/** One case by name. */
export function readCase(model: string, name: string): ModelCase {
  const c = readCases(model).find((x) => x.name === name);
  if (c === undefined) throw new Error(`no case ${name} in ${model}`);
  return c;
}

/** A .npy file of expected/<model>/. */
export function readExpected(model: string, file: string): NpyArray {
  return readNpy(readFileSync(path.join(expectedDir, model, file)));
}

/** A case input as an onnxruntime tensor (file or scalar value) of the given type. */
export function caseTensor(model: string, t: CaseTensor, as?: 'int32' | 'int64' | 'float32'): ort.Tensor {
  const type = as ?? (t.dtype === 'int64' ? 'int64' : t.dtype === 'int32' ? 'int32' : 'float32');
  let values: number[] | Float32Array;
  if (t.file !== undefined) {
    const a = readExpected(model, t.file);
    values =
      a.data instanceof Float32Array ? a.data : Array.from(a.data as ArrayLike<number | bigint>, Number);
  } else {
    values = new Array<number>(t.shape.reduce((p, d) => p * d, 1)).fill(t.value ?? 0);
  }
  if (type === 'int64')
    return new ort.Tensor(
      'int64',
      BigInt64Array.from(values, (v) => BigInt(v)),
      t.shape,
    );
  if (type === 'int32') return new ort.Tensor('int32', Int32Array.from(values), t.shape);
  return new ort.Tensor('float32', Float32Array.from(values), t.shape);
}

/** Writes a built Net to a temp folder (weights streamed) and opens it; `dispose` removes the folder. */
export async function openNet(
  net: Net,
  opts: ort.InferenceSession.SessionOptions = {},
): Promise<{ session: ort.InferenceSession; file: string; dispose: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rdflow-net-'));
  const file = path.join(dir, 'model.onnx');
  await net.b.saveStreaming(file, { externalData: 'model.onnx_data' });
  const session = await ort.InferenceSession.create(file, opts);
  return {
    session,
    file,
    dispose: async () => {
      await session.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** max |a - b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** The README's float32 bar: max |got - expected| ≤ 1e-3 · max(1, max |expected|). */
export function float32Bar(expected: ArrayLike<number>): number {
  return 1e-3 * Math.max(1, maxAbs(expected));
}
