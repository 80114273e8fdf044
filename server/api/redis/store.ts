// One deployment's shared state in Redis, opened the way openStore() (../store.ts) opens the LMDB
// one: queue + history (+ the event bus, which only a shared deployment needs), all under the
// same queue name and key prefix. No data-dir lock: many processes share it by design.
import { createEventBus, type EventBus } from './bus.ts';
import { createRedisHistory, type RedisHistory } from './history.ts';
import {
  createRedisQueue,
  type RedisPromptQueue,
  type RedisQueueOptions,
  type RedisWorkerOptions,
  type RedisWorkerQueue,
} from './queue.ts';
import { parseRedisUrl } from './url.ts';

export interface RedisStoreOptions extends RedisQueueOptions {
  /** History keeps at most this many entries (default 10,000, as the LMDB store). */
  historyLimit?: number;
}

export interface RedisStore<Q extends RedisPromptQueue = RedisPromptQueue> {
  queue: Q;
  history: RedisHistory;
  bus: EventBus;
  /** The URL with the password hidden, for logs and /system_stats. */
  redacted: string;
  /** Whether the connections API requests use (history, publishing) are up now. */
  connected(): boolean;
  close(): Promise<void>;
}

export function openRedisStore(
  opts: RedisStoreOptions & { worker: RedisWorkerOptions },
): RedisStore<RedisWorkerQueue>;
export function openRedisStore(opts: RedisStoreOptions): RedisStore;
export function openRedisStore(opts: RedisStoreOptions): RedisStore | RedisStore<RedisWorkerQueue> {
  // Parsed first: a bad URL throws before any connection is made.
  const { redacted } = parseRedisUrl(opts.url);
  const names = { url: opts.url, name: opts.name, prefix: opts.prefix };
  const queue = createRedisQueue(opts);
  const history = createRedisHistory({ ...names, historyLimit: opts.historyLimit });
  const bus = createEventBus(names);
  return {
    queue,
    history,
    bus,
    redacted,
    connected: () => history.connected() && bus.connected(),
    async close() {
      await queue.close();
      await Promise.all([history.close(), bus.close()]);
    },
  };
}
