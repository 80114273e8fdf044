// Faults of a scale-out deployment, with real processes on a real Redis: a worker killed -9 in the
// middle of a long video (another worker takes it over and continues from its last finished clip,
// the video is written once and complete); Redis killed and restarted while prompts wait (clients
// are told 503 meanwhile, everything reconnects, nothing pending is lost, the password is never
// shown); a prompt failing for a reason of its worker is retried a bounded number of times, an
// invalid one never queued.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { probe } from '../helpers/ffprobe.ts';
import { makeTestModel } from '../helpers/models.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';
import { connect, isDone, request, slowPrompt, until } from '../server/helpers.ts';
import { startCluster, type Cluster } from './cluster.ts';
import { noRedis } from './harness.ts';

type History = Record<
  string,
  {
    status: { status_str: string; messages: [string, { exception_message?: string }][] };
    outputs: Record<string, { images?: { filename: string; subfolder: string }[] }>;
  }
>;

let c: Cluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
}, 30_000);

async function entry(url: string, id: string, ms = 30_000): Promise<History[string]> {
  return until(async () => ((await request(`${url}/history/${id}`)).body as History)[id], ms);
}

describe.skipIf(noRedis)('faults of a scale-out deployment', () => {
  it('a worker killed -9 mid-video: another continues from its last clip, the video appears once, complete', async () => {
    const clips = 5;
    c = await startCluster({
      apis: [['--workers', '0']],
      workers: 2,
      prepare: async (root) => void (await makeTestModel(path.join(root, 'models', 'tiny'))),
    });
    const api = c.apis[0];
    const prompt = shrink(readWorkflow('vidrd-long-video.json'), {
      model: 'tiny',
      steps: 30,
      size: 64,
      clips,
    });
    delete prompt['9']; // one writer is enough
    const ws = await connect(api.url, 'viewer');
    const r = await request(`${api.url}/prompt`, { body: { prompt, client_id: 'viewer' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const id = (r.body as { prompt_id: string }).prompt_id;

    // Killed once a clip is saved in the shared data folder (GET /runs on the API server sees it).
    await until(async () => {
      const runs = (await request(`${api.url}/runs`)).body as {
        runs: { loops: Record<string, { done: number }> }[];
      };
      return runs.runs.some((x) => (x.loops['5']?.done ?? 0) >= 1) || undefined;
    }, 60_000);
    const victim = c.workers.find((w) => w.stderr().includes(`prompt ${id} taken`))!;
    const survivor = c.workers.find((w) => w !== victim)!;
    victim.child.kill('SIGKILL');
    await victim.exited;

    const done = await entry(api.url, id, 60_000);
    expect(done.status.status_str).toBe('success');
    // Taken over by the stalled check, continued from a saved clip rather than from the start.
    expect(survivor.stderr()).toMatch(new RegExp(`prompt ${id} taken by this worker \\(try 2\\)`));
    expect(survivor.stderr()).toMatch(new RegExp(`prompt ${id} continues from clip [1-9]/${clips}`));
    await ws.waitFor(isDone(id));
    // Written once, by the survivor, with every clip's frames.
    const files = fs.readdirSync(path.join(c.root, 'output')).filter((f) => f.endsWith('.mp4'));
    expect(files).toHaveLength(1);
    expect(done.outputs['8'].images!.map((i) => i.filename)).toEqual(files);
    const frames = Number(prompt['4'].inputs.frames);
    expect(Number((await probe(path.join(c.root, 'output', files[0]))).nb_read_frames)).toBe(clips * frames);
    ws.close();
  }, 90_000);

  it('Redis killed and restarted: 503 meanwhile, then pending prompts run and clients get their events', async () => {
    const password = 'sekret-pw-42';
    c = await startCluster({ apis: [['--workers', '0']], workers: 1, appendonly: true, password });
    const api = c.apis[0];
    const ws = await connect(api.url, 'watcher');
    const submit = async (i: number, steps: number) => {
      const body = { prompt: slowPrompt(i, { steps, delayMs: 20, prefix: `r${i}` }), client_id: 'watcher' };
      const res = await request(`${api.url}/prompt`, { body });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return (res.body as { prompt_id: string }).prompt_id;
    };
    const busy = await submit(1, 50);
    const waiting = [await submit(2, 3), await submit(3, 3)];
    await ws.waitFor((m) => m.type === 'progress' && m.data.prompt_id === busy);

    await c.redis.kill();
    // A request that reached Redis's client just before it noticed the loss waits for Redis to
    // return (its command is queued, not dropped): give up on such a one and ask again.
    const during = await until(async () => {
      const res = await request(`${api.url}/prompt`, {
        body: { prompt: slowPrompt(9) },
        timeoutMs: 2000,
      }).catch(() => undefined);
      return res?.status === 503 ? res : undefined;
    });
    const message = (during.body as { error: { message: string } }).error.message;
    expect(message).toMatch(/shared queue \(redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0\) cannot be reached/);
    expect((await request(`${api.url}/object_info/TestInt`)).status).toBe(200);
    await c.redis.restart();

    for (const id of [busy, ...waiting]) expect((await entry(api.url, id)).status.status_str).toBe('success');
    const after = await submit(4, 2);
    await ws.waitFor(isDone(after));
    for (const id of waiting) await ws.waitFor(isDone(id));
    // Nothing secret in any log or in /system_stats.
    const stats = await request(`${api.url}/system_stats`);
    expect(JSON.stringify(stats.body)).not.toContain(password);
    for (const p of [...c.apis, ...c.workers]) expect(p.stderr()).not.toContain(password);
    ws.close();
  }, 60_000);

  it('a worker fault is retried with backoff a bounded number of times; an invalid prompt is never queued', async () => {
    c = await startCluster({ apis: [[]], workers: 0, env: { RDFLOW_QUEUE_ATTEMPTS: '3' } });
    const api = c.apis[0];
    const ws = await connect(api.url, 'r');
    // TestThrow fails with its message; the writer makes it a prompt with an output.
    const throwing = (message: string, prefix: string) => ({
      '1': { class_type: 'TestThrow', inputs: { message } },
      '2': { class_type: 'TestFileWriter', inputs: { value: ['1', 0], filename_prefix: prefix } },
    });
    const res = await request(`${api.url}/prompt`, {
      body: { prompt: throwing('out of memory (test)', 'oom'), client_id: 'r' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = (res.body as { prompt_id: string }).prompt_id;
    const failed = await entry(api.url, id);
    expect(failed.status.status_str).toBe('error');
    expect(api.stderr().match(new RegExp(`prompt ${id} failed on this worker`, 'g'))).toHaveLength(2);
    // The client saw one error, at the end, not one per try.
    await ws.waitFor(isDone(id));
    expect(ws.messages.filter((m) => m.type === 'execution_error' && m.data.prompt_id === id)).toHaveLength(
      1,
    );

    // A prompt's own error is not retried.
    const bad = await request(`${api.url}/prompt`, {
      body: { prompt: throwing('bad input', 'bad') },
    });
    const badId = (bad.body as { prompt_id: string }).prompt_id;
    expect((await entry(api.url, badId)).status.status_str).toBe('error');
    expect(api.stderr()).not.toContain(`prompt ${badId} failed on this worker`);
    // A validation error is answered at /prompt, as on one server, and never queued.
    const invalid = await request(`${api.url}/prompt`, {
      body: { prompt: { '1': { class_type: 'Nope', inputs: {} } } },
    });
    expect(invalid.status).toBe(400);
    expect(((await request(`${api.url}/queue`)).body as { queue_pending: unknown[] }).queue_pending).toEqual(
      [],
    );
    ws.close();
  }, 60_000);
});
