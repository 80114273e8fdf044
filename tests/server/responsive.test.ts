// The server keeps answering while inference runs: UNet calls run in the runtime's worker thread,
// so HTTP requests and WebSocket pings sent during sampling are answered between (not after) the
// sampler's steps. The latency itself is a benchmark number (BENCHMARKS.md, row 5); this test
// checks the structure: many answers arrive while a step is in flight, each far faster than a step.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import { makeTestModel, TEST_VARIANTS } from '../helpers/models.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';
import { connect, isDone, request, startTestServer, type TestServer } from './helpers.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ nodes: allNodes });
  // The slow variant at a 32×32 latent: one CFG step takes hundreds of milliseconds.
  await makeTestModel(path.join(server.root, 'models', 'slow'), TEST_VARIANTS.slow);
});
afterAll(async () => {
  await server.close();
  await getRuntime().release();
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('responsiveness during inference', () => {
  it('answers HTTP and WebSocket pings between sampler steps while the UNet runs in the worker', async () => {
    const steps = 6;
    const prompt = shrink(readWorkflow('single-clip.json'), { model: 'slow', steps, size: 256 });
    const ws = await connect(server.url, 'busy');
    const res = await request(`${server.url}/prompt`, { body: { prompt, client_id: 'busy' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { prompt_id } = res.body as { prompt_id: string };
    const stepAt: number[] = [];
    ws.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(String(data)) as { type: string; data: { node?: string; max?: number } };
      if (m.type === 'progress' && m.data.max === steps) stepAt.push(performance.now());
    });
    await ws.waitFor((m) => m.type === 'progress' && m.data.max === steps, 60_000);

    // Probe while the sampler is between its first and last step.
    const probes: { ms: number; at: number }[] = [];
    while (stepAt.length < steps - 1) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        ws.ws.once('pong', () => resolve());
        ws.ws.ping();
      });
      const t1 = performance.now();
      const status = await request(`${server.url}/prompt`);
      expect(status.status).toBe(200);
      const t2 = performance.now();
      probes.push({ ms: t1 - t0, at: t1 }, { ms: t2 - t1, at: t2 });
      await new Promise((r) => setTimeout(r, 10));
    }
    await ws.waitFor(isDone(prompt_id), 120_000);
    ws.close();

    const stepMs = median(stepAt.slice(1).map((t, i) => t - stepAt[i]));
    const during = probes.filter((p) => p.at < stepAt[stepAt.length - 1]);
    const worst = Math.max(...during.map((p) => p.ms));
    console.log(
      `step ${stepMs.toFixed(0)} ms; ${during.length} answers during sampling, ` +
        `median ${median(during.map((p) => p.ms)).toFixed(1)} ms, worst ${worst.toFixed(1)} ms`,
    );
    // Several answers per step: the event loop was free while each UNet call ran.
    expect(during.length).toBeGreaterThanOrEqual(2 * (steps - 2));
    expect(worst).toBeLessThan(stepMs / 2);
  });
});
