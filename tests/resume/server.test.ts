// Resume over the server: a prompt interrupted after some clips is continued by POST /runs/resume
// (the editor's "resume" action) into the same frames as an uninterrupted run; a prompt running
// when the server stops is queued again and continues from its last clip after the restart;
// POST /runs/resume with extend continues a finished prompt; GET /runs lists the checkpoints.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { makeTestModel } from '../helpers/models.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';
import { request, startTestServer, type TestServer } from '../server/helpers.ts';
import { decodeFrames } from './helpers.ts';

let server: TestServer;
let reference: Buffer;
const root = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'rdflow-resume-server-'));

/** The shipped loop on the test model; enough steps that a clip takes a moment. */
function workflow(clips: number): ApiPrompt {
  const p = shrink(readWorkflow('vidrd-long-video.json'), { model: 'tiny', steps: 40, size: 64, clips });
  delete p['9']; // the MP4 writer is enough here
  return p;
}

async function start(): Promise<TestServer> {
  return startTestServer({ root, nodes: allNodes });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type History = Record<
  string,
  { status: { status_str: string }; outputs: Record<string, { images?: { filename: string }[] }> }
>;

async function finished(id: string): Promise<History[string]> {
  return until(`history of ${id}`, async () => {
    const h = (await request(`${server.url}/history/${id}`)).body as History;
    return h[id];
  });
}

/** Queues a prompt after dropping the engine's caches: otherwise a repeat is replayed, not run. */
async function submit(prompt: ApiPrompt): Promise<string> {
  await request(`${server.url}/free`, { body: { free_memory: true } });
  const r = await request(`${server.url}/prompt`, { body: { prompt } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return (r.body as { prompt_id: string }).prompt_id;
}

async function clipsDone(): Promise<number> {
  const runs = (await request(`${server.url}/runs`)).body as {
    runs: { loops: Record<string, { done: number }> }[];
  };
  return Math.max(0, ...runs.runs.map((r) => r.loops['5']?.done ?? 0));
}

async function videoOf(entry: History[string]): Promise<Buffer> {
  const file = entry.outputs['8'].images![0].filename;
  return decodeFrames(path.join(server.outputDir, file));
}

beforeAll(async () => {
  await makeTestModel(path.join(root, 'models', 'tiny'));
  server = await start();
  const r = await request(`${server.url}/prompt`, { body: { prompt: workflow(4) } });
  const entry = await finished((r.body as { prompt_id: string }).prompt_id);
  expect(entry.status.status_str).toBe('success');
  reference = await videoOf(entry);
  await request(`${server.url}/runs/clear`, { body: {} });
}, 120_000);
afterAll(async () => {
  await server.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('resume on the server', () => {
  test('an interrupted prompt continues with POST /runs/resume into the same frames', async () => {
    const id = await submit(workflow(4));
    await until('a clip', async () => ((await clipsDone()) >= 1 ? true : undefined));
    await request(`${server.url}/interrupt`, { body: {} });
    const stopped = await finished(id);
    expect(stopped.status.status_str).toBe('error');
    const runs = (await request(`${server.url}/runs`)).body as {
      runs: { status: string }[];
      total_bytes: number;
    };
    expect(runs.runs).toHaveLength(1);
    expect(runs.runs[0].status).toBe('stopped');
    expect(runs.total_bytes).toBeGreaterThan(0);
    await request(`${server.url}/free`, { body: { free_memory: true } });
    const resumed = await request(`${server.url}/runs/resume`, { body: { prompt_id: id } });
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    const entry = await finished((resumed.body as { prompt_id: string }).prompt_id);
    expect(entry.status.status_str).toBe('success');
    expect((await videoOf(entry)).equals(reference)).toBe(true);
    // A finished prompt is not resumed again; it can be extended.
    const again = await request(`${server.url}/runs/resume`, { body: { prompt_id: id } });
    expect(again.status).toBe(409);
  }, 60_000);

  test('a prompt running when the server stops continues from its last clip after the restart', async () => {
    await request(`${server.url}/runs/clear`, { body: {} });
    const id = await submit(workflow(4));
    await until('a clip', async () => ((await clipsDone()) >= 1 ? true : undefined));
    await server.close();
    server = await start();
    const entry = await finished(id);
    expect(entry.status.status_str).toBe('success');
    expect((await videoOf(entry)).equals(reference)).toBe(true);
    expect(server.logs.join('\n')).toMatch(new RegExp(`prompt ${id} continues from clip [123]/4`));
  }, 60_000);

  test('extend: a finished 2-clip prompt plus 2 clips equals the 4-clip run', async () => {
    const id = await submit(workflow(2));
    expect((await finished(id)).status.status_str).toBe('success');
    await request(`${server.url}/free`, { body: { free_memory: true } });
    const ext = await request(`${server.url}/runs/resume`, { body: { prompt_id: id, extend: 2 } });
    expect(ext.status, JSON.stringify(ext.body)).toBe(200);
    const entry = await finished((ext.body as { prompt_id: string }).prompt_id);
    expect(entry.status.status_str).toBe('success');
    expect((await videoOf(entry)).equals(reference)).toBe(true);
    // The same prompt again is replayed from the cache; it keeps the checkpoint it could not fill.
    const again = await request(`${server.url}/prompt`, { body: { prompt: workflow(2) } });
    const againId = (again.body as { prompt_id: string }).prompt_id;
    expect((await finished(againId)).status.status_str).toBe('success');
    const ext2 = await request(`${server.url}/runs/resume`, { body: { prompt_id: againId, extend: 2 } });
    expect(ext2.status, JSON.stringify(ext2.body)).toBe(200);
    const entry2 = await finished((ext2.body as { prompt_id: string }).prompt_id);
    expect(entry2.status.status_str).toBe('success');
    expect((await videoOf(entry2)).equals(reference)).toBe(true);
    const bad = await request(`${server.url}/runs/resume`, { body: { prompt_id: id, extend: 0 } });
    expect(bad.status).toBe(400);
    const none = await request(`${server.url}/runs/resume`, { body: { prompt_id: 'no-such-prompt' } });
    expect(none.status).toBe(404);
  }, 60_000);
});
