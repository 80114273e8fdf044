// The BullMQ prompt queue on a real redis-server, seen from several connections (as several API
// servers and workers would): ComfyUI's order, front, delete and has from any of them; the worker
// side's locks, requeue, retries with backoff, no retry for unrecoverable errors, and a job
// recovered from a worker that stopped renewing its lock (and given up after too many).
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisQueue,
  jobIdOf,
  type RedisPromptQueue,
  type RedisWorkerQueue,
} from '../../server/api/redis/queue.ts';
import type { QueueItem } from '../../server/api/queue.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { item, noRedis, until } from './harness.ts';

const ids = (items: QueueItem[]) => items.map((i) => i.promptId);
const FAST = { lockDuration: 600, stalledInterval: 200, blockSeconds: 0.2 };

describe.skipIf(noRedis)('Redis prompt queue', () => {
  let redis: TestRedis;
  let n = 0;
  const open: { close(): Promise<void> }[] = [];
  const api = (name: string, o: { attempts?: number } = {}): RedisPromptQueue => {
    const q = createRedisQueue({ url: redis.url, name, backoffMs: 50, ...o });
    open.push(q);
    return q;
  };
  const worker = (name: string, o: { maxStalledCount?: number } = {}): RedisWorkerQueue => {
    const q = createRedisQueue({ url: redis.url, name, backoffMs: 50, worker: { ...FAST, ...o } });
    open.push(q);
    return q;
  };
  const fresh = () => `q${++n}`;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((q) => q.close()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('keeps ComfyUI order across connections: FIFO numbers, latest front first, delete and has anywhere', async () => {
    const name = fresh();
    const a = api(name);
    const b = api(name);
    expect((await a.enqueue(item('p1'))).number).toBe(0);
    expect((await b.enqueue(item('p2'))).number).toBe(1);
    expect((await b.enqueue(item('f1'), { front: true })).number).toBe(-2);
    expect((await a.enqueue(item('f2'), { front: true })).number).toBe(-3);
    // Prompt ids BullMQ would refuse as job ids.
    await a.enqueue(item('a:b'));
    await b.enqueue(item('123'));
    expect(ids(await b.pending())).toEqual(['f2', 'f1', 'p1', 'p2', 'a:b', '123']);
    expect(await a.remaining()).toBe(6);
    expect(await b.has('a:b')).toBe(true);
    expect(await b.has('nope')).toBe(false);

    expect(await b.delete(['p1', 'a:b', 'nope'])).toEqual(['p1', 'a:b']);
    expect(ids(await a.pending())).toEqual(['f2', 'f1', 'p2', '123']);
    expect(await a.has('p1')).toBe(false);

    // An explicit number goes first when below every pending number, else last.
    await a.enqueue({ ...item('low'), number: -100 });
    await a.enqueue({ ...item('mid'), number: 0.5 });
    expect(ids(await b.pending())).toEqual(['low', 'f2', 'f1', 'p2', '123', 'mid']);
    expect((await b.pending()).map((i) => i.number)).toEqual([-100, -3, -2, 1, 5, 0.5]);

    await b.clear();
    expect(await a.pending()).toEqual([]);
    expect(await a.remaining()).toBe(0);
  });

  it('a worker takes the first prompt under its lock; every connection sees it running; complete frees the id', async () => {
    const name = fresh();
    const a = api(name);
    const w1 = worker(name);
    const w2 = worker(name);
    await a.enqueue(item('one'));
    await a.enqueue(item('two'));
    await a.enqueue(item('three'));
    const first = await w1.next();
    const second = await w2.next();
    expect([first?.promptId, second?.promptId]).toEqual(['one', 'two']);
    expect(ids(await a.runningAll()).sort()).toEqual(['one', 'two']);
    expect((await a.running())?.promptId).toMatch(/one|two/);
    expect(ids(await a.pending())).toEqual(['three']);
    expect(await a.remaining()).toBe(3);
    // A running prompt is not pending: delete leaves it (the route interrupts it instead).
    expect(await a.delete(['one'])).toEqual([]);
    expect(w1.lockSignal('one')?.aborted).toBe(false);

    await w1.complete('one');
    expect(await a.has('one')).toBe(false);
    expect(w1.lockSignal('one')).toBeUndefined();
    await expect(w1.complete('one')).rejects.toThrow('This worker does not hold prompt one.');
    // The id can be queued again once finished.
    await a.enqueue(item('one'));
    expect(ids(await a.pending())).toEqual(['three', 'one']);
  });

  it('requeue puts a held prompt back first in line with its new data and number', async () => {
    const name = fresh();
    const a = api(name);
    const w = worker(name);
    await a.enqueue(item('x'));
    await a.enqueue(item('y'));
    const x = (await w.next())!;
    await w.requeue({ ...x, extraData: { rdflow_resume: true } });
    const pending = await a.pending();
    expect(ids(pending)).toEqual(['x', 'y']);
    expect(pending[0]).toMatchObject({ number: 0, extraData: { rdflow_resume: true } });
    expect((await w.next())?.promptId).toBe('x');
  });

  it('a worker failure is retried with backoff, then fails; an unrecoverable one never retries', async () => {
    const name = fresh();
    const a = api(name, { attempts: 2 });
    const w = worker(name);
    await a.enqueue(item('oom'));
    const taken = (await w.next())!;
    expect(taken.restarts).toBeUndefined();
    expect(w.willRetry('oom', new Error('out of memory'))).toBe(true);
    expect(await w.fail('oom', new Error('out of memory'))).toBe('retry');
    expect(ids(await a.pending())).toEqual(['oom']);
    const again = await until('the retry', () => w.next());
    // Counted as a restart, so the runner continues its checkpoint.
    expect(again).toMatchObject({ promptId: 'oom', restarts: 1 });
    expect(w.willRetry('oom', new Error('out of memory'))).toBe(false);
    expect(await w.fail('oom', new Error('out of memory'))).toBe('failed');
    expect(await a.has('oom')).toBe(false);

    await a.enqueue(item('invalid'));
    await w.next();
    expect(w.willRetry('invalid', new Error('no model'), { unrecoverable: true })).toBe(false);
    expect(await w.fail('invalid', new Error('no model'), { unrecoverable: true })).toBe('failed');
    expect(await a.remaining()).toBe(0);
  });

  it('a prompt whose worker stopped renewing its lock runs again elsewhere, and is given up after too many', async () => {
    const name = fresh();
    const a = api(name);
    await a.enqueue(item('fatal'));
    const dead = worker(name);
    expect((await dead.next())?.promptId).toBe('fatal');
    // close() stops the renewal without finishing the job: as a worker killed -9 leaves it.
    await dead.close();

    const second = worker(name);
    const back = await until('the stalled prompt', () => second.next());
    expect(back).toMatchObject({ promptId: 'fatal', restarts: 1 });
    await second.close();

    const third = worker(name);
    const gaveUp: string[] = [];
    third.onGaveUp((i, reason) => gaveUp.push(`${i.promptId}: ${reason}`));
    await until('the give-up', async () => {
      await third.next();
      return gaveUp.length > 0;
    });
    expect(gaveUp).toEqual(['fatal: job stalled more than allowable limit']);
    expect(await a.has('fatal')).toBe(false);
  });

  it('aborts lockSignal when the lock is gone (Redis away longer than the lock), so the job stops here', async () => {
    const name = fresh();
    const a = api(name);
    const w = worker(name);
    await a.enqueue(item('held'));
    await w.next();
    const signal = w.lockSignal('held')!;
    const raw = new Redis(redis.port, '127.0.0.1');
    await raw.del(`rdflow:${name}:${jobIdOf('held')}:lock`);
    await raw.quit();
    await until('the lost lock', () => signal.aborted);
    expect(String(signal.reason)).toContain('The lock of prompt held was lost.');
  });
});
