// A real redis-server for a test: its own free port and temp folder, stopped afterwards. Debian's
// redis-server must be installed (`apt-get install redis-server`); `redisAvailable()` says so.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** Shuts it down (SIGTERM: with appendonly it writes nothing it has not written already). */
  stop(): Promise<void>;
  /** Stops it and starts it again on the same port and folder (the AOF is read back). */
  restart(): Promise<void>;
  /** kill -9: no shutdown save. */
  kill(): Promise<void>;
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function ping(port: number, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.setTimeout(500, () => s.destroy());
    s.on('connect', () => s.write(password === undefined ? 'PING\r\n' : `AUTH ${password}\r\nPING\r\n`));
    s.on('data', (d) => {
      got += d.toString();
      // Done at PONG or at an error reply (with AUTH, +OK comes first).
      if (got.includes('+PONG') || got.startsWith('-') || got.includes('\r\n-')) {
        s.end();
        resolve(got.includes('+PONG'));
      }
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(got.includes('+PONG')));
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`redis-server: ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedis(opts: { appendonly?: boolean; password?: string } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    opts.appendonly ? 'yes' : 'no',
    // Every write on disk before the reply: a test that kills it must find what it was told.
    '--appendfsync',
    'always',
    '--daemonize',
    'no',
    '--logfile',
    path.join(dir, 'redis.log'),
    ...(opts.password !== undefined ? ['--requirepass', opts.password] : []),
  ];
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    const c = child;
    await waitFor(async () => c.exitCode === null && (await ping(port, opts.password)), 'no PONG');
  };
  const halt = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
    await waitFor(async () => !(await ping(port, opts.password)), 'still answers');
  };
  await launch();
  return {
    url: `redis://${opts.password !== undefined ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${port}/0`,
    port,
    dir,
    async stop() {
      await halt('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await halt('SIGTERM');
      await launch();
    },
    async kill() {
      await halt('SIGKILL');
    },
  };
}
