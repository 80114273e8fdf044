// `startServer`: the ComfyUI-compatible HTTP + WebSocket server over the engine, with a persistent
// prompt queue. Knows nothing of tensors: it moves prompts, events and files.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { WebSocketServer } from 'ws';
import type { AnyNodeDef, NodePaths } from '../engine/define.ts';
import { createEngine } from '../engine/index.ts';
import { makeDirs } from '../runtime/video/paths.ts';
import { getRuntime } from '../runtime/index.ts';
import {
  confinedModelNames,
  loadVideoModelNode,
  loadVideoModelNodeForServer,
} from '../../nodes/load-video-model.ts';
import { errorBody, HttpError } from './errors.ts';
import { createHub, type HubOptions } from './hub.ts';
import { defaultLimits, engineLimits, type Limits } from './limits.ts';
import { createApiRouter, repoRoot } from './routes.ts';
import { createRunner } from './runner.ts';
import { createRunsRouter } from './runs.ts';
import { CheckpointStore } from '../runs/store.ts';
import { nodeKinds } from '../runs/cli.ts';
import { checkAccess, isLoopbackHost, isPublicPath, listenProblem, TOKEN_COOKIE } from './security.ts';
import { openStore } from './store.ts';
import { sweepLeftovers } from './sweep.ts';
import { defaultWorkflowsDir } from './workflows.ts';

export type { Limits } from './limits.ts';
export type { PromptQueue, HistoryStore, QueueItem, HistoryEntry } from './queue.ts';
export { CRASHED_AGAIN_MESSAGE, CRASHED_MESSAGE } from './runner.ts';

export interface ServerOptions {
  /** Default 8188; 0 picks a free port (returned). */
  port?: number;
  /** Bind address, default 127.0.0.1. A non-loopback address requires an auth token. */
  host?: string;
  outputDir?: string;
  inputDir?: string;
  tempDir?: string;
  modelsDir?: string;
  /** Queue and history store; default `.rdflow/` beside the output dir. */
  dataDir?: string;
  /** Bound of the checkpoints' disk use (default 4 GiB; see server/runs/store.ts). */
  checkpointBytes?: number;
  /** Required for non-loopback binds (else `RDFLOW_AUTH_TOKEN`); enforced whenever set. */
  authToken?: string;
  /** Node types; default every node rdflow ships (nodes/index.ts). */
  nodes?: readonly AnyNodeDef[];
  cacheBytes?: number;
  /** Caps on what one prompt may ask for (frames × resolution × clips). */
  limits?: Partial<Limits>;
  /** Workflow files the editor lists (GET /workflows); default the repo's workflows/. */
  workflowsDir?: string;
  /** Built editor; default dist/client in the repo. */
  clientDir?: string;
  jsonLimitBytes?: number;
  maxUploadBytes?: number;
  historyLimit?: number;
  /**
   * A prompt that was running when the process died (kill -9, power loss) is queued again first,
   * once; if the server dies under it again it is marked failed. Default true; false marks it
   * failed at once.
   */
  requeueCrashed?: boolean;
  ws?: HubOptions;
  /** Where server messages go; default stderr. */
  log?: (message: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const NO_CLIENT_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>rdflow</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>rdflow server</h1><p>The API is running. The editor has not been built: run
<code>npm run build:client</code> and reload this page.</p></body></html>`;

let processHandlersInstalled = false;

/** The server must never die on input; anything that escapes a handler is logged, not fatal. */
function installProcessHandlers(log: (m: string) => void): void {
  if (processHandlersInstalled) return;
  processHandlersInstalled = true;
  process.on('unhandledRejection', (reason) => log(`unhandled rejection: ${String(reason)}`));
  process.on('uncaughtException', (err) => log(`uncaught exception: ${err.stack ?? String(err)}`));
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

async function defaultNodes(): Promise<readonly AnyNodeDef[]> {
  const mod = (await import('../../nodes/index.ts')) as { allNodes: readonly AnyNodeDef[] };
  return mod.allNodes;
}

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
  message?: string;
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}

export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`[rdflow] ${m}\n`));
  const host = opts.host ?? '127.0.0.1';
  const token = opts.authToken ?? (process.env.RDFLOW_AUTH_TOKEN || undefined);
  const problem = listenProblem(host, token);
  if (problem) throw new Error(problem);
  const policy = { token, loopback: isLoopbackHost(host) };

  const output = path.resolve(opts.outputDir ?? 'output');
  const paths: NodePaths = {
    output,
    input: path.resolve(opts.inputDir ?? path.join(path.dirname(output), 'input')),
    temp: path.resolve(opts.tempDir ?? path.join(path.dirname(output), 'temp')),
    models: path.resolve(opts.modelsDir ?? 'models'),
  };
  // Not mkdirSync({recursive}): it never returns for a folder under /proc (Node 20).
  for (const dir of [paths.output, paths.input, paths.temp]) makeDirs(dir);
  const dataDir = path.resolve(opts.dataDir ?? path.join(path.dirname(output), '.rdflow'));

  // A prompt over HTTP comes from whoever can reach the server: its LoadVideoModel takes model
  // names from the models folder only (the CLI's accepts any path the user types).
  const nodes = (opts.nodes ?? (await defaultNodes())).map((n) =>
    n === (loadVideoModelNode as AnyNodeDef) ? (loadVideoModelNodeForServer as AnyNodeDef) : n,
  );
  const engine = createEngine({
    nodes,
    paths,
    cacheBytes: opts.cacheBytes,
    // Limits are checked on the values nodes receive, before they allocate.
    limits: engineLimits({ ...defaultLimits, ...opts.limits }),
  });
  const store = openStore(dataDir, { historyLimit: opts.historyLimit });
  // Under the data dir's lock, before anything runs: what a killed predecessor left is stale.
  const swept = sweepLeftovers(paths);
  if (swept.files > 0) {
    log(`removed ${swept.files} temporary file(s) (${swept.bytes} bytes) left by a stopped run`);
  }
  const hub = createHub(opts.ws);

  const queueRemaining = () => store.queue.remaining();
  const queueChanged = () => {
    queueRemaining()
      .then((n) => hub.send('status', { status: { exec_info: { queue_remaining: n } } }, null))
      .catch((err: unknown) => log(`status broadcast failed: ${String(err)}`));
  };
  // Each clip of a loop is saved under the data dir, so a stopped prompt can continue (runs.ts).
  const checkpoints = new CheckpointStore(
    path.join(dataDir, 'runs'),
    nodeKinds(nodes),
    opts.checkpointBytes,
    (key, why) => log(`removed checkpoint ${key} (${why})`),
  );
  const runner = createRunner({
    engine,
    queue: store.queue,
    history: store.history,
    hub,
    onQueueChange: queueChanged,
    log,
    requeueCrashed: opts.requeueCrashed,
    checkpoints,
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Routing matches exactly what the access check sees: `/Queue` is not `/queue` (it was, and
  // slipped past a case-sensitive check), `/queue/` is not `/queue`.
  app.set('case sensitive routing', true);
  app.set('strict routing', true);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const decision = checkAccess(policy, {
      origin: req.headers.origin,
      host: req.headers.host,
      authorization: req.headers.authorization,
      cookie: req.headers.cookie,
      url: req.originalUrl,
    });
    if (!decision.ok) {
      // The token is checked before any routing; only the editor's page and assets are public.
      const open = decision.status === 401 && isPublicPath(req.method, req.path);
      if (!open) {
        res.status(decision.status).json(errorBody('forbidden', decision.message));
        return;
      }
    } else if (decision.setCookie && token) {
      res.cookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/' });
    }
    next();
  });

  const router = createApiRouter({
    engine,
    nodes,
    queue: store.queue,
    history: store.history,
    runner,
    paths,
    limits: { ...defaultLimits, ...opts.limits },
    jsonLimitBytes: opts.jsonLimitBytes ?? 10 * 1024 * 1024,
    maxUploadBytes: opts.maxUploadBytes ?? 100 * 1024 * 1024,
    queueChanged,
    // Sessions live in the process-wide runtime; its worker starts only when a model loads.
    releaseModels: () => getRuntime().release(),
    listModels: () => confinedModelNames(paths.models),
    workflowsDir: path.resolve(opts.workflowsDir ?? defaultWorkflowsDir),
    version: readVersion(),
  });
  app.use('/api', router);
  app.use(router);
  const runsRouter = createRunsRouter({
    checkpoints,
    queue: store.queue,
    history: store.history,
    wake: () => runner.wake(),
    queueChanged,
    runningId: () => runner.runningId(),
  });
  app.use('/api', runsRouter);
  app.use(runsRouter);

  const clientDir = path.resolve(opts.clientDir ?? path.join(repoRoot, 'dist', 'client'));
  if (fs.existsSync(path.join(clientDir, 'index.html'))) {
    app.use(express.static(clientDir, { index: 'index.html' }));
  } else {
    app.get('/', (_req, res) => {
      res.type('html').send(NO_CLIENT_PAGE);
    });
  }

  app.use((req: Request, res: Response) => {
    res.status(404).json(errorBody('not_found', `No route for ${req.method} ${req.path}`));
  });

  // Express 5 forwards rejected handlers here; every failure is answered in api.md's error shape.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    void _next;
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof HttpError) {
      res.status(err.status).json(errorBody(err.type, err.message, err.details));
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as BodyParserError;
    const status = e.status ?? e.statusCode ?? 500;
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('request_too_large', 'The request body is too large.', e.message ?? ''));
    } else if (e.type === 'entity.parse.failed') {
      res
        .status(400)
        .json(errorBody('invalid_prompt', 'The request body is not valid JSON.', e.message ?? ''));
    } else if (status >= 400 && status < 500) {
      res.status(status).json(errorBody('invalid_request', e.message ?? 'Bad request'));
    } else {
      log(`request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      res.status(500).json(errorBody('server_error', 'Internal server error.'));
    }
  });

  const server = http.createServer(app);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws' && url.pathname !== '/api/ws') {
      rejectUpgrade(socket, 400, 'WebSocket endpoint is /ws');
      return;
    }
    const decision = checkAccess(policy, {
      origin: req.headers.origin,
      host: req.headers.host,
      authorization: req.headers.authorization,
      cookie: req.headers.cookie,
      url: req.url,
    });
    if (!decision.ok) {
      rejectUpgrade(socket, decision.status, decision.message);
      return;
    }
    const asked = url.searchParams.get('clientId');
    const clientId = asked && asked.length <= 128 ? asked : crypto.randomUUID().replaceAll('-', '');
    wss.handleUpgrade(req, socket, head, (ws) => {
      hub.add(ws, clientId);
      queueRemaining()
        .then((n) => {
          ws.send(
            JSON.stringify({
              type: 'status',
              data: { status: { exec_info: { queue_remaining: n } }, sid: clientId },
            }),
          );
          // A client that reconnects mid-run learns where its prompt is (as ComfyUI does).
          const run = runner.running();
          if (run?.node !== undefined && run.clientId === clientId) {
            const data = { node: run.node, display_node: run.node, prompt_id: run.promptId };
            ws.send(JSON.stringify({ type: 'executing', data }));
          }
        })
        .catch(() => undefined);
    });
  });
  // Unparseable HTTP: answer where the socket still can, as Node does without a handler, but in the
  // API's error shape; headers over Node's 16 KiB (a 20,000-character id in the path) are a 431.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify(
      tooLarge
        ? errorBody('request_too_large', 'The request line and headers are too large.')
        : errorBody('invalid_request', 'Malformed HTTP request.'),
    );
    socket.end(
      `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
        `Connection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 8188, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    hub.close();
    await store.close();
    engine.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(`Port ${opts.port ?? 8188} on ${host} is already in use.`, { cause: err });
    }
    throw err;
  }
  await runner.start();
  // Only once serving: a failure to start must still fail the process.
  installProcessHandlers(log);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 8188);
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        await runner.stop();
        hub.close();
        wss.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await store.close();
        engine.close();
      })();
      return closing;
    },
  };
}
