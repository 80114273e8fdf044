// `serve`: the ComfyUI-compatible HTTP + WebSocket server over the parts it is given — node types,
// a model runtime, a prompt queue and history — wired to an engine, a runner and a hub. It picks
// none of them itself (index.ts's startServer does, when its caller does not), so a shared queue
// or another runtime plugs in here unchanged. Knows nothing of tensors: it moves prompts, events
// and files.
import http from 'node:http';
import path from 'node:path';
import type { AnyNodeDef } from '../engine/define.ts';
import { createEngine } from '../engine/index.ts';
import type { Engine } from '../engine/types.ts';
import { makeDirs } from '../runtime/video/paths.ts';
import type { ModelRuntime } from '../runtime/index.ts';
import { nodeKinds } from '../runs/cli.ts';
import { CheckpointStore } from '../runs/store.ts';
import { queueStatus as statusMessage } from '../protocol/index.ts';
import { createApp } from './app.ts';
import {
  attachWorker,
  clusterControl,
  runningFor,
  sharedStatus,
  sharedWorker,
  unavailableGuard,
  type SharedParts,
} from './cluster.ts';
import { createHub, type Hub } from './hub.ts';
import { engineLimits } from './limits.ts';
import type { HistoryStore, PromptQueue } from './queue.ts';
import { createApiRouter } from './routes.ts';
import { createRunner, type Runner } from './runner.ts';
import { createRunsRouter } from './runs.ts';
import type { ServerSettings } from './settings.ts';
import { sweepLeftovers } from './sweep.ts';
import { acceptWebSockets, answerClientError } from './websocket.ts';

/** What the server runs on, chosen where it is assembled. */
export interface ServerParts {
  /** The node types prompts may use (over HTTP: LoadVideoModel confined to the models folder). */
  nodes: readonly AnyNodeDef[];
  /** Lent to the nodes (RunContext.services.models); POST /free releases its sessions. */
  models: Pick<ModelRuntime, 'loadModel' | 'release'>;
  queue: PromptQueue;
  history: HistoryStore;
  /** Model names GET /models/video_models lists. */
  listModels(modelsDir: string): string[];
  /**
   * A shared (Redis) deployment: `queue` and `history` are its, prompts run on whichever worker
   * takes them (this process's when `shared.worker` is set) and messages travel through Redis.
   */
  shared?: SharedParts;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

let processHandlersInstalled = false;

/** The server must never die on input; anything that escapes a handler is logged, not fatal. */
function installProcessHandlers(log: (m: string) => void): void {
  if (processHandlersInstalled) return;
  processHandlersInstalled = true;
  process.on('unhandledRejection', (reason) => log(`unhandled rejection: ${String(reason)}`));
  process.on('uncaughtException', (err) => log(`uncaught exception: ${err.stack ?? String(err)}`));
}

/** The queue's length, broadcast as ComfyUI's `status` whenever it changes. */
function queueStatus(queue: PromptQueue, hub: Hub, log: (m: string) => void) {
  const remaining = () => queue.remaining();
  const changed = () => {
    remaining()
      .then((n) => {
        const m = statusMessage(n);
        hub.send(m.type, m.data, null);
      })
      .catch((err: unknown) => log(`status broadcast failed: ${String(err)}`));
  };
  return { remaining, changed };
}

/**
 * The engine and what runs prompts through it: the checkpoints and the runner (not started). On a
 * shared queue the runner's messages go to `hub` = the event bus, and it takes the worker's side.
 */
export function createExecution(
  settings: ServerSettings,
  parts: ServerParts,
  hub: Hub,
  onQueueChange: () => void,
) {
  const { paths, log } = settings;
  const engine = createEngine({
    nodes: parts.nodes,
    paths,
    services: { models: parts.models },
    cacheBytes: settings.cacheBytes,
    // Limits are checked on the values nodes receive, before they allocate.
    limits: engineLimits(settings.limits),
  });
  // Each clip of a loop is saved under the data dir, so a stopped prompt can continue (runs.ts).
  const checkpoints = new CheckpointStore(
    path.join(settings.dataDir, 'runs'),
    nodeKinds(parts.nodes),
    settings.checkpointBytes,
    (key, why) => log(`removed checkpoint ${key} (${why})`),
  );
  const runner = createRunner({
    engine,
    queue: parts.queue,
    history: parts.history,
    hub,
    onQueueChange,
    log,
    requeueCrashed: settings.requeueCrashed,
    checkpoints,
    shared: parts.shared?.worker && sharedWorker(parts.shared.worker, parts.shared.bus, log),
  });
  return { engine, checkpoints, runner };
}

/** The HTTP routes: ComfyUI's API and the runs (resume / extend) API. */
function createRouters(
  settings: ServerSettings,
  parts: ServerParts,
  x: { engine: Engine; runner: Runner; checkpoints: CheckpointStore; queueChanged: () => void },
) {
  const api = createApiRouter({
    engine: x.engine,
    nodes: parts.nodes,
    queue: parts.queue,
    history: parts.history,
    runner: x.runner,
    paths: settings.paths,
    limits: settings.limits,
    jsonLimitBytes: settings.jsonLimitBytes,
    maxUploadBytes: settings.maxUploadBytes,
    queueChanged: x.queueChanged,
    // Every worker's running prompt on a shared queue, else this process's.
    running: async () => {
      if (parts.shared) return parts.shared.queue.runningAll();
      const r = await parts.queue.running();
      return r ? [r] : [];
    },
    // Sessions live in the runtime; its worker starts only when a model loads.
    releaseModels: () => parts.models.release(),
    listModels: () => parts.listModels(settings.paths.models),
    workflowsDir: settings.workflowsDir,
    version: settings.version,
  });
  const runs = createRunsRouter({
    checkpoints: x.checkpoints,
    queue: parts.queue,
    history: parts.history,
    wake: () => x.runner.wake(),
    queueChanged: x.queueChanged,
    runningId: () => x.runner.runningId(),
  });
  return [api, runs];
}

async function listen(server: http.Server, port: number, host: string): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`Port ${port} on ${host} is already in use.`, { cause: err });
    }
    throw err;
  }
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

/**
 * Creates the folders. Alone on its folders (the embedded store), a process first removes what a
 * killed predecessor left; on a shared output folder another worker's file being written is not
 * stale, so nothing is swept.
 */
export function prepareFolders(settings: ServerSettings, sharedFolders: boolean): void {
  const { paths, log } = settings;
  // Not mkdirSync({recursive}): it never returns for a folder under /proc (Node 20).
  for (const dir of [paths.output, paths.input, paths.temp]) makeDirs(dir);
  if (sharedFolders) return;
  // Before anything runs (and, with the embedded store, under its data dir lock): what a killed
  // predecessor left is stale.
  const swept = sweepLeftovers(paths);
  if (swept.files > 0) {
    log(`removed ${swept.files} temporary file(s) (${swept.bytes} bytes) left by a stopped run`);
  }
}

/**
 * Serves `parts` with `settings` until close(). The queue and history stay open after close:
 * whoever opened them closes them.
 */
export async function serve(settings: ServerSettings, parts: ServerParts): Promise<RunningServer> {
  const { log, host } = settings;
  const { shared } = parts;
  prepareFolders(settings, shared !== undefined);

  const hub = createHub(settings.ws);
  const status = shared ? sharedStatus(shared, log) : queueStatus(parts.queue, hub, log);
  const queueChanged = status.changed;
  // On a shared queue the runner (if this process runs prompts) publishes to Redis; the sockets
  // of this server get what the relay forwards.
  const runnerHub = shared ? shared.bus.hub() : hub;
  const { engine, checkpoints, runner } = createExecution(settings, parts, runnerHub, queueChanged);
  const runsPrompts = !shared || shared.worker !== undefined;
  const control = shared ? clusterControl(shared, shared.worker && runner) : runner;
  const relay = shared ? await shared.bus.relay(hub) : undefined;

  const app = createApp({
    policy: settings.policy,
    token: settings.token,
    routers: [
      ...(shared ? [unavailableGuard(shared)] : []),
      ...createRouters(settings, parts, { engine, runner: control, checkpoints, queueChanged }),
    ],
    clientDir: settings.clientDir,
    log,
  });
  const server = http.createServer(app);
  const wss = acceptWebSockets(server, {
    policy: settings.policy,
    hub,
    runningFor: shared
      ? (clientId) => runningFor(shared, clientId)
      : async (clientId) => {
          const run = runner.running();
          return run?.clientId === clientId ? run : undefined;
        },
    // A client's messages reach this server while it has a socket here.
    onSocket: relay && ((clientId) => relay.watch(clientId)),
    onSocketClosed: relay && ((clientId) => relay.unwatch(clientId)),
    queueRemaining: status.remaining,
  });
  server.on('clientError', answerClientError);

  let port: number;
  try {
    port = await listen(server, settings.port, host);
  } catch (err) {
    await relay?.close();
    hub.close();
    engine.close();
    throw err;
  }
  let detach: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      detach?.();
      await runner.stop();
      await relay?.close();
      hub.close();
      wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      engine.close();
    })();
    return closing;
  };
  try {
    if (shared?.worker)
      detach = await attachWorker({ ...shared, worker: shared.worker }, runner, parts.history, log);
    if (runsPrompts) await runner.start();
  } catch (err) {
    // The caller closes the queue it passed: nothing of the server may still use it then.
    await close();
    throw err;
  }
  // Only once serving: a failure to start must still fail the process.
  installProcessHandlers(log);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${urlHost}:${port}`, port, close };
}
