// The Redis history (ComfyUI's /history, shared by every API server) and the Redis URL parser,
// which must never let a password reach a log line or an error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisHistory } from '../../server/api/redis/history.ts';
import { createRedisQueue } from '../../server/api/redis/queue.ts';
import { openRedisStore } from '../../server/api/redis/store.ts';
import { ioredisOptions, parseRedisUrl, redactRedisUrl, RedisUrlError } from '../../server/api/redis/url.ts';
import type { HistoryEntry } from '../../server/api/queue.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { item, noRedis, until } from './harness.ts';

const entry = (n: number): HistoryEntry => ({
  prompt: [n, `p${n}`, {}, {}, []],
  outputs: {},
  status: { status_str: 'success', completed: true, messages: [] },
  meta: {},
});

describe.skipIf(noRedis)('Redis history', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('is shared, oldest first, bounded to historyLimit, and a re-put moves an entry to the newest', async () => {
    const a = createRedisHistory({ url: redis.url, name: 'h', historyLimit: 3 });
    const b = createRedisHistory({ url: redis.url, name: 'h', historyLimit: 3 });
    try {
      for (const n of [1, 2, 3]) await a.put(`p${n}`, entry(n));
      expect((await b.list()).map(([id]) => id)).toEqual(['p1', 'p2', 'p3']);
      await b.put('p1', entry(1));
      expect((await a.list()).map(([id]) => id)).toEqual(['p2', 'p3', 'p1']);
      await b.put('p4', entry(4));
      expect((await a.list()).map(([id]) => id)).toEqual(['p3', 'p1', 'p4']);
      expect(await a.get('p2')).toBeUndefined();
      expect(await a.get('p4')).toEqual(entry(4));
      expect((await a.list(2)).map(([id]) => id)).toEqual(['p1', 'p4']);
      expect(await a.list(0)).toEqual([]);
      await a.delete(['p1', 'nope']);
      expect((await b.list()).map(([id]) => id)).toEqual(['p3', 'p4']);
      await b.clear();
      expect(await a.list()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('Redis URLs', () => {
  const secret = 'hunter2-s3cret';

  it('reads host, port, db, user, password and TLS', () => {
    expect(parseRedisUrl(`redis://:${secret}@cache.internal:6380/2`)).toEqual({
      host: 'cache.internal',
      port: 6380,
      db: 2,
      password: secret,
      tls: false,
      redacted: 'redis://:***@cache.internal:6380/2',
    });
    expect(parseRedisUrl('rediss://worker:p%40ss@[::1]')).toMatchObject({
      host: '::1',
      port: 6379,
      db: 0,
      username: 'worker',
      password: 'p@ss',
      tls: true,
      redacted: 'rediss://worker:***@[::1]/0',
    });
    expect(parseRedisUrl('redis://localhost').redacted).toBe('redis://localhost/0');
    const o = ioredisOptions(parseRedisUrl(`rediss://:${secret}@h:1/3`));
    expect(o).toMatchObject({ host: 'h', port: 1, db: 3, password: secret, tls: { servername: 'h' } });
  });

  it('never quotes a password in an error', () => {
    for (const bad of [
      `http://:${secret}@host:1`,
      `redis://:${secret}@host:1/db9x`,
      `redis://:${secret}@host:1/0?x=1`,
      `redis://:${secret}@host:notaport`,
      `:${secret}@host`,
    ]) {
      let err: unknown;
      try {
        parseRedisUrl(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(RedisUrlError);
      expect(String(err)).not.toContain(secret);
      expect(String(err)).toMatch(/^RedisUrlError: Invalid Redis URL/);
    }
    expect(redactRedisUrl(`connecting to redis://u:${secret}@h:1 and rediss://:x@y`)).toBe(
      'connecting to redis://***@h:1 and rediss://***@y',
    );
  });
});

describe.skipIf(noRedis)('a Redis with a password', () => {
  const secret = 'pa55-w0rd-never-logged';
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ password: secret });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("is used with the URL's password, and a wrong one is reported without either", async () => {
    const q = createRedisQueue({ url: redis.url, name: 'pw', worker: { blockSeconds: 0.2 } });
    expect(q.redacted).toBe(`redis://:***@127.0.0.1:${redis.port}/0`);
    await q.enqueue(item('x'));
    expect((await q.next())?.promptId).toBe('x');
    await q.complete('x');
    await q.close();

    // The whole store over the same URL: queue, history and bus share the name and prefix.
    const store = openRedisStore({ url: redis.url, name: 'pw', historyLimit: 5 });
    expect(store.redacted).toBe(q.redacted);
    await store.history.put('x', entry(1));
    expect(await store.history.get('x')).toEqual(entry(1));
    expect(await store.bus.listeners('nobody')).toBe(0);
    expect(await store.queue.remaining()).toBe(0);
    await store.close();

    const wrong = 'not-the-' + secret;
    const logged: string[] = [];
    const bad = createRedisQueue({
      url: `redis://:${wrong}@127.0.0.1:${redis.port}/0`,
      name: 'pw',
      worker: { blockSeconds: 0.2, log: (m) => logged.push(m) },
    });
    void bad.next().catch((e: unknown) => logged.push(String(e)));
    await until('an error logged', () => logged.length > 0);
    await bad.close();
    expect(logged.join('\n')).toMatch(/WRONGPASS|NOAUTH/);
    expect(logged.join('\n')).not.toContain(secret);
  });
});
