// The main thread's side of the inference worker: opens sessions (once per model file + provider),
// runs them, releases them. The worker starts on first use and is unref'd while idle, so a CLI
// run exits when its work is done; a crashed worker fails its pending calls and is restarted.
import { readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ModelIO } from './io.ts';
import type { OpenResult, Request, Response, WireData, WireSessionOptions, WireTensor } from './protocol.ts';

export const PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Session creation options, tuned for CPU inference: the one place they are set. */
export function sessionOptions(provider: Provider): WireSessionOptions {
  return {
    executionProviders: [provider],
    intraOpNumThreads: os.availableParallelism(),
    // One graph at a time: parallel branches would compete with the intra-op threads.
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3,
    // Idle pool threads sleep instead of spinning: spinning keeps every core busy between ops,
    // starving the main thread (HTTP, WebSocket) and anything else on the machine.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** How to make a provider available, for the message shown when it cannot load. */
export function providerHint(provider: Provider): string {
  switch (provider) {
    case 'cuda':
      return (
        'onnxruntime-node downloads its CUDA libraries at install time (this project skips that download): ' +
        'install CUDA 12 and cuDNN 9, then run "ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node" (see docs/gpu.md)'
      );
    case 'tensorrt':
      return (
        'TensorRT needs the CUDA libraries of onnxruntime-node ("ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild ' +
        'onnxruntime-node") and TensorRT 10 on the library path (see docs/gpu.md)'
      );
    case 'webgpu':
      return 'WebGPU needs a GPU adapter: a Vulkan driver on Linux, D3D12 on Windows, Metal on macOS (see docs/gpu.md)';
    case 'cpu':
      return 'the CPU provider ships with onnxruntime-node; reinstall it ("npm rebuild onnxruntime-node")';
  }
}

export interface OpenSession {
  readonly key: string;
  readonly file: string;
  readonly provider: Provider;
  readonly io: ModelIO;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Pending {
  resolve: (r: Response) => void;
  reject: (e: Error) => void;
}

interface Entry {
  /** The model file's mtime and size when opened: a rewritten file gets a new session. */
  stamp: string;
  key: string;
  session: Promise<OpenSession>;
  lastUsed: number;
}

export interface SessionPoolOptions {
  /** Free system memory in bytes (default os.freemem); injectable for tests. */
  freeMemory?: () => number;
}

/**
 * Shared memory the feeds of a call are copied into, reused from call to call: the worker reads
 * them in place instead of receiving clones or moved buffers. A thread that allocates so little
 * collects its garbage rarely, so every feed buffer that landed there (a UNet sample per step, the
 * VAE's latent per clip) stayed in memory until then: tens of MiB over a long video.
 */
export class FeedStaging {
  /** Free blocks by size (powers of two, so a block serves any feed of up to its size). */
  private readonly free = new Map<number, SharedArrayBuffer[]>();

  /** The feeds as views on staged copies, and a release() to call once the worker is done with them. */
  stage(feeds: Record<string, WireTensor>): { feeds: Record<string, WireTensor>; release(): void } {
    const taken: SharedArrayBuffer[] = [];
    const staged: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const size = 2 ** Math.ceil(Math.log2(Math.max(t.data.byteLength, 64)));
      const block = this.free.get(size)?.pop() ?? new SharedArrayBuffer(size);
      taken.push(block);
      const view = sameView(t.data, block);
      view.set(t.data as never);
      staged[name] = { type: t.type, dims: t.dims, data: view };
    }
    let released = false;
    return {
      feeds: staged,
      release: () => {
        if (released) return;
        released = true;
        for (const b of taken) {
          let list = this.free.get(b.byteLength);
          if (!list) this.free.set(b.byteLength, (list = []));
          list.push(b);
        }
      },
    };
  }
}

/** A typed array of `data`'s kind and length over the start of `block`. */
function sameView(data: WireData, block: SharedArrayBuffer): WireData {
  const n = data.length;
  if (data instanceof Float32Array) return new Float32Array(block, 0, n);
  if (data instanceof Uint16Array) return new Uint16Array(block, 0, n);
  if (data instanceof Int32Array) return new Int32Array(block, 0, n);
  return new BigInt64Array(block, 0, n);
}

/** Sum of the sizes of the files in `file`'s folder: the model plus its external weights. */
function folderBytes(file: string): number {
  const dir = path.dirname(file);
  let total = 0;
  for (const name of readdirSync(dir)) {
    try {
      const st = statSync(path.join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // vanished meanwhile: not part of the estimate
    }
  }
  return total;
}

export class SessionPool {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** By provider|file. */
  private readonly sessions = new Map<string, Entry>();
  private created = 0;
  private serial = 0;
  private readonly freeMemory: () => number;
  private readonly staging = new FeedStaging();

  constructor(opts: SessionPoolOptions = {}) {
    this.freeMemory = opts.freeMemory ?? os.freemem;
  }

  /** sessionsCreated counts every session ever created; sessionsOpen those alive now. */
  stats(): { sessionsCreated: number; sessionsOpen: number } {
    return { sessionsCreated: this.created, sessionsOpen: this.sessions.size };
  }

  /**
   * The session for `file` on `provider`: created on first use, then the same one until the file
   * changes on disk or release(). Before creating one, closes least recently used sessions while
   * free memory is below what the new one needs (twice its files' size, a rough bound).
   */
  open(file: string, provider: Provider): Promise<OpenSession> {
    const id = `${provider}|${file}`;
    let st;
    try {
      st = statSync(file);
    } catch {
      return Promise.reject(new Error(`${file}: missing (the model folder changed since it was loaded)`));
    }
    const stamp = `${st.mtimeMs}:${st.size}`;
    const entry = this.sessions.get(id);
    if (entry && entry.stamp === stamp) {
      entry.lastUsed = ++this.serial;
      return entry.session;
    }
    if (entry) this.drop(id);
    this.makeRoom(2 * folderBytes(file), id);
    const key = `${id}|${stamp}`;
    const session = this.call({ op: 'open', key, file, options: sessionOptions(provider) }).then(
      (res) => {
        this.created++;
        const io = res as OpenResult;
        return { key, file, provider, io: { inputs: io.inputs, outputs: io.outputs } };
      },
      (e: unknown) => {
        if (this.sessions.get(id)?.key === key) this.sessions.delete(id);
        throw e;
      },
    );
    this.sessions.set(id, { stamp, key, session, lastUsed: ++this.serial });
    return session;
  }

  private makeRoom(needed: number, except: string): void {
    const lru = [...this.sessions.entries()]
      .filter(([id]) => id !== except)
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [id] of lru) {
      if (this.freeMemory() >= needed) return;
      this.drop(id);
    }
  }

  /** Forgets a session and closes it in the worker (after any call already queued there). */
  private drop(id: string): void {
    const entry = this.sessions.get(id);
    if (!entry) return;
    this.sessions.delete(id);
    entry.session.then(
      () => this.worker && this.call({ op: 'close', key: entry.key }).catch(() => {}),
      () => {},
    );
  }

  /**
   * Runs a session. The feeds are copied into shared memory the worker reads in place (see
   * FeedStaging), so the caller's buffers stay intact; `transfer` (feed buffers the caller gives up)
   * is accepted for callers that made them for this call, and needs no moving any more. Outputs
   * come back as buffers moved from the worker, new each call: onnxruntime-node copies every output
   * into a new ArrayBuffer even when given one to write into, so lent output buffers would only
   * leave that copy behind in the worker. An abort rejects at once; the worker finishes the call unseen.
   */
  async run(
    session: OpenSession,
    feeds: Record<string, WireTensor>,
    fetches: readonly string[],
    _transfer: ArrayBuffer[] = [],
    signal?: AbortSignal,
  ): Promise<Record<string, WireTensor>> {
    signal?.throwIfAborted();
    let s = session;
    const entry = this.sessions.get(`${session.provider}|${session.file}`);
    if (entry?.key === session.key) {
      // Still open: no stat per call (a UNet runs S times per clip). A file rewritten on disk is
      // picked up by the next loadModel(), which stamps the folder (LoadVideoModel calls it every run).
      entry.lastUsed = ++this.serial;
    } else {
      // Re-open after release(): model handles outlive a /free and keep working.
      s = await this.open(session.file, session.provider);
      // Released, closed or file changed while that was settling: open what is current now.
      if (this.sessions.get(`${s.provider}|${s.file}`)?.key !== s.key)
        s = await this.open(session.file, session.provider);
    }
    signal?.throwIfAborted();
    const staged = this.staging.stage(feeds);
    const res = this.call({ op: 'run', key: s.key, feeds: staged.feeds, fetches });
    // Reused once the worker has answered (or is gone), not when an abort stops waiting for it.
    res.then(staged.release, staged.release);
    if (!signal) return (await res) as Record<string, WireTensor>;
    return (await new Promise<unknown>((resolve, reject) => {
      const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      res.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    })) as Record<string, WireTensor>;
  }

  /** Drops every session (memory back to the system); later calls re-create what they need. */
  async release(): Promise<void> {
    const open = [...this.sessions.values()].map((e) => e.session);
    this.sessions.clear();
    await Promise.allSettled(open);
    if (this.worker) await this.call({ op: 'release' });
  }

  /**
   * Releases everything and ends the worker thread; resolves when it has ended. Calls still
   * waiting fail at once; one already running in onnxruntime is let finish first, because
   * stopping a thread inside a native call (worker.terminate(), or process.exit() with the
   * worker busy) aborts the whole process. Hosts: await this before process.exit().
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.stopped(w, new Error('runtime closed'));
    const ended = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref(); // keep the process alive until the thread has ended
    w.postMessage({ id: 0, op: 'shutdown' } satisfies Request);
    await ended;
  }

  /** Forgets worker `w` and its sessions; its unanswered calls fail with `err`. */
  private stopped(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = null;
    this.sessions.clear();
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./worker-boot.mjs', import.meta.url));
    w.unref();
    w.on('message', (res: Response) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (this.pending.size === 0) w.unref();
      p.resolve(res);
    });
    const fail = (err: Error) => this.stopped(w, new Error(`inference worker stopped: ${err.message}`));
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.worker = w;
    return w;
  }

  private call(req: DistributiveOmit<Request, 'id'>, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<Response>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Keep the process alive while the worker owes an answer.
      w.ref();
      w.postMessage({ ...req, id } as Request, transfer);
    }).then((res) => {
      if (!res.ok) throw new Error(res.error);
      return res.result;
    });
  }
}
