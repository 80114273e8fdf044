// The embedded, persistent PromptQueue and HistoryStore: one LMDB environment in the data dir.
// LMDB commits are durable when they resolve and survive kill -9; multi-table changes (take the
// next prompt and mark it running) happen in one transaction, so a crash never half-moves a prompt.
import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { processAlive } from '../core/process.ts';
import type { HistoryEntry, HistoryStore, PromptQueue, QueueItem } from './queue.ts';

/** Pending key: [number, seq] keeps ComfyUI's order by `number` and makes equal numbers FIFO. */
type PendingKey = [number, number];

interface Meta {
  seq: number;
  historySeq: number;
  /** Next ComfyUI `number` (absolute value). */
  number?: number;
}

export interface Store {
  queue: PromptQueue;
  history: HistoryStore;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** History keeps at most this many entries, dropping the oldest (default 10,000). */
  historyLimit?: number;
}

/**
 * LMDB keys end at 1978 bytes and a longer one throws. The routes refuse long ids with a 400; here
 * an id that could never have been stored is simply absent, whoever calls.
 */
const MAX_KEY_BYTES = 1024;
function keyFits(id: string): boolean {
  return Buffer.byteLength(id) <= MAX_KEY_BYTES;
}

/** Data dirs this process has open (a lock file cannot tell two servers of one process apart). */
const heldHere = new Set<string>();

/**
 * One server per data dir: two would both take prompts from the queue, and the second would
 * mistake the first's running prompt for one left by a crash. A lock file naming a dead process
 * (kill -9) is stale and taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const key = path.resolve(dataDir);
  const lockPath = path.join(key, 'server.lock');
  if (heldHere.has(key))
    throw new Error(`The data dir ${dataDir} is already used by a server in this process.`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
      heldHere.add(key);
      return () => {
        heldHere.delete(key);
        fs.rmSync(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(lockPath, 'utf8').trim());
      if (pid !== process.pid && processAlive(pid)) {
        throw new Error(
          `The data dir ${dataDir} is in use by another rdflow server (pid ${pid}). Stop it, or give ` +
            `this server its own data dir (if no such server runs, delete ${lockPath}).`,
          { cause: err },
        );
      }
      fs.rmSync(lockPath, { force: true });
    }
  }
  throw new Error(`Could not lock the data dir ${dataDir}.`);
}

export function openStore(dataDir: string, opts: StoreOptions = {}): Store {
  const historyLimit = opts.historyLimit ?? 10_000;
  fs.mkdirSync(dataDir, { recursive: true });
  const unlock = lockDataDir(dataDir);
  const root: RootDatabase = open({ path: path.join(dataDir, 'queue.lmdb'), maxDbs: 8 });
  const pending: Database<QueueItem, PendingKey> = root.openDB({ name: 'pending', encoding: 'json' });
  const pendingIndex: Database<PendingKey, string> = root.openDB({ name: 'pending-index', encoding: 'json' });
  const running: Database<QueueItem, string> = root.openDB({ name: 'running', encoding: 'json' });
  const meta: Database<Meta, string> = root.openDB({ name: 'meta', encoding: 'json' });
  const history: Database<{ promptId: string; entry: HistoryEntry }, number> = root.openDB({
    name: 'history',
    encoding: 'json',
  });
  const historyIndex: Database<number, string> = root.openDB({ name: 'history-index', encoding: 'json' });

  const counters = (): Meta => meta.get('counters') ?? { seq: 0, historySeq: 0 };
  // ComfyUI numbers prompts from a counter that only grows; keep it across restarts.
  let nextNumber = counters().number ?? 0;
  for (const { value } of pending.getRange({})) nextNumber = Math.max(nextNumber, Math.abs(value.number) + 1);
  const r = running.get('current');
  if (r) nextNumber = Math.max(nextNumber, Math.abs(r.number) + 1);
  for (const { value } of history.getRange({ reverse: true, limit: 1 })) {
    nextNumber = Math.max(nextNumber, Math.abs(value.entry.prompt[0]) + 1);
  }

  const queue: PromptQueue = {
    async enqueue(item, o = {}) {
      return root.transactionSync(() => {
        const c = counters();
        const n = nextNumber++;
        const number = item.number ?? (o.front ? -n : n);
        const full: QueueItem = { ...item, number };
        const key: PendingKey = [number, c.seq];
        meta.putSync('counters', { ...c, seq: c.seq + 1, number: nextNumber });
        pending.putSync(key, full);
        pendingIndex.putSync(item.promptId, key);
        return full;
      });
    },
    async next() {
      return root.transactionSync(() => {
        for (const { key, value } of pending.getRange({ limit: 1 })) {
          pending.removeSync(key);
          pendingIndex.removeSync(value.promptId);
          running.putSync('current', value);
          return value;
        }
        return undefined;
      });
    },
    async running() {
      return running.get('current');
    },
    async pending() {
      return [...pending.getRange({})].map((e) => e.value);
    },
    async remaining() {
      return pending.getCount() + (running.get('current') ? 1 : 0);
    },
    async delete(ids) {
      return root.transactionSync(() => {
        const removed: string[] = [];
        for (const id of ids.filter(keyFits)) {
          const key = pendingIndex.get(id);
          if (!key) continue;
          pending.removeSync(key);
          pendingIndex.removeSync(id);
          removed.push(id);
        }
        return removed;
      });
    },
    async clear() {
      root.transactionSync(() => {
        pending.clearSync();
        pendingIndex.clearSync();
      });
    },
    async requeue(item) {
      root.transactionSync(() => {
        const c = counters();
        const key: PendingKey = [item.number, c.seq];
        meta.putSync('counters', { ...c, seq: c.seq + 1 });
        pending.putSync(key, item);
        pendingIndex.putSync(item.promptId, key);
        if (running.get('current')?.promptId === item.promptId) running.removeSync('current');
      });
    },
    async complete(promptId) {
      root.transactionSync(() => {
        if (running.get('current')?.promptId === promptId) running.removeSync('current');
      });
    },
    async has(promptId) {
      if (!keyFits(promptId)) return false;
      return pendingIndex.get(promptId) !== undefined || running.get('current')?.promptId === promptId;
    },
  };

  const historyStore: HistoryStore = {
    async put(promptId, entry) {
      root.transactionSync(() => {
        const c = counters();
        const old = historyIndex.get(promptId);
        if (old !== undefined) history.removeSync(old);
        history.putSync(c.historySeq, { promptId, entry });
        historyIndex.putSync(promptId, c.historySeq);
        meta.putSync('counters', { ...c, historySeq: c.historySeq + 1 });
        const excess = history.getCount() - historyLimit;
        if (excess > 0) {
          for (const { key, value } of history.getRange({ limit: excess })) {
            history.removeSync(key);
            historyIndex.removeSync(value.promptId);
          }
        }
      });
    },
    async get(promptId) {
      if (!keyFits(promptId)) return undefined;
      const seq = historyIndex.get(promptId);
      return seq === undefined ? undefined : history.get(seq)?.entry;
    },
    async list(maxItems) {
      const newest =
        maxItems === undefined
          ? [...history.getRange({})]
          : [...history.getRange({ reverse: true, limit: maxItems })].reverse();
      return newest.map(({ value }) => [value.promptId, value.entry]);
    },
    async delete(ids) {
      root.transactionSync(() => {
        for (const id of ids.filter(keyFits)) {
          const seq = historyIndex.get(id);
          if (seq === undefined) continue;
          history.removeSync(seq);
          historyIndex.removeSync(id);
        }
      });
    },
    async clear() {
      root.transactionSync(() => {
        history.clearSync();
        historyIndex.clearSync();
      });
    },
  };

  return {
    queue,
    history: historyStore,
    async close() {
      await root.close();
      unlock();
    },
  };
}
