// Real rdflow processes on a real redis-server (tests/scale/process.ts): API servers and workers
// sharing one output and data folder, started in parallel, each awaited until it says READY.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');

/** Short locks and stalled checks: a worker killed -9 is taken over within about a second. */
export const FAST_QUEUE = {
  RDFLOW_QUEUE_LOCK_MS: '1000',
  RDFLOW_QUEUE_STALLED_MS: '400',
  RDFLOW_QUEUE_BACKOFF_MS: '100',
};

export interface Proc {
  name: string;
  child: ChildProcess;
  /** http://127.0.0.1:PORT for an API server; '' for a worker. */
  url: string;
  stderr(): string;
  exited: Promise<void>;
}

export interface Cluster {
  redis: TestRedis;
  root: string;
  apis: Proc[];
  workers: Proc[];
  /** Starts one more process of the deployment. */
  add(kind: 'serve' | 'worker', name: string, ...flags: string[]): Promise<Proc>;
  stop(): Promise<void>;
}

function launch(
  kind: 'serve' | 'worker',
  name: string,
  root: string,
  url: string,
  env: Record<string, string>,
  flags: string[],
): Promise<Proc> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('tests', 'scale', 'process.ts'), kind, root, url, ...flags],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY( (\d+))?/.exec(out);
      if (m) {
        const port = m[2];
        resolve({ name, child, url: port ? `http://127.0.0.1:${port}` : '', stderr: () => err, exited });
      }
    });
    void exited.then(() => reject(new Error(`${kind} ${name} exited before it was ready: ${err}`)));
  });
}

export async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
}

export async function startCluster(opts: {
  /** Flags per API server, e.g. [['--workers', '0'], ['--workers', '0']]. */
  apis: string[][];
  workers: number;
  env?: Record<string, string>;
  appendonly?: boolean;
  /** Redis asks for this password (the URL carries it). */
  password?: string;
  /** Prepares the shared folder before any process starts (a model in models/). */
  prepare?(root: string): Promise<void>;
}): Promise<Cluster> {
  const redis = await startRedis({ appendonly: opts.appendonly, password: opts.password });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-cluster-'));
  await opts.prepare?.(root);
  const env = { ...FAST_QUEUE, ...opts.env };
  const c: Cluster = {
    redis,
    root,
    apis: [],
    workers: [],
    async add(kind, name, ...flags) {
      const p = await launch(kind, name, root, redis.url, env, flags);
      (kind === 'serve' ? c.apis : c.workers).push(p);
      return p;
    },
    async stop() {
      await Promise.all([...c.apis, ...c.workers].map(stopProc));
      await redis.stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all([
      ...opts.apis.map((flags, i) => c.add('serve', `api${i + 1}`, ...flags)),
      ...Array.from({ length: opts.workers }, (_, i) => c.add('worker', `w${i + 1}`)),
    ]);
  } catch (err) {
    await c.stop();
    throw err;
  }
  return c;
}
