// Sessions live in a worker thread: created once per model file and provider, reused by later
// loads, dropped by release(); the main thread keeps running while a UNet call is in progress.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { createRuntime } from '../../server/runtime/index.ts';
import { makeTestModel } from '../helpers/models.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-sessions-'));
let tiny: string;
let slow: string;
beforeAll(async () => {
  tiny = await makeTestModel(path.join(tmp, 'tiny'));
  slow = await makeTestModel(path.join(tmp, 'slow'), 'slow');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('session reuse', () => {
  it('creates three sessions on the first load and none on the second', async () => {
    const rt = createRuntime();
    try {
      expect(rt.stats()).toEqual({ sessionsCreated: 0, sessionsOpen: 0 });
      const a = await rt.loadModel(tiny);
      expect(rt.stats()).toEqual({ sessionsCreated: 3, sessionsOpen: 3 });
      const b = await rt.loadModel(tiny);
      await b.textEncoder.encode('a cat');
      expect(rt.stats()).toEqual({ sessionsCreated: 3, sessionsOpen: 3 });
      expect(b.unet.dynamicBatch).toBe(a.unet.dynamicBatch);
    } finally {
      await rt.close();
    }
  });

  it('release() drops every session; a loaded model re-creates only what it uses', async () => {
    const rt = createRuntime();
    try {
      const m = await rt.loadModel(tiny);
      const cond = await m.textEncoder.encode('a dog');
      const z = torchRandn([1, 4, 2, 8, 8], 1);
      const before = await m.unet.predict(z, 1, cond);
      await rt.release();
      expect(rt.stats()).toEqual({ sessionsCreated: 3, sessionsOpen: 0 });
      const after = await m.unet.predict(z, 1, cond);
      expect(rt.stats()).toEqual({ sessionsCreated: 4, sessionsOpen: 1 });
      expect(after.data).toEqual(before.data);
    } finally {
      await rt.close();
    }
  });
  it('re-creates the sessions of a folder whose files changed, closing the old ones', async () => {
    const rt = createRuntime();
    try {
      const dir = await makeTestModel(path.join(tmp, 'changing'), { seed: 1 });
      const a = await rt.loadModel(dir);
      const ea = await a.textEncoder.encode('a cat');
      expect(await rt.loadModel(dir)).toBe(a);
      await new Promise((r) => setTimeout(r, 20)); // a later mtime
      await makeTestModel(dir, { seed: 2 });
      const b = await rt.loadModel(dir);
      expect(b).not.toBe(a);
      expect(rt.stats()).toEqual({ sessionsCreated: 6, sessionsOpen: 3 });
      expect((await b.textEncoder.encode('a cat')).data).not.toEqual(ea.data);
    } finally {
      await rt.close();
    }
  });

  it('under memory pressure closes least recently used sessions and re-creates them on use', async () => {
    const rt = createRuntime({ freeMemory: () => 0 });
    try {
      const m = await rt.loadModel(tiny);
      expect(rt.stats()).toEqual({ sessionsCreated: 3, sessionsOpen: 1 });
      const cond = await m.textEncoder.encode('a dog');
      const eps = await m.unet.predict(torchRandn([1, 4, 2, 8, 8], 1), 1, cond);
      const images = await m.vae.decode(eps, 2);
      expect(images.shape).toEqual([2, 64, 64, 3]);
      expect(rt.stats()).toEqual({ sessionsCreated: 6, sessionsOpen: 1 });
    } finally {
      await rt.close();
    }
  });
});

// The CUDA provider's libraries are an optional download; where they are installed this machine
// has a real choice and the fallback below does not happen.
const ortDir = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
const cudaInstalled = existsSync(
  path.join(ortDir, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'),
);

describe.skipIf(cudaInstalled)('execution providers', () => {
  it('falls back to cpu with a warning that says how to enable cuda', async () => {
    const rt = createRuntime();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const m = await rt.loadModel(tiny, { provider: 'cuda' });
      expect((await m.textEncoder.encode('a')).shape[0]).toBe(1);
      expect(rt.warnings).toHaveLength(1);
      expect(rt.warnings[0]).toMatch(/execution provider "cuda" could not be loaded/);
      expect(rt.warnings[0]).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node');
      expect(rt.warnings[0]).toContain('Running on cpu instead');
      expect(warn).toHaveBeenCalledTimes(1); // once per provider, not once per model file
    } finally {
      warn.mockRestore();
      await rt.close();
    }
  });

  it('throws that message instead when fallback is off', async () => {
    const rt = createRuntime();
    try {
      await expect(rt.loadModel(tiny, { provider: 'cuda', fallback: false })).rejects.toThrow(
        /execution provider "cuda" could not be loaded .*ONNXRUNTIME_NODE_INSTALL=cuda12/,
      );
    } finally {
      await rt.close();
    }
  });

  it('rejects an unknown provider by name', async () => {
    const rt = createRuntime();
    await expect(rt.loadModel(tiny, { provider: 'tpu' })).rejects.toThrow(
      'unknown execution provider "tpu"; use one of cpu, cuda, tensorrt, webgpu',
    );
    await rt.close();
  });
});

describe('worker thread', () => {
  it('keeps the main thread responsive while UNet calls run', async () => {
    const rt = createRuntime();
    try {
      const m = await rt.loadModel(slow);
      const cond = await m.textEncoder.encode('a red car');
      const hidden = {
        data: new Float32Array([...cond.data, ...cond.data]),
        shape: [2, ...cond.shape.slice(1)],
      };
      // A latent big enough that one call takes ≥ 100 ms here: blocking would show as lag that long.
      let size = 16;
      let z = torchRandn([2, 4, 8, size, size], 1);
      for (;;) {
        const t0 = performance.now();
        await m.unet.predict(z, 1, hidden);
        if (performance.now() - t0 >= 100 || size >= 128) break;
        size *= 2;
        z = torchRandn([2, 4, 8, size, size], 1);
      }
      // A timer every 5 ms; each tick's delay beyond 5 ms is how long the main thread could not run.
      const lags: number[] = [];
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        lags.push(now - last - 5);
        last = now;
      }, 5);
      const start = performance.now();
      let calls = 0;
      while (performance.now() - start < 1000) {
        await m.unet.predict(z, 981, hidden);
        calls++;
      }
      clearInterval(timer);
      const perCall = (performance.now() - start) / calls;
      lags.sort((a, b) => a - b);
      const p90 = lags[Math.floor(lags.length * 0.9)];
      console.log(
        `slow UNet [2,4,8,${size},${size}]: ${perCall.toFixed(0)} ms per call; timer lag p90 ${p90.toFixed(1)} ms, max ${lags.at(-1)?.toFixed(1)} ms over ${lags.length} ticks`,
      );
      // Blocked, nearly every tick would wait out a whole call (≥ 100 ms); a busy shared machine
      // may delay a few ticks on its own, hence the 90th percentile.
      expect(lags.length).toBeGreaterThan(calls * 2);
      expect(p90).toBeLessThan(50);
    } finally {
      await rt.close();
    }
  });

  it('rejects as soon as the signal aborts during a call, and the next call still runs', async () => {
    const rt = createRuntime();
    try {
      const m = await rt.loadModel(slow);
      const cond = await m.textEncoder.encode('a');
      const z = torchRandn([1, 4, 8, 16, 16], 1);
      const t0 = performance.now();
      await m.unet.predict(z, 1, cond);
      const full = performance.now() - t0;
      const ac = new AbortController();
      const started = performance.now();
      const call = m.unet.predict(z, 1, cond, ac.signal);
      setTimeout(() => ac.abort(new Error('interrupted by user')), 1);
      await expect(call).rejects.toThrow('interrupted by user');
      console.log(
        `abort answered after ${(performance.now() - started).toFixed(0)} ms of a ${full.toFixed(0)} ms call`,
      );
      // Already aborted: nothing is sent to the worker.
      await expect(m.unet.predict(z, 1, cond, ac.signal)).rejects.toThrow('interrupted by user');
      expect((await m.unet.predict(z, 1, cond)).shape).toEqual(z.shape);
    } finally {
      await rt.close();
    }
  });
  it('close() fails unanswered calls, ends the worker safely, and a later call starts a new one', async () => {
    const rt = createRuntime();
    try {
      const m = await rt.loadModel(slow);
      const cond = await m.textEncoder.encode('a');
      const z = torchRandn([1, 4, 8, 16, 16], 1);
      const queued = [m.unet.predict(z, 1, cond), m.unet.predict(z, 2, cond)];
      const outcomes = Promise.allSettled(queued);
      await new Promise((r) => setTimeout(r, 5)); // the first call is running in the worker now
      await rt.close(); // waits for that call to end inside onnxruntime, then ends the thread
      for (const o of await outcomes) {
        expect(o.status).toBe('rejected');
        expect((o as PromiseRejectedResult).reason).toEqual(new Error('runtime closed'));
      }
      expect(rt.stats().sessionsOpen).toBe(0);
      expect((await m.unet.predict(z, 1, cond)).shape).toEqual(z.shape);
      expect(rt.stats().sessionsOpen).toBe(1);
    } finally {
      await rt.close();
    }
  });
});
