// Net.param guards that keep a conversion from writing a silently wrong weight: a float32 value
// float16 cannot hold, and a transpose of a shape it does not apply to.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Net } from '../../server/runtime/convert/net.ts';
import type { TensorInfo, WeightSource } from '../../server/runtime/weights/types.ts';

const work = mkdtempSync(path.join(tmpdir(), 'rdflow-net-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** An in-memory checkpoint of float32 tensors. */
function source(tensors: Record<string, { shape: number[]; data: Float32Array }>): WeightSource {
  const infos = new Map<string, TensorInfo>(
    Object.entries(tensors).map(([key, t]) => [
      key,
      { key, dtype: 'float32', shape: t.shape, file: 'w.safetensors' },
    ]),
  );
  return {
    tensors: infos,
    read: (key) => Promise.resolve(tensors[key].data.slice()),
    close: () => Promise.resolve(),
  };
}

describe('Net.param', () => {
  it('float16 output: a weight beyond float16 range is named with file, key and value instead of becoming inf', async () => {
    const data = new Float32Array(512).fill(0.5);
    data[300] = 70000;
    const net = new Net(source({ big: { shape: [512], data } }), { name: 't', dtype: 'float16' });
    net.b.output(net.op('Identity', [net.param('big', [512])]), 'float32', [512]);
    await expect(
      net.b.saveStreaming(path.join(work, 'a', 'model.onnx'), { externalData: 'model.onnx_data' }),
    ).rejects.toThrow(
      'w.safetensors: weight "big" holds 70000 (element 300), beyond float16\'s range (±65504): convert with --dtype float32',
    );
    // 65504 itself, and values that round down to it, are fine.
    data[300] = 65519;
    const ok = new Net(source({ big: { shape: [512], data } }), { name: 't', dtype: 'float16' });
    ok.b.output(ok.op('Identity', [ok.param('big', [512])]), 'float32', [512]);
    await ok.b.saveStreaming(path.join(work, 'b', 'model.onnx'), { externalData: 'model.onnx_data' });
  });

  it('refuses to transpose a weight that is not 2-D or [out, in, 1, 1]', () => {
    const net = new Net(source({ w: { shape: [2, 3, 3, 3], data: new Float32Array(54) } }), { name: 't' });
    expect(() => net.param('w', [2, 3, 3, 3], { transpose: true })).toThrow(
      'weight "w": cannot store [2, 3, 3, 3] transposed (2-D or [out, in, 1, 1] only)',
    );
  });
});
