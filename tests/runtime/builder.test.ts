// The ONNX builder writes models onnxruntime loads and runs with the values the graph defines.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelBuilder, attr, tensorValue } from '../../server/runtime/onnx/builder.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-builder-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** y = x·W + b with W [3,2], b [2]; a symbolic batch axis. */
function affine(): ModelBuilder {
  const b = new ModelBuilder({ name: 'affine' });
  b.input('x', 'float32', ['batch', 3]);
  b.initializer('w', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  b.initializer('b', new Float32Array([0.5, -1]));
  const xw = b.op('MatMul', ['x', 'w']);
  b.node('Add', [xw, 'b'], ['y']);
  b.output('y', 'float32', ['batch', 2]);
  return b;
}

describe('ModelBuilder', () => {
  it('builds MatMul + Add that onnxruntime runs: y = x·W + b', async () => {
    const session = await ort.InferenceSession.create(affine().toBytes());
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);
    const meta = session.inputMetadata[0];
    expect(meta.isTensor && meta.shape).toEqual(['batch', 3]);
    const x = new ort.Tensor('float32', new Float32Array([1, 0, 0, 1, 1, 1]), [2, 3]);
    const { y } = await session.run({ x });
    expect(y.dims).toEqual([2, 2]);
    // row 0 = W[0] + b, row 1 = W[0]+W[1]+W[2] + b
    expect(Array.from(y.data as Float32Array)).toEqual([1.5, 1, 9.5, 11]);
    await session.release();
  });

  it('writes float16, int64 and int32 initializers and INT/FLOAT/INTS/TENSOR attributes', async () => {
    const b = new ModelBuilder();
    b.input('ids', 'int32', [1, 'len']);
    // 1.0, 2.0, -0.5, 0.25 as float16 bits
    b.initializer('h', new Uint16Array([0x3c00, 0x4000, 0xb800, 0x3400]), [4]);
    b.initializer('shape', new BigInt64Array([2n, 2n]));
    const hf = b.op('Cast', ['h'], { to: 1 });
    const h2 = b.op('Reshape', [hf, 'shape']);
    const lrelu = b.op('LeakyRelu', [h2], { alpha: attr.float(2) });
    b.node('Transpose', [lrelu], ['t'], { perm: [1, 0] });
    b.node('Constant', [], ['c'], { value: tensorValue(new Float32Array([0.5]), [1]) });
    b.node('Mul', ['t', 'c'], ['out']);
    b.output('out', 'float32', [2, 2]);
    const ids64 = b.op('Cast', ['ids'], { to: 7 });
    b.node('Identity', [ids64], ['ids_out']);
    b.output('ids_out', 'int64', [1, 'len']);
    const session = await ort.InferenceSession.create(b.toBytes());
    const res = await session.run({ ids: new ort.Tensor('int32', new Int32Array([7, 9]), [1, 2]) });
    // [[1,2],[-1,0.25]] (leaky: -0.5·2) transposed, halved
    expect(Array.from(res.out.data as Float32Array)).toEqual([0.5, -0.5, 1, 0.125]);
    expect(res.ids_out.type).toBe('int64');
    expect(Array.from(res.ids_out.data as BigInt64Array)).toEqual([7n, 9n]);
    await session.release();
  });

  it('saves weights to an external data file that loads when the model is opened by path', async () => {
    const file = path.join(tmp, 'ext', 'model.onnx');
    await affine().save(file, { externalData: 'model.onnx_data', externalThreshold: 16 });
    const session = await ort.InferenceSession.create(file);
    const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array([0, 0, 1]), [1, 3]) });
    expect(Array.from(y.data as Float32Array)).toEqual([5.5, 5]);
    await session.release();
  });

  it('refuses a value name used twice', () => {
    const b = new ModelBuilder();
    b.input('x', 'float32', [1]);
    expect(() => b.initializer('x', new Float32Array([1]))).toThrow(/"x" is already used/);
  });
});
