// Runs queued prompts one at a time: takes the next, streams the engine's events to the hub,
// writes history, then sends the final `executing {node: null}` (api.md order: history first, and
// that message for every prompt that ends, whatever the outcome).
import type { Engine, RunResultSummary } from '../engine/types.ts';
import type { CheckpointStore, RunCheckpoint } from '../runs/store.ts';
import type { UiOutput } from '../engine/define.ts';
import { previewFrame, type Hub } from './hub.ts';
import { historyOutputs, HISTORY_MESSAGE_TYPES, previewsWanted, promptFlow, toWire } from './messages.ts';
import { RESUME_FLAG, wantsResume } from './runs.ts';
import {
  toTuple,
  type HistoryEntry,
  type HistoryStatus,
  type HistoryStore,
  type PromptQueue,
  type QueueItem,
} from './queue.ts';

export interface RunnerDeps {
  engine: Engine;
  queue: PromptQueue;
  history: HistoryStore;
  hub: Hub;
  /** Called whenever pending/running changes (the server broadcasts `status`). */
  onQueueChange(): void;
  log(message: string): void;
  /**
   * A prompt that was running when the process died is queued again, first in line, once
   * (default true); when it was already re-queued once, or this is false, it is marked failed.
   */
  requeueCrashed?: boolean;
  /** Where each clip of a loop is saved, so that a stopped prompt continues from its last clip. */
  checkpoints?: CheckpointStore;
}

export interface Runner {
  /** Starts the loop (after settling a prompt that was running when the process died). */
  start(): Promise<void>;
  /** A prompt was queued. */
  wake(): void;
  /** Interrupts the running prompt (only if it is `promptId`, when given). True if one was. */
  interrupt(promptId?: string): boolean;
  runningId(): string | undefined;
  /** The running prompt's client and the node it executes now (for a client that reconnects). */
  running(): { promptId: string; clientId: string | null; node?: string } | undefined;
  /** Runs `task` when no prompt is running (now, or right after the current one). */
  whenIdle(task: () => Promise<void> | void): Promise<void>;
  /** Interrupts the running prompt, waits for its history, stops taking prompts. */
  stop(): Promise<void>;
}

/** How often a prompt that was running when the process died is queued again before it fails. */
export const MAX_RESTARTS = 1;

/** History message of a crashed prompt that is not run again because re-queueing is off. */
export const CRASHED_MESSAGE =
  'The server stopped while this prompt was running; it was not run again (queue it again to retry).';

/**
 * History message of a prompt during which the server died twice: it may be what kills the
 * server, so it is not run a third time (no crash loop).
 */
export const CRASHED_AGAIN_MESSAGE =
  'The server stopped while this prompt was running, again after it had been queued again; ' +
  'it was not run a third time (it may be what stops the server). Queue it again to retry.';

export function clientIdOf(item: QueueItem): string | null {
  const id = item.extraData.client_id;
  return typeof id === 'string' && id !== '' ? id : null;
}

function outputMeta(outputs: Record<string, UiOutput>): HistoryEntry['meta'] {
  const meta: HistoryEntry['meta'] = {};
  for (const id of Object.keys(outputs)) {
    meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
  }
  return meta;
}

export function createRunner(deps: RunnerDeps): Runner {
  const { engine, queue, history, hub } = deps;
  let current: { item: QueueItem; controller: AbortController; node?: string } | undefined;
  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  let loopDone: Promise<void> | undefined;
  const idleTasks: (() => Promise<void> | void)[] = [];

  const runIdleTasks = async () => {
    while (idleTasks.length > 0) {
      const task = idleTasks.shift()!;
      try {
        await task();
      } catch (err) {
        deps.log(`idle task failed: ${String(err)}`);
      }
    }
  };

  async function settleCrashed(): Promise<void> {
    const crashed = await queue.running();
    if (!crashed) return;
    const restarts = crashed.restarts ?? 0;
    if ((deps.requeueCrashed ?? true) && restarts < MAX_RESTARTS) {
      // Keeps its number, so it runs before everything queued after it.
      await queue.requeue({ ...crashed, restarts: restarts + 1 });
      deps.log(
        `prompt ${crashed.promptId} was running when the server stopped; queued again first ` +
          `(restart ${restarts + 1} of ${MAX_RESTARTS})`,
      );
      return;
    }
    const message = restarts > 0 ? CRASHED_AGAIN_MESSAGE : CRASHED_MESSAGE;
    if (!(await history.get(crashed.promptId))) {
      const data = {
        prompt_id: crashed.promptId,
        node_id: null,
        node_type: null,
        executed: [],
        exception_message: message,
        exception_type: 'ServerRestart',
        traceback: [],
        current_inputs: {},
        current_outputs: {},
        timestamp: Date.now(),
      };
      await history.put(crashed.promptId, {
        prompt: toTuple(crashed),
        outputs: {},
        status: { status_str: 'error', completed: false, messages: [['execution_error', data]] },
        meta: {},
      });
    }
    await queue.complete(crashed.promptId);
    deps.log(`prompt ${crashed.promptId} was running when the server stopped; marked failed in history`);
  }

  async function runOne(item: QueueItem, signal: AbortSignal): Promise<void> {
    const clientId = clientIdOf(item);
    const promptId = item.promptId;
    const messages: HistoryStatus['messages'] = [];
    // Every message of the prompt passes the flow: one execution_cached, one executed per node.
    const send = promptFlow((type, data, toAll = false, droppable = false) => {
      if (HISTORY_MESSAGE_TYPES.has(type)) messages.push([type, data]);
      hub.send(type, data, toAll ? null : clientId, { droppable });
    });
    let result: RunResultSummary | undefined;
    // Resumed: asked for (POST /runs/resume, a graceful stop) or queued again after a crash.
    let checkpoint: RunCheckpoint | undefined;
    try {
      checkpoint = deps.checkpoints?.open(item.prompt, {
        source: `prompt ${promptId}`,
        resume: wantsResume(item),
      });
    } catch (err) {
      deps.log(`prompt ${promptId} runs without checkpoints: ${String(err)}`);
    }
    if (checkpoint && wantsResume(item)) {
      const saved = deps.checkpoints?.get(checkpoint.key);
      const done = saved ? Object.values(saved.loops).map((l) => `${l.done}/${l.total}`) : [];
      if (done.length > 0) deps.log(`prompt ${promptId} continues from clip ${done.join(', ')}`);
    }
    try {
      const r = await engine.run(item.prompt, {
        promptId,
        signal,
        previews: previewsWanted(item.extraData, hub.listeners(clientId)),
        checkpoints: checkpoint,
        onEvent(e) {
          if (e.type === 'executing' && current) current.node = e.node;
          const w = toWire(e);
          if (w.kind === 'preview') hub.sendBinary(previewFrame(w.format, w.data), clientId);
          else send(w.type, w.data, w.toAll, w.droppable);
        },
      });
      if (r.status === 'invalid') {
        // Valid when queued, invalid now (a model folder vanished, say): report it as an error.
        const [nodeId, ne] = Object.entries(r.validation.nodeErrors)[0] ?? [null, undefined];
        const reason = ne?.errors.map((x) => x.message).join('; ') ?? r.validation.error.message;
        result = { status: 'error', outputs: {}, nodeId: nodeId ?? '', message: reason };
        send('execution_error', {
          prompt_id: promptId,
          node_id: nodeId,
          node_type: ne?.class_type ?? null,
          executed: [],
          exception_message: `${r.validation.error.message}: ${reason}`,
          exception_type: 'ValidationError',
          traceback: [],
          current_inputs: {},
          current_outputs: {},
        });
      } else {
        result = r;
      }
    } catch (err) {
      // The engine promises not to throw; if it does, the prompt still ends properly.
      const message = err instanceof Error ? err.message : String(err);
      deps.log(`engine.run threw for ${promptId}: ${message}`);
      result = { status: 'error', outputs: {}, nodeId: '', message };
      send('execution_error', {
        prompt_id: promptId,
        node_id: null,
        node_type: null,
        executed: [],
        exception_message: message,
        exception_type: err instanceof Error ? err.name : 'Error',
        traceback: [],
        current_inputs: {},
        current_outputs: {},
      });
    }
    if (result.status === 'success') checkpoint?.finish();
    else checkpoint?.stop();
    const ended = messages.some(
      ([t]) => t === 'execution_success' || t === 'execution_error' || t === 'execution_interrupted',
    );
    if (!ended && result.status === 'interrupted') {
      send(
        'execution_interrupted',
        { prompt_id: promptId, node_id: result.nodeId, node_type: null, executed: [] },
        true,
      );
    } else if (!ended && result.status === 'error') {
      send('execution_error', {
        prompt_id: promptId,
        node_id: result.nodeId,
        node_type: item.prompt[result.nodeId]?.class_type ?? null,
        executed: [],
        exception_message: result.message,
        exception_type: 'Error',
        traceback: [],
        current_inputs: {},
        current_outputs: {},
      });
    }
    if (stopped && result.status === 'interrupted') {
      // A graceful stop (close(), SIGINT/SIGTERM) puts the prompt back first in line, to run
      // again after the restart; only a crash marks a running prompt failed.
      await queue.requeue({ ...item, extraData: { ...item.extraData, [RESUME_FLAG]: true } });
      return;
    }
    const success = result.status === 'success';
    const outputs = historyOutputs(result.outputs);
    try {
      await history.put(promptId, {
        prompt: toTuple(item),
        outputs,
        status: { status_str: success ? 'success' : 'error', completed: success, messages },
        meta: outputMeta(outputs),
      });
    } catch (err) {
      deps.log(`could not write history for ${promptId}: ${String(err)}`);
    }
    await queue.complete(promptId);
    hub.send('executing', { node: null, display_node: null, prompt_id: promptId }, clientId);
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      // Tasks asked for before this prompt was taken (POST /free) run before it.
      await runIdleTasks();
      // A wake-up that arrives while we look at the queue must not be lost.
      woken = false;
      let item: QueueItem | undefined;
      try {
        item = await queue.next();
      } catch (err) {
        deps.log(`queue.next failed: ${String(err)}`);
      }
      if (!item) {
        if (stopped) break;
        await new Promise<void>((resolve) => {
          wakeUp = resolve;
          if (woken || idleTasks.length > 0) resolve();
        });
        wakeUp = undefined;
        continue;
      }
      current = { item, controller: new AbortController() };
      deps.onQueueChange();
      try {
        await runOne(item, current.controller.signal);
      } catch (err) {
        deps.log(`prompt ${item.promptId} failed outside the engine: ${String(err)}`);
      }
      current = undefined;
      deps.onQueueChange();
    }
  }

  return {
    async start() {
      await settleCrashed();
      loopDone = loop();
    },
    wake() {
      woken = true;
      wakeUp?.();
    },
    interrupt(promptId) {
      if (!current) return false;
      if (promptId !== undefined && current.item.promptId !== promptId) return false;
      current.controller.abort(new Error('Interrupted'));
      return true;
    },
    runningId() {
      return current?.item.promptId;
    },
    running() {
      return (
        current && { promptId: current.item.promptId, clientId: clientIdOf(current.item), node: current.node }
      );
    },
    whenIdle(task) {
      return new Promise<void>((resolve) => {
        idleTasks.push(async () => {
          try {
            await task();
          } finally {
            resolve();
          }
        });
        if (!current) {
          woken = true;
          wakeUp?.();
        }
      });
    },
    async stop() {
      stopped = true;
      current?.controller.abort(new Error('Server shutting down'));
      woken = true;
      wakeUp?.();
      await loopDone;
    },
  };
}
