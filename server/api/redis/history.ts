// ComfyUI's history in Redis, shared by every API server and worker of a deployment. Entries are
// a hash (prompt id → JSON) plus a sorted set (prompt id → write sequence) for the order; a put
// and the trim to `historyLimit` are one Lua script, so concurrent writers never leave the set
// and the hash apart. A put of an existing id moves it to the newest, as the LMDB store does.
import { Redis } from 'ioredis';
import type { HistoryEntry, HistoryStore } from '../queue.ts';
import { ioredisOptions, parseRedisUrl } from './url.ts';

export interface RedisHistoryOptions {
  url: string;
  /** Same name and prefix as the queue's. */
  name?: string;
  prefix?: string;
  /** Keeps at most this many entries, dropping the oldest (default 10,000, as the LMDB store). */
  historyLimit?: number;
}

export interface RedisHistory extends HistoryStore {
  /** Whether its connection is up now (else calls wait for the reconnection). */
  connected(): boolean;
  close(): Promise<void>;
}

const PUT = `
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
end
return seq`;

/** HDEL/ZREM take many ids at once; Lua's unpack and the protocol are happier with bounded batches. */
const BATCH = 1000;

export function createRedisHistory(opts: RedisHistoryOptions): RedisHistory {
  const limit = opts.historyLimit ?? 10_000;
  const base = `${opts.prefix ?? 'rdflow'}:${opts.name ?? 'prompts'}:history`;
  const order = `${base}:order`;
  const entries = `${base}:entries`;
  const seq = `${base}:seq`;
  const redis = new Redis(ioredisOptions(parseRedisUrl(opts.url)));
  // Lost connections are retried by ioredis; an unhandled 'error' would end the process.
  redis.on('error', () => undefined);

  const read = async (ids: string[]): Promise<[string, HistoryEntry][]> => {
    const out: [string, HistoryEntry][] = [];
    for (let i = 0; i < ids.length; i += BATCH) {
      const part = ids.slice(i, i + BATCH);
      const values = await redis.hmget(entries, ...part);
      part.forEach((id, k) => {
        const v = values[k];
        if (v !== null && v !== undefined) out.push([id, JSON.parse(v) as HistoryEntry]);
      });
    }
    return out;
  };

  return {
    async put(promptId, entry) {
      await redis.eval(PUT, 3, order, entries, seq, promptId, JSON.stringify(entry), String(limit));
    },
    async get(promptId) {
      const v = await redis.hget(entries, promptId);
      return v === null ? undefined : (JSON.parse(v) as HistoryEntry);
    },
    async list(maxItems) {
      if (maxItems === 0) return [];
      const ids = await redis.zrange(order, maxItems === undefined ? 0 : -maxItems, -1);
      return read(ids);
    },
    async delete(ids) {
      for (let i = 0; i < ids.length; i += BATCH) {
        const part = ids.slice(i, i + BATCH);
        if (part.length === 0) continue;
        await redis
          .multi()
          .zrem(order, ...part)
          .hdel(entries, ...part)
          .exec();
      }
    },
    async clear() {
      await redis.del(order, entries);
    },
    connected: () => redis.status === 'ready',
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
