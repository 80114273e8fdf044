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
import type { HistoryStore, PromptQueue } from './queue.ts';
import { serve, type RunningServer, type ServerParts } from './serve.ts';
import { resolveSettings, type ServeOptions } from './settings.ts';
import { openStore } from './store.ts';

export type { Limits } from './limits.ts';
export type { PromptQueue, HistoryStore, QueueItem, HistoryEntry } from './queue.ts';
export type { RunningServer } from './serve.ts';
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
}

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

export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  // Before anything is opened: a bind the security policy refuses fails here.
  const settings = resolveSettings(opts);
  const nodes = serverNodes(opts.nodes ?? (await shippedNodes()));
  const store = queueAndHistory(opts, settings.dataDir);
  let server: RunningServer;
  try {
    server = await serve(settings, {
      nodes,
      models: opts.runtime ?? getRuntime(),
      queue: store.queue,
      history: store.history,
      listModels: confinedModelNames,
    });
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const closeStore = store.close;
  if (!closeStore) return server;
  let closing: Promise<void> | undefined;
  return {
    ...server,
    close() {
      closing ??= server.close().then(closeStore);
      return closing;
    },
  };
}
