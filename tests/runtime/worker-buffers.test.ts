// What a call to the inference worker leaves behind: feeds pass through shared memory reused from
// call to call (the caller's buffers stay intact, the worker makes no copy of its own per call).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WireTensor } from '../../server/runtime/protocol.ts';
import { FeedStaging, SessionPool, type OpenSession } from '../../server/runtime/sessions.ts';
import { makeTestModel } from '../helpers/models.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-worker-buffers-'));
let vaeFile: string;
beforeAll(async () => {
  vaeFile = path.join(await makeTestModel(path.join(tmp, 'tiny')), 'vae_decoder', 'model.onnx');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function latent(n: number, seed: number): WireTensor {
  const data = Float32Array.from({ length: n * 4 * 4 * 4 }, (_, i) => Math.sin(i * 0.37 + seed));
  return { type: 'float32', dims: [n, 4, 4, 4], data };
}

async function withVae(f: (pool: SessionPool, s: OpenSession) => Promise<void>): Promise<void> {
  const pool = new SessionPool();
  try {
    await f(pool, await pool.open(vaeFile, 'cpu'));
  } finally {
    await pool.close();
  }
}

describe('FeedStaging', () => {
  it('copies feeds into shared blocks, reused only once released', () => {
    const staging = new FeedStaging();
    const feed = { x: latent(1, 0) };
    const a = staging.stage(feed);
    expect(a.feeds.x.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Array.from(a.feeds.x.data as Float32Array)).toEqual(Array.from(feed.x.data as Float32Array));
    expect(a.feeds.x.dims).toEqual([1, 4, 4, 4]);
    const b = staging.stage(feed);
    expect(b.feeds.x.data.buffer).not.toBe(a.feeds.x.data.buffer);
    a.release();
    a.release(); // twice is once
    const c = staging.stage({ y: latent(1, 1) });
    expect(c.feeds.y.data.buffer).toBe(a.feeds.x.data.buffer);
    expect(staging.stage({ z: latent(1, 2) }).feeds.z.data.buffer).not.toBe(a.feeds.x.data.buffer);
  });

  it('keeps each element type', () => {
    const staging = new FeedStaging();
    const ids = BigInt64Array.of(1n, 2n, 3n);
    const half = Uint16Array.of(15360, 0);
    const s = staging.stage({
      ids: { type: 'int64', dims: [1, 3], data: ids },
      half: { type: 'float16', dims: [2], data: half },
    });
    expect(s.feeds.ids.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(s.feeds.ids.data as BigInt64Array)).toEqual([1n, 2n, 3n]);
    expect(Array.from(s.feeds.half.data as Uint16Array)).toEqual([15360, 0]);
  });
});

describe('SessionPool.run', () => {
  it('leaves the feeds usable and gives the same results call after call', async () => {
    await withVae(async (pool, s) => {
      const name = s.io.outputs[0].name;
      const x = latent(2, 0);
      const first = (await pool.run(s, { [s.io.inputs[0].name]: x }, [name]))[name];
      expect(x.data.length).toBe(2 * 64); // not moved away
      expect(first.dims).toEqual([2, 3, 32, 32]);
      for (let i = 0; i < 3; i++) {
        const again = (await pool.run(s, { [s.io.inputs[0].name]: x }, [name]))[name];
        expect(Buffer.from(again.data.buffer).equals(Buffer.from(first.data.buffer))).toBe(true);
      }
    });
  });
});
