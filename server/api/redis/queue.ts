// The prompt queue on one BullMQ queue in Redis, shared by many API servers and many workers.
//
// Order (ComfyUI's): a prompt is a job in BullMQ's wait list, whose tail is taken first. A plain
// prompt is pushed at the head (FIFO); `front: true` pushes it at the tail (BullMQ's `lifo`), so
// the latest front runs first, as ComfyUI's negative numbers do. `number` comes from one Redis
// counter (INCR), the same for every process. An explicit `number` goes first when it is below
// every pending number, else last: a list cannot sort by arbitrary keys, and such numbers are
// rare (documented in docs/scale-out.md).
//
// Jobs: the job id is the prompt id (escaped: BullMQ ids may not hold `:` or be integers), so
// `has`, `delete` and `/interrupt` find a prompt from any process. Finished jobs are removed at
// once (history lives in RedisHistory), so a prompt id can be queued again afterwards.
//
// Worker side (`worker: {...}`): `next()` takes a job under a lock (token = this worker) and
// renews the lock every lockDuration/2 while it runs. A worker that dies (kill -9) stops renewing:
// the lock expires, another worker's stalled check (every stalledInterval) puts the job back at
// the tail of the wait list — first in line — and it runs again with `restarts` ≥ 1, which makes
// the runner continue its checkpoint. After `maxStalledCount` such returns it fails instead
// (`onGaveUp`), the crash-loop guard the LMDB runner has as MAX_RESTARTS. `fail()` retries a job
// that failed for a worker reason (OOM, a model that would not load) `attempts - 1` times with
// exponential backoff; an UnrecoverableError (or `{ unrecoverable: true }`) is never retried.
//
// Learning that work is available, without polling: `next()` blocks in Redis (BZPOPMIN on
// BullMQ's marker key, which every add, due retry and returned stalled job sets) for at most
// `blockSeconds`, then answers undefined. The runner therefore calls next() again at once instead
// of waiting for wake() (`blocking: true` says so); the bounded block lets it run idle tasks and
// notice stop() in between. An API server with no worker never creates the blocking connection.
import { Queue, UnrecoverableError, Worker, type Job, type JobType } from 'bullmq';
import type { QueueItem, PromptQueue } from '../queue.ts';
import { ioredisOptions, parseRedisUrl, redactRedisUrl, type RedisTarget } from './url.ts';

/** What a job holds: the prompt, as the LMDB queue stores it. */
export interface PromptJobData {
  item: QueueItem;
}

export interface RedisQueueOptions {
  /** redis:// or rediss:// URL (see url.ts). */
  url: string;
  /** BullMQ queue name; every server and worker of one deployment uses the same (default `prompts`). */
  name?: string;
  /** Key prefix in Redis (default `rdflow`). */
  prefix?: string;
  /** Tries of a job that fails for a worker reason, the first included (default 3). */
  attempts?: number;
  /** First retry delay in ms, doubled each retry (default 5,000). */
  backoffMs?: number;
  /** Present in a process that runs jobs. */
  worker?: RedisWorkerOptions;
}

export interface RedisWorkerOptions {
  /** A job's lock lasts this long unless renewed (every half of it) (default 30,000 ms). */
  lockDuration?: number;
  /** How often this worker looks for jobs of dead workers (default 30,000 ms). */
  stalledInterval?: number;
  /** Times a job may come back from a dead worker before it fails (default 1, as MAX_RESTARTS). */
  maxStalledCount?: number;
  /** Longest time next() waits in Redis for a job before answering undefined (default 5 s). */
  blockSeconds?: number;
  /** Told when renewing a lock failed other than by losing it (Redis away), and such. */
  log?: (message: string) => void;
}

/** A worker failure's outcome: run again later, or failed for good (write its history now). */
export type FailOutcome = 'retry' | 'failed';

/** A running prompt and the node its worker reported last (for a client that reconnects). */
export interface RunningPrompt {
  item: QueueItem;
  node: string | null;
}

export interface RedisPromptQueue extends PromptQueue {
  /** Every running prompt, of all workers (`running()` answers the first of these). */
  runningAll(): Promise<QueueItem[]>;
  /** The same with the node each one executes now, as its worker reported it. */
  runningNodes(): Promise<RunningPrompt[]>;
  /** The deployment's connection, password hidden: for logs and /system_stats. */
  readonly redacted: string;
  close(): Promise<void>;
}

export interface RedisWorkerQueue extends RedisPromptQueue {
  /** next() waits in Redis for work: do not wait for wake() after it answers undefined. */
  readonly blocking: true;
  /**
   * Aborted when this worker lost the lock of the prompt it runs (its renewal found another
   * owner or none: Redis was away longer than the lock): another worker may run it now, so stop
   * it and write nothing. Undefined for a prompt this worker does not hold.
   */
  lockSignal(promptId: string): AbortSignal | undefined;
  /**
   * Forgets a prompt whose lock was lost (stops renewing it, touches nothing in Redis): the worker
   * that took it over owns it now.
   */
  abandon(promptId: string): void;
  /** Records the node the held prompt executes now (one Redis write): see runningNodes(). */
  reportNode(promptId: string, node: string | null): void;
  /** Whether `fail(promptId, error)` would retry (so the runner writes history only when not). */
  willRetry(promptId: string, error: Error, opts?: { unrecoverable?: boolean }): boolean;
  /** The held prompt failed for a worker reason: retried with backoff while tries are left. */
  fail(promptId: string, error: Error, opts?: { unrecoverable?: boolean }): Promise<FailOutcome>;
  /**
   * A prompt came back from dead workers more than maxStalledCount times and was failed without
   * running (it may be what kills them): its history must be written by the listener.
   */
  onGaveUp(listener: (item: QueueItem, reason: string) => void): () => void;
}

const PENDING_STATES: readonly JobType[] = ['wait', 'paused', 'prioritized', 'delayed'];

/** BullMQ job ids may not contain `:` nor be integers; prompt ids may be either. */
export function jobIdOf(promptId: string): string {
  return `p-${promptId.replace(/[%:]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}`;
}

/** The queue item of a job, with `restarts` counting the returns from dead or failing workers. */
function itemOf(job: Job<PromptJobData>): QueueItem {
  const item = job.data.item;
  const restarts = Math.max(item.restarts ?? 0, job.stalledCounter + job.attemptsMade);
  return restarts > 0 ? { ...item, restarts } : item;
}

interface Held {
  job: Job<PromptJobData>;
  lost: AbortController;
  renew: NodeJS.Timeout;
}

export function createRedisQueue(opts: RedisQueueOptions & { worker: RedisWorkerOptions }): RedisWorkerQueue;
export function createRedisQueue(opts: RedisQueueOptions): RedisPromptQueue;
export function createRedisQueue(opts: RedisQueueOptions): RedisPromptQueue | RedisWorkerQueue {
  const target: RedisTarget = parseRedisUrl(opts.url);
  const name = opts.name ?? 'prompts';
  const prefix = opts.prefix ?? 'rdflow';
  const connection = ioredisOptions(target);
  const queue = new Queue<PromptJobData>(name, { connection, prefix });
  // Errors of a lost connection are retried by ioredis; an unhandled 'error' would end the process.
  queue.on('error', () => undefined);
  const numberKey = `${prefix}:${name}:number`;
  const attempts = opts.attempts ?? 3;
  const backoffMs = opts.backoffMs ?? 5000;

  const pendingJobs = async (): Promise<Job<PromptJobData>[]> => {
    // asc: the wait list's tail (taken first) first; then retries waiting out their backoff.
    const waiting = await queue.getJobs(['wait', 'paused', 'prioritized'], 0, -1, true);
    const delayed = await queue.getJobs(['delayed'], 0, -1, true);
    return [...waiting, ...delayed].filter((j): j is Job<PromptJobData> => j !== undefined);
  };

  const base: RedisPromptQueue = {
    redacted: target.redacted,
    async enqueue(item, o = {}) {
      const client = await queue.client;
      const n = Number(await client.runCommand('incr', [numberKey])) - 1;
      const number = item.number ?? (o.front ? -n : n);
      let first = o.front === true;
      if (!first && item.number !== undefined) {
        const pending = await pendingJobs();
        first = pending.length > 0 && pending.every((j) => j.data.item.number > number);
      }
      const full: QueueItem = { ...item, number };
      await queue.add(
        'prompt',
        { item: full },
        {
          jobId: jobIdOf(item.promptId),
          lifo: first,
          attempts,
          backoff: { type: 'exponential', delay: backoffMs },
          removeOnComplete: true,
          removeOnFail: true,
        },
      );
      return full;
    },
    async next() {
      throw new Error('This process runs no worker (--workers 0): it cannot take prompts from the queue.');
    },
    async running() {
      return (await base.runningAll())[0];
    },
    async runningAll() {
      return (await base.runningNodes()).map((r) => r.item);
    },
    async runningNodes() {
      const active = await queue.getJobs(['active'], 0, -1, true);
      return active
        .filter((j) => j !== undefined)
        .map((j) => {
          const p = j.progress as { node?: unknown } | number;
          const node = typeof p === 'object' && typeof p.node === 'string' ? p.node : null;
          return { item: itemOf(j), node };
        });
    },
    async pending() {
      return (await pendingJobs()).map((j) => j.data.item);
    },
    async remaining() {
      const c = await queue.getJobCounts('active', ...PENDING_STATES);
      return Object.values(c).reduce((a, b) => a + b, 0);
    },
    async delete(ids) {
      const removed: string[] = [];
      for (const id of ids) {
        const state = await queue.getJobState(jobIdOf(id));
        if (!(PENDING_STATES as readonly string[]).includes(state === 'waiting' ? 'wait' : state)) continue;
        // remove() refuses a locked job: one a worker took meanwhile is not deleted.
        if ((await queue.remove(jobIdOf(id))) === 1) removed.push(id);
      }
      return removed;
    },
    async clear() {
      await queue.drain(true);
    },
    async requeue() {
      throw new Error('This process runs no worker: it holds no prompt to queue again.');
    },
    async complete() {
      throw new Error('This process runs no worker: it holds no prompt to complete.');
    },
    async has(promptId) {
      const state = await queue.getJobState(jobIdOf(promptId));
      return state !== 'unknown' && state !== 'completed' && state !== 'failed';
    },
    async close() {
      await queue.close();
    },
  };
  if (!opts.worker) return base;
  return withWorker(base, opts.worker, { name, prefix, connection, attempts });
}

function withWorker(
  base: RedisPromptQueue,
  w: RedisWorkerOptions,
  q: { name: string; prefix: string; connection: ReturnType<typeof ioredisOptions>; attempts: number },
): RedisWorkerQueue {
  const lockDuration = w.lockDuration ?? 30_000;
  const log = w.log ?? (() => undefined);
  const worker = new Worker<PromptJobData>(q.name, null, {
    connection: q.connection,
    prefix: q.prefix,
    autorun: false,
    lockDuration,
    stalledInterval: w.stalledInterval ?? 30_000,
    maxStalledCount: w.maxStalledCount ?? 1,
    drainDelay: w.blockSeconds ?? 5,
  });
  worker.on('error', (err) => log(`queue worker: ${redactRedisUrl(err.message)}`));
  const token = worker.id;
  const held = new Map<string, Held>();
  const gaveUp = new Set<(item: QueueItem, reason: string) => void>();
  let stalledStarted = false;

  // getNextJob fails a job that came back from dead workers too often, then emits this.
  worker.on('failed', (job, err) => {
    if (!job || held.has(job.data.item.promptId)) return;
    for (const l of gaveUp) l(job.data.item, err.message);
  });

  const hold = (job: Job<PromptJobData>): QueueItem => {
    const item = itemOf(job);
    const lost = new AbortController();
    const renew = setInterval(() => {
      job.extendLock(token, lockDuration).then(
        (ok) => {
          if (ok === 1 || lost.signal.aborted) return;
          log(`lost the lock of prompt ${item.promptId}: another worker may run it; stopping it here`);
          lost.abort(new Error(`The lock of prompt ${item.promptId} was lost.`));
        },
        (err: unknown) =>
          log(`could not renew the lock of prompt ${item.promptId}: ${redactRedisUrl(String(err))}`),
      );
    }, lockDuration / 2);
    held.set(item.promptId, { job, lost, renew });
    return item;
  };
  const release = (promptId: string): Held => {
    const h = held.get(promptId);
    if (!h) throw new Error(`This worker does not hold prompt ${promptId}.`);
    clearInterval(h.renew);
    held.delete(promptId);
    return h;
  };
  const asError = (error: Error, o: { unrecoverable?: boolean }): Error => {
    if (!o.unrecoverable || error instanceof UnrecoverableError) return error;
    return new UnrecoverableError(error.message);
  };

  return {
    ...base,
    blocking: true,
    async next() {
      if (!stalledStarted) {
        stalledStarted = true;
        await worker.startStalledCheckTimer();
      }
      const job = (await worker.getNextJob(token, { block: true })) as Job<PromptJobData> | undefined;
      return job ? hold(job) : undefined;
    },
    lockSignal(promptId) {
      return held.get(promptId)?.lost.signal;
    },
    async requeue(item) {
      const { job } = release(item.promptId);
      // Back at the tail of the wait list: it runs next, on whichever worker is free.
      await job.updateData({ item });
      await job.moveToWait(token);
    },
    async complete(promptId) {
      const { job } = release(promptId);
      await job.moveToCompleted(null, token, false);
    },
    abandon(promptId) {
      if (held.has(promptId)) release(promptId);
    },
    reportNode(promptId, node) {
      const h = held.get(promptId);
      h?.job.updateProgress({ node }).catch(() => undefined);
    },
    willRetry(promptId, error, o = {}) {
      const h = held.get(promptId);
      if (!h) return false;
      const e = asError(error, o);
      return (
        !(e instanceof UnrecoverableError) && h.job.attemptsMade + 1 < (h.job.opts.attempts ?? q.attempts)
      );
    },
    async fail(promptId, error, o = {}) {
      const retry = this.willRetry(promptId, error, o);
      const { job } = release(promptId);
      await job.moveToFailed(asError(error, o), token, false);
      return retry ? 'retry' : 'failed';
    },
    onGaveUp(listener) {
      gaveUp.add(listener);
      return () => gaveUp.delete(listener);
    },
    async close() {
      for (const id of [...held.keys()]) release(id);
      await worker.close(true);
      await base.close();
    },
  };
}
