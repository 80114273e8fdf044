// Child processes for measurements: one-shot commands timed from spawn to exit with their peak RSS
// (bench/rss-preload.mjs), long-lived task workers driven over IPC (bench/worker.ts), and the real
// server (`rdflow serve`) in its own process.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RDFLOW_BIN = path.join(REPO, 'bin', 'rdflow.js');
const PRELOAD = pathToFileURL(path.join(REPO, 'bench', 'rss-preload.mjs')).href;
const WORKER = path.join(REPO, 'bench', 'worker.ts');

/** Node arguments that run a TypeScript file through tsx's loader. */
export function tsxArgs(file: string, ...args: string[]): string[] {
  return ['--import', 'tsx', file, ...args];
}

export interface ChildRun {
  /** Spawn to exit, including process start and module loading. */
  readonly ms: number;
  /** Peak resident set of the node process itself (not of its ffmpeg children), bytes. */
  readonly peakRss: number;
  readonly stdout: string;
}

function tail(text: string, n = 2000): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/** Runs `node [preload] ...args` to completion; throws with its stderr when it fails. */
export function runNode(args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const rssFile = path.join(os.tmpdir(), `rdflow-bench-rss-${randomUUID()}`);
  return new Promise<ChildRun>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', PRELOAD, ...args], {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, RDFLOW_BENCH_RSS_FILE: rssFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      let peakKb = NaN;
      try {
        peakKb = Number(readFileSync(rssFile, 'utf8'));
        rmSync(rssFile, { force: true });
      } catch {
        // reported below
      }
      if (code !== 0 || !Number.isFinite(peakKb)) {
        const why = code !== 0 ? `exit ${code ?? signal}` : 'no peak RSS written';
        reject(new Error(`node ${args.join(' ')}: ${why}\n${tail(stderr || stdout)}`));
        return;
      }
      resolve({ ms, peakRss: peakKb * 1024, stdout });
    });
  });
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** A long-lived child (bench/worker.ts) that runs named tasks one at a time and keeps state between. */
export interface TaskWorker {
  call<T>(task: string, args?: unknown): Promise<T>;
  readonly pid: number;
  close(): Promise<void>;
}

export function startWorker(): TaskWorker {
  const child: ChildProcess = fork(WORKER, [], {
    cwd: REPO,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 1;
  child.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(m.error));
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`bench worker exited (${code})`));
    pending.clear();
  });
  return {
    pid: child.pid ?? -1,
    call<T>(task: string, args?: unknown): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, task, args });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}

export interface ServerChild {
  readonly url: string;
  readonly pid: number;
  /** Resident set now (VmRSS of /proc/PID/status), bytes. */
  rss(): number;
  close(): Promise<void>;
}

/** VmRSS / VmHWM of a live process in bytes, from /proc (Linux). */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]) * 1024;
}

/** `node bin/rdflow.js serve --port 0` with its own folders; resolves once it listens. */
/** A running `rdflow` command: its process, the match of its ready line, its output so far. */
export interface RdflowChild {
  child: ChildProcess;
  match: RegExpExecArray;
  out: () => string;
  close(): Promise<void>;
}

/** SIGTERM (a graceful stop: a server or worker hands its prompt back), SIGKILL if it lingers 10 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** `node bin/rdflow.js ARGS` in its own process, resolved once its stdout matches `ready`. */
export function rdflow(args: readonly string[], ready: RegExp): Promise<RdflowChild> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RDFLOW_BIN, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const match = ready.exec(out);
      if (!match) return;
      child.stdout.off('data', onData);
      resolve({ child, match, out: () => out, close: () => stopChild(child) });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      reject(new Error(`rdflow ${args[0]} exited (${code}) before it was ready:\n${tail(out)}`)),
    );
  });
}

export async function startServerChild(dirs: { modelsDir: string; outputDir: string }): Promise<ServerChild> {
  const server = await rdflow(
    ['serve', '--port', '0', '--models-dir', dirs.modelsDir, '--output-dir', dirs.outputDir],
    /listening on (http:\/\/\S+)/,
  );
  const pid = server.child.pid!;
  return {
    url: server.match[1].replace(/\/$/, ''),
    pid,
    rss: () => procStatusBytes(pid, 'VmRSS'),
    close: server.close,
  };
}
