// Nothing lost: the server process is killed with SIGKILL while a prompt runs and others wait;
// after a restart on the same data dir every pending prompt runs, and the one that was running is
// queued again first, once (by default), or in history as failed with a message saying so
// (`requeueCrashed: false`). A prompt under which the server dies twice is not run a third time
// (tests/security/reliability.test.ts).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CRASHED_MESSAGE } from '../../server/api/index.ts';
import { connect, request, slowPrompt, spawnServerProcess, startTestServer, until } from './helpers.ts';

const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

async function spawnServer(root: string, ...flags: string[]): Promise<{ child: ChildProcess; url: string }> {
  const s = await spawnServerProcess(root, ...flags);
  children.push(s.child);
  return s;
}

type History = Record<
  string,
  { status: { status_str: string; messages: [string, { exception_message?: string }][] } }
>;

async function killMidQueue(...flags: string[]) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-restart-'));
  const first = await spawnServer(root, ...flags);
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await request(`${first.url}/prompt`, {
      body: { prompt: slowPrompt(i, { steps: 20, delayMs: 25, prefix: `r${i}` }) },
    });
    expect(res.status).toBe(200);
    ids.push((res.body as { prompt_id: string }).prompt_id);
  }
  const running = await until(async () => {
    const q = (await request(`${first.url}/queue`)).body as { queue_running: [number, string][] };
    return q.queue_running[0]?.[1];
  });
  expect(running).toBe(ids[0]);
  const exited = new Promise((r) => first.child.once('exit', r));
  first.child.kill('SIGKILL');
  await exited;

  const second = await spawnServer(root, ...flags);
  const history = await until(async () => {
    const h = (await request(`${second.url}/history`)).body as History;
    return ids.every((id) => h[id]) ? h : undefined;
  }, 30_000);
  for (const id of ids.slice(1)) expect(history[id].status.status_str).toBe('success');
  for (let i = 1; i < 6; i++)
    expect(fs.readFileSync(path.join(root, 'output', `r${i}.txt`), 'utf8').trim()).toBe(String(i));
  const q = (await request(`${second.url}/queue`)).body as {
    queue_running: unknown[];
    queue_pending: unknown[];
  };
  expect(q).toEqual({ queue_running: [], queue_pending: [] });
  // Numbers keep growing across restarts, so new prompts sort after old ones.
  const next = await request(`${second.url}/prompt`, { body: { prompt: slowPrompt(99, { steps: 1 }) } });
  expect((next.body as { number: number }).number).toBeGreaterThanOrEqual(6);
  second.child.kill('SIGTERM');
  return { root, ids, history };
}

describe('kill -9 mid-queue', () => {
  it('restarts with the running prompt queued again first, then every pending prompt run', async () => {
    const { root, ids, history } = await killMidQueue();
    expect(history[ids[0]].status.status_str).toBe('success');
    expect(fs.readFileSync(path.join(root, 'output', 'r0.txt'), 'utf8').trim()).toBe('0');
    // It ran first after the restart: history lists it before the others.
    expect(Object.keys(history).slice(0, 6)).toEqual(ids);
  }, 60_000);

  it('with re-queueing off, marks the running prompt failed and runs every pending one', async () => {
    const { root, ids, history } = await killMidQueue('--no-requeue');
    expect(history[ids[0]].status.status_str).toBe('error');
    expect(history[ids[0]].status.messages[0][1].exception_message).toBe(CRASHED_MESSAGE);
    expect(fs.existsSync(path.join(root, 'output', 'r0.txt'))).toBe(false);
  }, 60_000);
});

describe('a graceful stop', () => {
  it('puts the running prompt back first in line; it runs after the restart', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-graceful-'));
    const first = await startTestServer({ root });
    const ws = await connect(first.url, 'g');
    const a = await request(`${first.url}/prompt`, {
      body: { prompt: slowPrompt(1, { steps: 200, delayMs: 10, prefix: 'g1' }), client_id: 'g' },
    });
    const b = await request(`${first.url}/prompt`, { body: { prompt: slowPrompt(2, { prefix: 'g2' }) } });
    const idA = (a.body as { prompt_id: string }).prompt_id;
    const idB = (b.body as { prompt_id: string }).prompt_id;
    await ws.waitFor((m) => m.type === 'progress' && m.data.prompt_id === idA);
    await first.close();
    expect(fs.existsSync(path.join(root, 'output', 'g1.txt'))).toBe(false);

    const second = await startTestServer({ root });
    try {
      const h = await until(async () => {
        const all = (await request(`${second.url}/history`)).body as History;
        return all[idA] && all[idB] ? all : undefined;
      });
      expect(h[idA].status.status_str).toBe('success');
      expect(Object.keys(h)).toEqual([idA, idB]);
      expect(fs.readFileSync(path.join(root, 'output', 'g1.txt'), 'utf8').trim()).toBe('1');
    } finally {
      await second.close();
    }
  });
});

describe('one server per data dir', () => {
  it('refuses a second server on the same data dir, and frees it when the port is taken', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-lock-'));
    const first = await startTestServer({ root });
    try {
      await expect(startTestServer({ root })).rejects.toThrow(/data dir .* already used/);
      // A start that fails on a taken port releases the data dir again.
      const other = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-lock2-'));
      await expect(startTestServer({ root: other, port: first.port })).rejects.toThrow(/already in use/);
      const ok = await startTestServer({ root: other });
      await ok.close();
    } finally {
      await first.close();
    }
  });
});
