// api.md's HTTP endpoints. The router is mounted at `/` and at `/api`, as ComfyUI does.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import express, { type Request, type Router } from 'express';
import type { AnyNodeDef, NodePaths } from '../engine/define.ts';
import type { Engine } from '../engine/types.ts';
import type { ApiPrompt, ErrorResponse, History, PromptAccepted, QueueState } from '../protocol/index.ts';
import { isCanvasWorkflow, toApiPrompt, type EngineExtras } from '../engine/index.ts';
import { errorBody, HttpError } from './errors.ts';
import { checkLimits, type Limits } from './limits.ts';
import { PathError, resolveExisting, temporaryName } from './paths.ts';
import { toTuple, type HistoryStore, type PromptQueue, type QueueItem } from './queue.ts';
import type { Runner } from './runner.ts';
import { handleUpload, UploadError } from './upload.ts';
import { listWorkflows, resolveWorkflow } from './workflows.ts';

export interface ApiContext {
  engine: Engine;
  nodes: readonly AnyNodeDef[];
  queue: PromptQueue;
  history: HistoryStore;
  runner: Runner;
  paths: NodePaths;
  limits: Limits;
  jsonLimitBytes: number;
  maxUploadBytes: number;
  /** Pending/running changed: broadcast `status`. */
  queueChanged(): void;
  /** The running prompts: this server's, or every worker's on a shared queue. */
  running(): Promise<QueueItem[]>;
  /** Drops loaded model sessions (POST /free {unload_models}). */
  releaseModels(): Promise<void>;
  /** Model folder names under the models dir (GET /models/video_models). */
  listModels(): string[];
  /** The folder GET /workflows lists and serves. */
  workflowsDir: string;
  version: string;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON body as an object; an absent body is `{}` (clients POST /interrupt without one). */
function bodyObject(req: Request): Json {
  const b: unknown = req.body;
  if (b === undefined) return {};
  if (!isObject(b)) throw new HttpError(400, 'invalid_request', 'The request body must be a JSON object.');
  return b;
}

/**
 * Longest prompt id a request may name. Ids the server makes are UUIDs and client ids are at most
 * 128 characters (PROMPT_ID), so nothing longer can exist; refusing it up front also keeps it away
 * from LMDB, whose keys end at 1978 bytes (a longer one threw and answered 500).
 */
export const MAX_ID_BYTES = 256;

function checkId(id: string, field: string): string {
  if (Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new HttpError(400, 'invalid_request', `${field}: a prompt id is at most ${MAX_ID_BYTES} bytes.`);
  }
  return id;
}

function stringIds(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new HttpError(400, 'invalid_request', `${field} must be a list of prompt ids.`);
  }
  return (v as string[]).map((id) => checkId(id, field));
}

/** Deepest JSON nesting a body may have; real workflows stay under 10. */
export const MAX_JSON_DEPTH = 100;

/**
 * Whether the raw JSON text nests arrays/objects deeper than `max`, by one scan of the bytes before
 * anything is parsed: a deep value overflowed the stack when an error message was built around it
 * (500), and parsing a million levels costs a second of CPU for a body that is refused anyway.
 */
export function jsonNestsDeeperThan(buf: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/**
 * Node ids that name properties every JS object has: an engine indexing plain objects by node id
 * would find a function there (`constructor`) or set a prototype (`__proto__`). ComfyUI has no use
 * for them; they are refused as a validation error before the engine sees the prompt.
 */
const RESERVED_IDS = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

function queryString(req: Request, name: string, fallback: string): string {
  const v = req.query[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new HttpError(400, 'invalid_request', `${name} must be given once.`);
  return v;
}

const PROMPT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

type Handler = express.RequestHandler;

/**
 * The JSON body parser. ComfyUI's own examples POST JSON without a JSON content type (urllib's form
 * default), so the body is parsed as JSON whatever the Content-Type says.
 */
function jsonBody(limitBytes: number): Handler {
  return express.json({
    limit: limitBytes,
    strict: false,
    type: () => true,
    // Runs on the raw bytes before parsing; the thrown HttpError reaches the error handler as is.
    verify(_req, _res, buf) {
      if (jsonNestsDeeperThan(buf, MAX_JSON_DEPTH)) {
        throw new HttpError(
          400,
          'invalid_request',
          `The request body nests deeper than ${MAX_JSON_DEPTH} levels.`,
        );
      }
    },
  });
}

const invalidPrompt = (message: string, prefix: string): ErrorResponse =>
  errorBody('invalid_prompt', `${prefix}: ${message}`, message);

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * POST /prompt's `prompt` in API format (a canvas workflow is converted), valid and within the
 * limits, with the output nodes to run; or the error answer (400) that refuses it.
 */
async function checkedPrompt(
  ctx: ApiContext,
  body: Json,
): Promise<{ prompt: ApiPrompt; outputs: string[] } | { refused: ErrorResponse }> {
  if (!('prompt' in body))
    return { refused: errorBody('no_prompt', 'No prompt provided', 'No prompt provided') };
  let prompt: unknown = body.prompt;
  if (isCanvasWorkflow(prompt)) {
    try {
      prompt = toApiPrompt(prompt, ctx.nodes);
    } catch (err) {
      return { refused: invalidPrompt(messageOf(err), 'Invalid workflow') };
    }
  }
  if (isObject(prompt)) {
    const reserved = Object.keys(prompt).find((id) => RESERVED_IDS.has(id));
    if (reserved !== undefined) {
      const message = `node id "${reserved}" is reserved (a property of every object); use another id`;
      return { refused: invalidPrompt(message, 'Invalid prompt') };
    }
  }
  let validation;
  try {
    validation = await ctx.engine.validate(prompt as ApiPrompt);
  } catch (err) {
    // The engine checks the shape itself; anything it still trips on is the prompt's fault.
    return { refused: invalidPrompt(messageOf(err), 'Invalid prompt') };
  }
  if (!validation.ok) return { refused: { error: validation.error, node_errors: validation.nodeErrors } };
  const apiPrompt = prompt as ApiPrompt;
  const limitErrors = checkLimits(apiPrompt, ctx.limits);
  if (limitErrors) {
    const reasons = Object.values(limitErrors)
      .flatMap((e) => e.errors.map((x) => x.message))
      .join(' ');
    return {
      refused: errorBody(
        'prompt_outputs_failed_validation',
        'Prompt exceeds the server limits',
        reasons,
        limitErrors,
      ),
    };
  }
  return { prompt: apiPrompt, outputs: validation.outputs };
}

/** The client's `prompt_id` when it gives a free one, else a new UUID. */
async function newPromptId(ctx: ApiContext, asked: unknown): Promise<string> {
  if (asked === undefined) return crypto.randomUUID();
  if (typeof asked !== 'string' || !PROMPT_ID.test(asked)) {
    throw new HttpError(400, 'invalid_prompt', 'prompt_id must be 1-128 letters, digits, or _.:-');
  }
  if (await ctx.queue.has(asked))
    throw new HttpError(400, 'invalid_prompt', `prompt_id ${asked} is already queued.`);
  return asked;
}

/** GET/POST /prompt: queue length, and queueing a prompt. */
function promptRoutes(r: Router, ctx: ApiContext, json: Handler): void {
  r.get('/prompt', async (_req, res) => {
    res.json({ exec_info: { queue_remaining: await ctx.queue.remaining() } });
  });

  r.post('/prompt', json, async (req, res) => {
    const body = bodyObject(req);
    const checked = await checkedPrompt(ctx, body);
    if ('refused' in checked) {
      res.status(400).json(checked.refused);
      return;
    }
    const promptId = await newPromptId(ctx, body.prompt_id);
    if ((await ctx.queue.remaining()) >= ctx.limits.maxQueued) {
      throw new HttpError(
        429,
        'queue_full',
        `The queue is full (${ctx.limits.maxQueued} prompts); try again later.`,
      );
    }
    const extraData: Json = isObject(body.extra_data) ? { ...body.extra_data } : {};
    if (typeof body.client_id === 'string') extraData.client_id = body.client_id;
    const number = typeof body.number === 'number' && Number.isFinite(body.number) ? body.number : undefined;
    const item = await ctx.queue.enqueue(
      { promptId, prompt: checked.prompt, extraData, outputs: checked.outputs, number },
      { front: body.front === true },
    );
    ctx.runner.wake();
    ctx.queueChanged();
    const accepted: PromptAccepted = { prompt_id: promptId, number: item.number, node_errors: {} };
    res.json(accepted);
  });
}

/** GET/POST /queue and POST /interrupt. */
function queueRoutes(r: Router, ctx: ApiContext, json: Handler): void {
  r.get('/queue', async (_req, res) => {
    const running = await ctx.running();
    const pending = await ctx.queue.pending();
    const state: QueueState = {
      queue_running: running.map(toTuple),
      queue_pending: pending.map(toTuple),
    };
    res.json(state);
  });

  r.post('/queue', json, async (req, res) => {
    const body = bodyObject(req);
    const ids = stringIds(body.delete, 'delete');
    if (body.clear === true) await ctx.queue.clear();
    if (ids.length > 0) {
      const removed = new Set(await ctx.queue.delete(ids));
      // Deleting a running prompt stops it (it still ends with history and `executing null`); the
      // runner stops only the prompt it runs (on a shared queue: whichever worker runs it).
      for (const id of ids) if (!removed.has(id)) ctx.runner.interrupt(id);
    }
    ctx.queueChanged();
    res.json({});
  });

  r.post('/interrupt', json, async (req, res) => {
    const body = bodyObject(req);
    const id = body.prompt_id;
    if (id !== undefined && typeof id !== 'string') {
      throw new HttpError(400, 'invalid_request', 'prompt_id must be a string.');
    }
    if (id !== undefined) checkId(id, 'prompt_id');
    if (id === undefined) {
      ctx.runner.interrupt();
    } else if (!ctx.runner.interrupt(id)) {
      // Not running: a pending prompt of that id is dropped instead.
      if ((await ctx.queue.delete([id])).length > 0) ctx.queueChanged();
    }
    res.json({});
  });
}

/** GET /history (all, or the newest max_items), GET /history/:id, POST /history (delete, clear). */
function historyRoutes(r: Router, ctx: ApiContext, json: Handler): void {
  r.get('/history', async (req, res) => {
    const raw = queryString(req, 'max_items', '');
    let max: number | undefined;
    if (raw !== '') {
      max = Number(raw);
      if (!Number.isInteger(max) || max < 0)
        throw new HttpError(400, 'invalid_request', 'max_items must be an integer ≥ 0.');
    }
    const history: History = Object.fromEntries(await ctx.history.list(max));
    res.json(history);
  });

  r.get('/history/:promptId', async (req, res) => {
    const id = checkId(String(req.params.promptId), 'prompt id');
    const entry = await ctx.history.get(id);
    const history: History = entry ? { [id]: entry } : {};
    res.json(history);
  });

  r.post('/history', json, async (req, res) => {
    const body = bodyObject(req);
    const ids = stringIds(body.delete, 'delete');
    if (body.clear === true) await ctx.history.clear();
    if (ids.length > 0) await ctx.history.delete(ids);
    res.json({});
  });
}

/** The path's PathError as the error answer (its status, `invalid_path`). */
function pathError(err: unknown): unknown {
  return err instanceof PathError ? new HttpError(err.status, 'invalid_path', err.message) : err;
}

/** GET /view (a file of output, input or temp) and POST /upload/image. */
function fileRoutes(r: Router, ctx: ApiContext): void {
  r.get('/view', async (req, res) => {
    const type = queryString(req, 'type', 'output');
    if (type !== 'output' && type !== 'input' && type !== 'temp') {
      throw new HttpError(400, 'invalid_request', 'type must be output, input or temp.');
    }
    const filename = queryString(req, 'filename', '');
    const subfolder = queryString(req, 'subfolder', '');
    // A file being written (video temp, upload in flight) or the engine's spill cache is not output.
    if (temporaryName(subfolder, filename)) {
      throw new HttpError(403, 'invalid_path', 'Hidden and temporary files are not served.');
    }
    let file: string;
    try {
      file = await resolveExisting(ctx.paths[type], subfolder, filename);
    } catch (err) {
      throw pathError(err);
    }
    res.sendFile(file, { dotfiles: 'allow', headers: { 'Cache-Control': 'no-cache' } });
  });

  r.post('/upload/image', async (req, res) => {
    try {
      res.json(await handleUpload(req, ctx.paths, ctx.maxUploadBytes));
    } catch (err) {
      // A refused upload may be answered before its body was read (a malformed part): the rest
      // of that body must not be taken for the next request on a kept-alive connection.
      res.set('Connection', 'close');
      if (err instanceof UploadError) throw new HttpError(err.status, 'invalid_upload', err.message);
      throw err;
    }
  });
}

/** rdflow's node-output caches in /system_stats: in memory and spilled to files, each with its bound. */
function cacheFields(engine: Engine) {
  const stats = (engine as Partial<EngineExtras>).cacheStats?.();
  if (stats === undefined) return {};
  return {
    cache: {
      memory_bytes: stats.memoryBytes,
      memory_max_bytes: stats.memoryMaxBytes,
      spill_bytes: stats.spillBytes,
      spill_max_bytes: stats.spillMaxBytes,
    },
  };
}

/** GET /system_stats: ComfyUI's fields that clients read, filled truthfully. */
function systemStats(ctx: ApiContext) {
  const total = os.totalmem();
  const free = os.freemem();
  return {
    // Never the command line (ComfyUI sends argv; ours would carry --auth-token) nor anything
    // else from the environment.
    system: {
      os: process.platform,
      ram_total: total,
      ram_free: free,
      comfyui_version: ctx.version,
      rdflow_version: ctx.version,
      python_version: `node ${process.version}`,
      node_version: process.version,
      embedded_python: false,
      cpu_count: os.cpus().length,
    },
    // Inference runs on the CPU build of onnxruntime: the one device is the CPU and its RAM.
    devices: [
      {
        name: 'cpu',
        type: 'cpu',
        index: 0,
        vram_total: total,
        vram_free: free,
        torch_vram_total: 0,
        torch_vram_free: 0,
      },
    ],
    ...cacheFields(ctx.engine),
  };
}

/** What the server offers: node types, system stats, models; and POST /free. */
function infoRoutes(r: Router, ctx: ApiContext, json: Handler): void {
  r.get('/object_info', (_req, res) => {
    res.json(ctx.engine.objectInfo());
  });

  r.get('/object_info/:nodeClass', (req, res) => {
    const info = ctx.engine.objectInfo();
    const name = String(req.params.nodeClass);
    res.json(Object.hasOwn(info, name) ? { [name]: info[name] } : {});
  });

  r.get('/system_stats', (_req, res) => {
    res.json(systemStats(ctx));
  });

  r.get('/embeddings', (_req, res) => {
    res.json([]);
  });
  r.get('/extensions', (_req, res) => {
    res.json([]);
  });
  r.get('/models', (_req, res) => {
    res.json(['video_models']);
  });
  r.get('/models/:folder', (req, res) => {
    res.json(req.params.folder === 'video_models' ? ctx.listModels() : []);
  });

  r.post('/free', json, async (req, res) => {
    const body = bodyObject(req);
    // Applied between prompts, never under a running one (as ComfyUI defers it).
    if (body.unload_models === true) {
      void ctx.runner.whenIdle(async () => {
        ctx.engine.clearCache();
        await ctx.releaseModels();
      });
    } else if (body.free_memory === true) {
      void ctx.runner.whenIdle(() => ctx.engine.clearCache());
    }
    res.json({});
  });
}

/** GET /workflows and GET /workflows/:name, the shipped workflows. */
function workflowRoutes(r: Router, ctx: ApiContext): void {
  r.get('/workflows', async (_req, res) => {
    res.set('Cache-Control', 'no-cache').json(await listWorkflows(ctx.workflowsDir));
  });

  r.get('/workflows/:name', async (req, res) => {
    let file: string;
    try {
      file = await resolveWorkflow(ctx.workflowsDir, String(req.params.name));
    } catch (err) {
      throw pathError(err);
    }
    res.sendFile(file, { dotfiles: 'deny', headers: { 'Cache-Control': 'no-cache' } });
  });
}

export function createApiRouter(ctx: ApiContext): Router {
  // Case-sensitive and strict, as the access check in index.ts compares paths.
  const r = express.Router({ caseSensitive: true, strict: true });
  const json = jsonBody(ctx.jsonLimitBytes);
  promptRoutes(r, ctx, json);
  queueRoutes(r, ctx, json);
  historyRoutes(r, ctx, json);
  fileRoutes(r, ctx);
  infoRoutes(r, ctx, json);
  workflowRoutes(r, ctx);
  return r;
}

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
