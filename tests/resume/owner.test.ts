// Who owns a checkpoint marked running: a pid is checked only on its own machine. A run marked
// running on another machine (a worker of a shared queue) stays running here, so it is neither
// resumed twice nor evicted; the worker that holds the job's lock takes it over.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { nodeKinds } from '../../server/runs/cli.ts';
import { CheckpointStore } from '../../server/runs/store.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';

const prompt = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'workflows', 'vidrd-long-video.json'), 'utf8'),
) as ApiPrompt;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A store holding one checkpoint of `prompt`, marked running by `owner` (as its state file says). */
function storeWithRunningMark(owner: { pid: number; host?: string }): {
  store: CheckpointStore;
  key: string;
} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-owner-'));
  dirs.push(dir);
  const store = new CheckpointStore(dir, nodeKinds(allNodes));
  const key = store.key(prompt);
  fs.mkdirSync(path.join(dir, key));
  const now = Date.now();
  const state = {
    version: 1,
    key,
    source: 'test',
    prompt,
    status: 'running',
    ...owner,
    createdAt: now,
    updatedAt: now,
    loops: {},
  };
  fs.writeFileSync(path.join(dir, key, 'state.json'), JSON.stringify(state));
  return { store, key };
}

// A pid that is not running here (pids are below 2^22 on Linux).
const DEAD_PID = 2 ** 22 + 7;

describe('checkpoint ownership', () => {
  it('a running mark of a dead process on this machine is a stopped run, resumed without taking over', () => {
    const { store, key } = storeWithRunningMark({ pid: DEAD_PID, host: os.hostname() });
    expect(store.get(key)?.status).toBe('stopped');
    expect(() => store.open(prompt, { resume: true })).not.toThrow();
  });

  it('a running mark from another machine stays running: not resumed, not removed, unless taken over', () => {
    const { store, key } = storeWithRunningMark({ pid: DEAD_PID, host: 'another-machine' });
    expect(store.get(key)?.status).toBe('running');
    expect(() => store.open(prompt, { resume: true })).toThrow(/still running/);
    expect(() => store.remove(key)).toThrow(/still running/);
    expect(store.clear()).toEqual([]);
    // The worker holding the job's lock continues it.
    const taken = store.open(prompt, { resume: true, takeOver: true });
    expect(taken.key).toBe(key);
  });

  it('files written before hosts were recorded are judged by their pid here', () => {
    const { store, key } = storeWithRunningMark({ pid: DEAD_PID });
    expect(store.get(key)?.status).toBe('stopped');
  });
});
