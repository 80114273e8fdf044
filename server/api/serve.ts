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
import { createApp } from './app.ts';
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
      .then((n) => hub.send('status', { status: { exec_info: { queue_remaining: n } } }, null))
      .catch((err: unknown) => log(`status broadcast failed: ${String(err)}`));
  };
  return { remaining, changed };
}

/** The engine and what runs prompts through it: the checkpoints and the runner. */
function createExecution(settings: ServerSettings, parts: ServerParts, hub: Hub, onQueueChange: () => void) {
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
 * Serves `parts` with `settings` until close(). The queue and history stay open after close:
 * whoever opened them closes them.
 */
export async function serve(settings: ServerSettings, parts: ServerParts): Promise<RunningServer> {
  const { paths, log, host } = settings;
  // Not mkdirSync({recursive}): it never returns for a folder under /proc (Node 20).
  for (const dir of [paths.output, paths.input, paths.temp]) makeDirs(dir);
  // Before anything runs (and, with the embedded store, under its data dir lock): what a killed
  // predecessor left is stale.
  const swept = sweepLeftovers(paths);
  if (swept.files > 0) {
    log(`removed ${swept.files} temporary file(s) (${swept.bytes} bytes) left by a stopped run`);
  }

  const hub = createHub(settings.ws);
  const status = queueStatus(parts.queue, hub, log);
  const queueChanged = status.changed;
  const { engine, checkpoints, runner } = createExecution(settings, parts, hub, queueChanged);

  const app = createApp({
    policy: settings.policy,
    token: settings.token,
    routers: createRouters(settings, parts, { engine, runner, checkpoints, queueChanged }),
    clientDir: settings.clientDir,
    log,
  });
  const server = http.createServer(app);
  const wss = acceptWebSockets(server, {
    policy: settings.policy,
    hub,
    runner,
    queueRemaining: status.remaining,
  });
  server.on('clientError', answerClientError);

  let port: number;
  try {
    port = await listen(server, settings.port, host);
  } catch (err) {
    hub.close();
    engine.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await runner.stop();
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
    await runner.start();
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
