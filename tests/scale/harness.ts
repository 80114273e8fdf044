// Shared set-up of the scale-out tests: a real redis-server, fake worker processes on it, and
// waiting on the events they log (no sleeps: every wait is for a condition, bounded).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEventBus, type EventBus } from '../../server/api/redis/bus.ts';
import { createRedisQueue, type RedisPromptQueue } from '../../server/api/redis/queue.ts';
import { redisAvailable, startRedis, type TestRedis } from '../helpers/redis.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Skipped without redis-server locally, failed under CI (as the browser tests do with chromium). */
export const noRedis = !redisAvailable() && process.env.CI !== 'true';
if (noRedis)
  console.warn(
    'redis-server is not installed: the scale-out tests are skipped (apt-get install redis-server)',
  );

export const TIMING = { stepMs: 150, lockDuration: 800, stalledInterval: 300, backoffMs: 100 };

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-scale-'));
}

export interface FakeWorker {
  name: string;
  child: ChildProcess;
  /** Resolves once the process has exited. */
  exited: Promise<void>;
}

export function startWorker(
  url: string,
  queueName: string,
  dataDir: string,
  name: string,
  timing: Partial<typeof TIMING> = {},
): FakeWorker {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'fake-worker.ts')], {
    env: {
      ...process.env,
      RDFLOW_FAKE_WORKER: JSON.stringify({
        url,
        name: queueName,
        dataDir,
        worker: name,
        ...TIMING,
        ...timing,
      }),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { name, child, exited };
}

export async function stopWorker(w: FakeWorker): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  await w.exited;
}

export function events(dataDir: string): string[] {
  const file = path.join(dataDir, 'events.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for a line of the events log matching `re`, returns it. */
export function untilEvent(dataDir: string, re: RegExp, ms?: number): Promise<string> {
  return until(`event ${re}`, () => events(dataDir).find((l) => re.test(l)), ms);
}

export const item = (promptId: string, extraData: Record<string, unknown> = {}) => ({
  promptId,
  prompt: {},
  extraData,
  outputs: [],
});

/** A real redis-server with an API side (queue + bus) and fake worker processes on it. */
export interface Deployment {
  redis: TestRedis;
  dataDir: string;
  api: RedisPromptQueue;
  bus: EventBus;
  workers: FakeWorker[];
  /** Starts one more worker process and waits until it is ready. */
  addWorker(name: string, timing?: Partial<typeof TIMING>): Promise<FakeWorker>;
  stop(): Promise<void>;
}

export async function startDeployment(
  name: string,
  opts: { appendonly?: boolean; workers: string[]; timing?: Partial<typeof TIMING> },
): Promise<Deployment> {
  const redis = await startRedis({ appendonly: opts.appendonly });
  const dataDir = tempDir();
  const d: Deployment = {
    redis,
    dataDir,
    api: createRedisQueue({ url: redis.url, name }),
    bus: createEventBus({ url: redis.url, name }),
    workers: [],
    async addWorker(workerName, timing = opts.timing) {
      const w = startWorker(redis.url, name, dataDir, workerName, timing);
      d.workers.push(w);
      await untilEvent(dataDir, new RegExp(`^${workerName} ready`));
      return w;
    },
    async stop() {
      await Promise.all(d.workers.map(stopWorker));
      await d.api.close();
      await d.bus.close();
      await redis.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await Promise.all(opts.workers.map((w) => d.addWorker(w)));
  return d;
}
