// `rdflow serve --queue redis://…` and `rdflow worker` as separate processes on a real Redis: two
// API servers (API only) and two workers. Two clients, each on its own API server, queue ten
// prompts through either server: each client receives exactly the events of its own prompts, all
// ten complete, /history and /view answer on every server, /queue shows every worker's prompt;
// an interrupt or a delete sent to one server reaches the prompt wherever it is.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, isDone, request, slowPrompt, until, type WsClient } from '../server/helpers.ts';
import { startCluster, stopProc, type Cluster } from './cluster.ts';
import { noRedis } from './harness.ts';

type History = Record<string, { status: { status_str: string }; outputs: Record<string, unknown> }>;
type QueueState = { queue_running: [number, string][]; queue_pending: [number, string][] };

async function submit(url: string, prompt: unknown, clientId: string): Promise<string> {
  const r = await request(`${url}/prompt`, { body: { prompt, client_id: clientId } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(typeof (r.body as { number: unknown }).number).toBe('number');
  return (r.body as { prompt_id: string }).prompt_id;
}

/** The prompt ids of every message a client received (status carries none). */
const promptIdsSeen = (c: WsClient) =>
  new Set(c.messages.map((m) => m.data.prompt_id).filter((id) => id !== undefined));

describe.skipIf(noRedis)('API servers and workers on one Redis queue', () => {
  let c: Cluster;
  let one: WsClient;
  let two: WsClient;

  beforeAll(async () => {
    c = await startCluster({
      apis: [
        ['--workers', '0'],
        ['--workers', '0'],
      ],
      workers: 2,
    });
    one = await connect(c.apis[0].url, 'client-one');
    two = await connect(c.apis[1].url, 'client-two');
  }, 60_000);

  afterAll(async () => {
    one?.close();
    two?.close();
    await c?.stop();
  }, 30_000);

  it('two clients, ten prompts through either server: each gets its own events, all complete', async () => {
    const [a, b] = c.apis;
    const mine: Record<string, string[]> = { 'client-one': [], 'client-two': [] };
    for (let i = 0; i < 10; i++) {
      const clientId = i % 2 === 0 ? 'client-one' : 'client-two';
      // Queued through the other client's server half of the time: any server takes any prompt.
      const via = i % 3 === 0 ? b : a;
      mine[clientId].push(
        await submit(via.url, slowPrompt(i, { steps: 4, delayMs: 40, prefix: `p${i}` }), clientId),
      );
    }
    // Both workers run at once: /queue on either server shows both running prompts.
    const both = await until(async () => {
      const q = (await request(`${b.url}/queue`)).body as QueueState;
      return q.queue_running.length === 2 ? q : undefined;
    });
    expect(
      both.queue_running.every(([, id]) => [...mine['client-one'], ...mine['client-two']].includes(id)),
    ).toBe(true);

    for (const id of mine['client-one']) await one.waitFor(isDone(id));
    for (const id of mine['client-two']) await two.waitFor(isDone(id));
    expect(promptIdsSeen(one)).toEqual(new Set(mine['client-one']));
    expect(promptIdsSeen(two)).toEqual(new Set(mine['client-two']));
    for (const id of mine['client-one']) {
      expect(one.messages.some((m) => m.type === 'execution_success' && m.data.prompt_id === id)).toBe(true);
      expect(one.messages.some((m) => m.type === 'progress' && m.data.prompt_id === id)).toBe(true);
    }

    for (const api of c.apis) {
      const h = (await request(`${api.url}/history`)).body as History;
      for (const id of [...mine['client-one'], ...mine['client-two']])
        expect(h[id]?.status.status_str).toBe('success');
      // Every worker wrote into the one output folder; any server serves every file.
      const view = await request(`${api.url}/view?filename=p7.txt&type=output`);
      expect(view.status).toBe(200);
      expect(String(view.body).trim()).toBe('7');
    }
    expect(
      fs
        .readdirSync(path.join(c.root, 'output'))
        .filter((f) => f.endsWith('.txt'))
        .sort(),
    ).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}.txt`).sort());
    // The work was shared: both workers ran prompts.
    for (const w of c.workers) expect(w.stderr()).not.toContain('failed');
    const q = (await request(`${a.url}/queue`)).body as QueueState;
    expect(q).toEqual({ queue_running: [], queue_pending: [] });
    // The status broadcast reaches clients of every server.
    expect(two.messages.some((m) => m.type === 'status' && m.data.sid === undefined)).toBe(true);
  }, 60_000);

  it('an interrupt or a delete sent to one server reaches the prompt wherever it is', async () => {
    const [a, b] = c.apis;
    const long1 = await submit(
      a.url,
      slowPrompt(100, { steps: 400, delayMs: 20, prefix: 'long1' }),
      'client-one',
    );
    const long2 = await submit(
      a.url,
      slowPrompt(101, { steps: 400, delayMs: 20, prefix: 'long2' }),
      'client-one',
    );
    const pending = await submit(a.url, slowPrompt(102, { steps: 1, prefix: 'never' }), 'client-one');
    await one.waitFor((m) => m.type === 'progress' && m.data.prompt_id === long1);
    await one.waitFor((m) => m.type === 'progress' && m.data.prompt_id === long2);

    // A client reconnecting to the other server learns where its running prompt is.
    const again = await connect(b.url, 'client-one');
    await again.waitFor(
      (m) => m.type === 'executing' && (m.data.prompt_id === long1 || m.data.prompt_id === long2),
    );
    again.close();

    // Deleted through server B while pending (queued through A).
    expect((await request(`${b.url}/queue`, { body: { delete: [pending] } })).status).toBe(200);
    await request(`${b.url}/interrupt`, { body: { prompt_id: long2 } });
    await one.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === long2);
    // Deleting a running prompt stops it too, from either server.
    await request(`${b.url}/queue`, { body: { delete: [long1] } });
    await one.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === long1);
    for (const id of [long1, long2]) await one.waitFor(isDone(id));

    const h = (await request(`${b.url}/history`)).body as History;
    expect(h[long1].status.status_str).toBe('error');
    expect(h[long2].status.status_str).toBe('error');
    expect(h[pending]).toBeUndefined();
    expect(fs.existsSync(path.join(c.root, 'output', 'never.txt'))).toBe(false);
    expect(fs.existsSync(path.join(c.root, 'output', 'long1.txt'))).toBe(false);
    const q = (await request(`${a.url}/queue`)).body as QueueState;
    expect(q).toEqual({ queue_running: [], queue_pending: [] });
  }, 60_000);

  it('a worker stopped gracefully (SIGTERM) hands its running prompt back; another one finishes it', async () => {
    const [a] = c.apis;
    const id = await submit(
      a.url,
      slowPrompt(200, { steps: 60, delayMs: 25, prefix: 'handover' }),
      'client-one',
    );
    await one.waitFor((m) => m.type === 'progress' && m.data.prompt_id === id);
    const leaving = c.workers.find((w) => w.stderr().includes(`prompt ${id} taken`))!;
    const staying = c.workers.find((w) => w !== leaving)!;
    await stopProc(leaving);
    await one.waitFor(isDone(id));
    const h = (await request(`${a.url}/history/${id}`)).body as History;
    expect(h[id].status.status_str).toBe('success');
    expect(staying.stderr()).toContain(`prompt ${id} taken by this worker`);
    expect(fs.readFileSync(path.join(c.root, 'output', 'handover.txt'), 'utf8').trim()).toBe('200');
  }, 60_000);
});
