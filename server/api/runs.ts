// Resume and extend over HTTP (beyond ComfyUI; see README.md "Resume and extend"):
//   GET  /runs                          checkpoints: progress, status, disk use, the bound
//   POST /runs/resume {prompt_id, extend?}  queues a stopped (or, with extend, finished) prompt again,
//                                       continuing from its last finished clip
//   POST /runs/clear {key?}             removes one checkpoint, or every one not running
// The runner saves a checkpoint after each clip of every prompt, keyed by the prompt's content
// hash (output-only inputs left out), and continues one when the queued item asks for it.
import crypto from 'node:crypto';
import express, { type Request, type Router } from 'express';
import type { ApiPrompt, PromptAccepted } from '../protocol/index.ts';
import type { CheckpointStore } from '../runs/store.ts';
import { HttpError } from './errors.ts';
import type { HistoryStore, PromptQueue, QueueItem } from './queue.ts';

/** extraData flag of a queued item that continues its checkpoint instead of starting over. */
export const RESUME_FLAG = 'rdflow_resume';

/** Whether the runner continues this item's checkpoint: asked for, or queued again after a crash. */
export function wantsResume(item: QueueItem): boolean {
  return item.extraData[RESUME_FLAG] === true || (item.restarts ?? 0) > 0;
}

export interface RunsContext {
  checkpoints: CheckpointStore;
  queue: PromptQueue;
  history: HistoryStore;
  wake(): void;
  queueChanged(): void;
  /** The id of the prompt running now: its checkpoint cannot be cleared or resumed. */
  runningId(): string | undefined;
}

const PROMPT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function body(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  if (b === null || typeof b !== 'object' || Array.isArray(b)) {
    throw new HttpError(400, 'invalid_request', 'The body must be a JSON object.');
  }
  return b as Record<string, unknown>;
}

export function createRunsRouter(ctx: RunsContext): Router {
  const r = express.Router({ caseSensitive: true, strict: true });
  const json = express.json({ limit: 64 * 1024, strict: false, type: () => true });

  r.get('/runs', (_req, res) => {
    const runs = ctx.checkpoints.list();
    res.json({
      total_bytes: runs.reduce((n, x) => n + x.bytes, 0),
      limit_bytes: ctx.checkpoints.maxBytes,
      runs: runs.map((x) => ({
        key: x.key,
        source: x.source ?? null,
        status: x.status,
        loops: x.loops,
        bytes: x.bytes,
        updated_at: x.updatedAt,
      })),
    });
  });

  r.post('/runs/resume', json, async (req, res) => {
    const b = body(req);
    const id = b.prompt_id;
    if (typeof id !== 'string' || !PROMPT_ID.test(id)) {
      throw new HttpError(400, 'invalid_request', 'prompt_id must be 1-128 letters, digits, or _.:-');
    }
    let extend: number | undefined;
    if (b.extend !== undefined) {
      if (typeof b.extend !== 'number' || !Number.isInteger(b.extend) || b.extend < 1 || b.extend > 100_000) {
        throw new HttpError(
          400,
          'invalid_request',
          'extend must be a whole number of clips from 1 to 100000.',
        );
      }
      extend = b.extend;
    }
    const entry = await ctx.history.get(id);
    if (!entry) throw new HttpError(404, 'not_found', `No finished or stopped prompt ${id} in the history.`);
    const [, , prompt, extraData, outputs] = entry.prompt;
    const info = ctx.checkpoints.get(ctx.checkpoints.key(prompt));
    if (!info) {
      throw new HttpError(
        409,
        'not_resumable',
        `Prompt ${id} has no checkpoint (no clip finished, or it was cleared or pushed out by the disk bound).`,
      );
    }
    if (info.status === 'running')
      throw new HttpError(409, 'not_resumable', `Prompt ${id}'s run is still running.`);
    let next: ApiPrompt = prompt;
    if (extend !== undefined) {
      if (info.status !== 'finished') {
        throw new HttpError(
          409,
          'not_resumable',
          `Prompt ${id} has not finished: resume it before extending it.`,
        );
      }
      next = structuredClone(prompt);
      for (const [loopId, l] of Object.entries(info.loops)) {
        if (next[loopId]) next[loopId].inputs.iterations = l.done + extend;
      }
    } else if (info.status === 'finished') {
      throw new HttpError(409, 'not_resumable', `Prompt ${id} finished; extend it with "extend": N.`);
    }
    const promptId = crypto.randomUUID();
    const item = await ctx.queue.enqueue({
      promptId,
      prompt: next,
      extraData: { ...extraData, [RESUME_FLAG]: true, resumed_from: id },
      outputs,
    });
    ctx.wake();
    ctx.queueChanged();
    const accepted: PromptAccepted = { prompt_id: promptId, number: item.number, node_errors: {} };
    res.json(accepted);
  });

  r.post('/runs/clear', json, (req, res) => {
    const b = body(req);
    if (b.key !== undefined && (typeof b.key !== 'string' || !/^[0-9a-f]{24}$/.test(b.key))) {
      throw new HttpError(400, 'invalid_request', 'key must be a checkpoint key (24 hex digits).');
    }
    const removed =
      typeof b.key === 'string' ? (ctx.checkpoints.remove(b.key) ? [b.key] : []) : ctx.checkpoints.clear();
    res.json({ removed });
  });

  return r;
}
