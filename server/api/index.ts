// `startServer`: where the server is assembled. It takes the parts its caller passes (the CLI's
// `serve` passes all of them) and makes the rest: the shipped node set, with LoadVideoModel
// confined to the models folder; the process's model runtime; the embedded LMDB queue and history
// in the data dir, which it then also closes. serve.ts runs the server over them.
// An assembly point, like server/cli.ts: the one module of server/api/ that may import nodes/.
import type { AnyNodeDef } from '../engine/define.ts';
import { getRuntime } from '../runtime/index.ts';
import {
  confinedModelNames,
  loadVideoModelNode,
  loadVideoModelNodeForServer,
} from '../../nodes/load-video-model.ts';
import type { SharedParts } from './cluster.ts';
import type { HistoryStore, PromptQueue } from './queue.ts';
import type { RedisWorkerOptions } from './redis/queue.ts';
import { openRedisStore, type RedisStore } from './redis/store.ts';
import { serve, type RunningServer, type ServerParts } from './serve.ts';
import { resolveSettings, type ServeOptions } from './settings.ts';
import { openStore } from './store.ts';
import { runWorker, type RunningWorker } from './worker.ts';

export type { Limits } from './limits.ts';
export type { PromptQueue, HistoryStore, QueueItem, HistoryEntry } from './queue.ts';
export type { RunningServer } from './serve.ts';
export type { RunningWorker } from './worker.ts';
export { parseRedisUrl, RedisUrlError } from './redis/url.ts';
export { CRASHED_AGAIN_MESSAGE, CRASHED_MESSAGE } from './runner.ts';

export interface ServerOptions extends ServeOptions {
  /** Node types; default every node rdflow ships (nodes/index.ts). */
  nodes?: readonly AnyNodeDef[];
  /** Loads the models prompts name (lent to nodes, released by POST /free); default the process's runtime. */
  runtime?: ServerParts['models'];
  /**
   * The prompt queue and history, both or neither; left open by close(). Default the embedded
   * LMDB store in the data dir, opened here and closed by close().
   */
  queue?: PromptQueue;
  history?: HistoryStore;
  /** History entries the default store keeps (oldest dropped first; default 10,000). */
  historyLimit?: number;
  /**
   * A shared queue instead of the embedded store (scale-out: docs/scale-out.md): many API servers
   * and workers on one Redis. Excludes `queue`/`history`.
   */
  sharedQueue?: SharedQueueOptions;
}

export interface SharedQueueOptions {
  /** redis://[[user]:password@]host[:port][/db] or rediss://… */
  url: string;
  /** Whether this process also runs prompts (default true; `rdflow serve --workers 0`: false). */
  worker?: boolean;
  /** Queue name and key prefix in Redis (defaults `prompts`, `rdflow`): one deployment's. */
  name?: string;
  prefix?: string;
  /** Tries of a prompt that fails for a reason of its worker, the first included (default 3). */
  attempts?: number;
  /** First retry delay in ms, doubled each retry (default 5,000). */
  backoffMs?: number;
  /** Lock and stalled-check timing of the worker side (defaults in redis/queue.ts). */
  timing?: Pick<RedisWorkerOptions, 'lockDuration' | 'stalledInterval' | 'blockSeconds'>;
}

export type WorkerOptions = Omit<ServerOptions, 'queue' | 'history' | 'sharedQueue' | 'port' | 'host'> & {
  sharedQueue: Omit<SharedQueueOptions, 'worker'>;
};

async function shippedNodes(): Promise<readonly AnyNodeDef[]> {
  const mod = (await import('../../nodes/index.ts')) as { allNodes: readonly AnyNodeDef[] };
  return mod.allNodes;
}

/**
 * A prompt over HTTP comes from whoever can reach the server: its LoadVideoModel takes model names
 * from the models folder only (the CLI's accepts any path the user types).
 */
function serverNodes(nodes: readonly AnyNodeDef[]): readonly AnyNodeDef[] {
  return nodes.map((n) =>
    n === (loadVideoModelNode as AnyNodeDef) ? (loadVideoModelNodeForServer as AnyNodeDef) : n,
  );
}

/** The caller's queue and history (left open), or the embedded store, with close() to end it. */
function queueAndHistory(
  opts: ServerOptions,
  dataDir: string,
): { queue: PromptQueue; history: HistoryStore; close?: () => Promise<void> } {
  if (opts.queue && opts.history) return { queue: opts.queue, history: opts.history };
  if (opts.queue || opts.history) {
    throw new Error('startServer: pass both queue and history, or neither (for the embedded store)');
  }
  return openStore(dataDir, { historyLimit: opts.historyLimit });
}

/** The deployment's Redis store, and what this process's server or worker takes from it. */
function openShared(
  o: SharedQueueOptions,
  log: (m: string) => void,
): { store: RedisStore; shared: SharedParts } {
  const worker: RedisWorkerOptions | undefined =
    o.worker === false ? undefined : { blockSeconds: 2, ...o.timing, log };
  const names = { url: o.url, name: o.name, prefix: o.prefix, attempts: o.attempts, backoffMs: o.backoffMs };
  const common = (store: RedisStore) => ({
    bus: store.bus,
    redacted: store.redacted,
    connected: () => store.connected(),
  });
  if (!worker) {
    const store = openRedisStore(names);
    return { store, shared: { queue: store.queue, ...common(store) } };
  }
  const store = openRedisStore({ ...names, worker });
  const shared: SharedParts = { queue: store.queue, worker: store.queue, ...common(store) };
  return { store, shared };
}

export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  // Before anything is opened: a bind the security policy refuses fails here.
  const settings = resolveSettings(opts);
  const nodes = serverNodes(opts.nodes ?? (await shippedNodes()));
  if (opts.sharedQueue && (opts.queue || opts.history)) {
    throw new Error('startServer: a shared queue brings its own queue and history');
  }
  const opened = opts.sharedQueue && openShared(opts.sharedQueue, settings.log);
  const store = opened
    ? { queue: opened.store.queue, history: opened.store.history, close: () => opened.store.close() }
    : queueAndHistory(opts, settings.dataDir);
  const server = await startOrClose(
    () =>
      serve(settings, {
        nodes,
        models: opts.runtime ?? getRuntime(),
        queue: store.queue,
        history: store.history,
        listModels: confinedModelNames,
        ...(opened && { shared: opened.shared }),
      }),
    store.close,
  );
  return store.close ? closingAlso(server, store.close) : server;
}

/** `start()`; when it fails, `close` (the store opened for it) first. */
async function startOrClose<T>(start: () => Promise<T>, close?: () => Promise<void>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    await close?.();
    throw err;
  }
}

/** `running` whose close() also closes what was opened for it, afterwards, once. */
function closingAlso<T extends { close(): Promise<void> }>(running: T, then: () => Promise<void>): T {
  let closing: Promise<void> | undefined;
  return {
    ...running,
    close() {
      closing ??= running.close().then(then);
      return closing;
    },
  };
}

/** A process that only runs prompts from a shared queue (`rdflow worker`). */
export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  const settings = resolveSettings(opts);
  const nodes = serverNodes(opts.nodes ?? (await shippedNodes()));
  const { store, shared } = openShared({ ...opts.sharedQueue, worker: true }, settings.log);
  const { worker } = shared;
  if (!worker) throw new Error('startWorker: the shared queue has no worker side');
  const running = await startOrClose(
    () =>
      runWorker(settings, {
        nodes,
        models: opts.runtime ?? getRuntime(),
        queue: store.queue,
        history: store.history,
        shared: { ...shared, worker },
      }),
    () => store.close(),
  );
  return closingAlso(running, () => store.close());
}
