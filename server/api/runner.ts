// Runs queued prompts one at a time: takes the next, streams the engine's events to the hub,
// writes history, then sends the final `executing {node: null}` (api.md order: history first, and
// that message for every prompt that ends, whatever the outcome).
import type { Engine, RunResultSummary } from '../engine/types.ts';
import {
  executing,
  executionError,
  executionInterrupted,
  type Message,
  type ServerMessage,
  type UiOutput,
} from '../protocol/index.ts';
import type { CheckpointStore, RunCheckpoint } from '../runs/store.ts';
import { previewFrame, type Hub } from './hub.ts';
import {
  historyOutputs,
  HISTORY_MESSAGE_TYPES,
  previewsWanted,
  promptFlow,
  TERMINAL_MESSAGE_TYPES,
  toWire,
  type SendJson,
} from './messages.ts';
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
  /** A worker on the shared (Redis) queue; absent: the embedded single-process queue. */
  shared?: SharedWorker;
}

/**
 * What a worker on a shared queue adds (server/api/redis/queue.ts's worker side): next() waits in
 * Redis by itself, a held prompt's lock may be lost to another worker, and a prompt that failed
 * for a reason of this worker is retried by the queue instead of being written to history.
 */
export interface SharedWorker {
  /** Aborted when the lock of `promptId` was lost: another worker may run it now. */
  lockSignal(promptId: string): AbortSignal | undefined;
  /** Forgets a prompt whose lock was lost (the worker that took it over owns it). */
  abandon(promptId: string): void;
  /** The node the held prompt executes now, for clients that reconnect to any API server. */
  reportNode(promptId: string, node: string | null): void;
  willRetry(promptId: string, error: Error): boolean;
  /** Hands the failed prompt back to the queue (retried with backoff, or failed for good). */
  fail(promptId: string, error: Error): Promise<'retry' | 'failed'>;
  /** Before a prompt runs (learns whether its client is connected to any API server). */
  prepare(item: QueueItem): Promise<void>;
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

/**
 * Whether a failed run failed for a reason of the worker rather than of the prompt: memory ran
 * out, the inference worker died (runtime/sessions.ts: "inference worker stopped: …"). Such a
 * prompt may well succeed on another try (or another worker).
 */
export function isWorkerFault(message: string): boolean {
  return /out of memory|allocation failed|cannot allocate|ENOMEM|ERR_WORKER_OUT_OF_MEMORY|worker (stopped|exited|terminated|crashed)/i.test(
    message,
  );
}

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

/** An execution_error that no node's run produced: nothing executed, no traceback, no inputs. */
function promptFailed(
  promptId: string,
  at: { nodeId: string | null; nodeType: string | null },
  message: string,
  exceptionType: string,
): Message<'execution_error'> {
  return executionError({
    prompt_id: promptId,
    node_id: at.nodeId,
    node_type: at.nodeType,
    executed: [],
    exception_message: message,
    exception_type: exceptionType,
    traceback: [],
    current_inputs: {},
    current_outputs: {},
  });
}

/** The history entry of a prompt the server died in and that is not run again. */
export function crashedEntry(item: QueueItem, message: string): HistoryEntry {
  const error = promptFailed(item.promptId, { nodeId: null, nodeType: null }, message, 'ServerRestart');
  return {
    prompt: toTuple(item),
    outputs: {},
    status: {
      status_str: 'error',
      completed: false,
      messages: [[error.type, { ...error.data, timestamp: Date.now() }]],
    },
    meta: {},
  };
}

/**
 * A prompt that was running when the process died: queued again first in line, once (it keeps its
 * number, so it runs before everything queued after it), else marked failed in history.
 */
async function settleCrashed(deps: RunnerDeps): Promise<void> {
  const { queue, history } = deps;
  const crashed = await queue.running();
  if (!crashed) return;
  const restarts = crashed.restarts ?? 0;
  if ((deps.requeueCrashed ?? true) && restarts < MAX_RESTARTS) {
    await queue.requeue({ ...crashed, restarts: restarts + 1 });
    deps.log(
      `prompt ${crashed.promptId} was running when the server stopped; queued again first ` +
        `(restart ${restarts + 1} of ${MAX_RESTARTS})`,
    );
    return;
  }
  const message = restarts > 0 ? CRASHED_AGAIN_MESSAGE : CRASHED_MESSAGE;
  if (!(await history.get(crashed.promptId)))
    await history.put(crashed.promptId, crashedEntry(crashed, message));
  await queue.complete(crashed.promptId);
  deps.log(`prompt ${crashed.promptId} was running when the server stopped; marked failed in history`);
}

/**
 * The prompt's checkpoints (each clip of a loop saved, so that a stopped prompt continues from its
 * last clip); none when they cannot be opened. Resumed: asked for (POST /runs/resume, a graceful
 * stop) or queued again after a crash.
 */
function openCheckpoint(deps: RunnerDeps, item: QueueItem): RunCheckpoint | undefined {
  const promptId = item.promptId;
  let checkpoint: RunCheckpoint | undefined;
  try {
    checkpoint = deps.checkpoints?.open(item.prompt, {
      source: `prompt ${promptId}`,
      resume: wantsResume(item),
      // On a shared queue this worker holds the job's lock: a worker that marked the checkpoint
      // running (on any machine) has lost the job, so its clips are continued here.
      takeOver: deps.shared !== undefined,
    });
  } catch (err) {
    deps.log(`prompt ${promptId} runs without checkpoints: ${String(err)}`);
  }
  if (checkpoint && wantsResume(item)) {
    const saved = deps.checkpoints?.get(checkpoint.key);
    const done = saved ? Object.values(saved.loops).map((l) => `${l.done}/${l.total}`) : [];
    if (done.length > 0) deps.log(`prompt ${promptId} continues from clip ${done.join(', ')}`);
  }
  return checkpoint;
}

/**
 * What one prompt's messages go through: the flow for its client, and a copy for its history.
 * With `holdErrors` (a shared queue's worker) an execution_error waits for release(): a prompt
 * the queue runs again must not look finished to its client.
 */
function promptChannel(hub: Hub, clientId: string | null, holdErrors = false) {
  const messages: HistoryStatus['messages'] = [];
  let ended = false;
  const held: (() => void)[] = [];
  // Every message of the prompt passes the flow: one execution_cached, one executed per node.
  const flow: SendJson = promptFlow((type, data, toAll = false, droppable = false) => {
    if (HISTORY_MESSAGE_TYPES.has(type)) messages.push([type, data]);
    if (TERMINAL_MESSAGE_TYPES.has(type)) ended = true;
    const deliver = () => hub.send(type, data, toAll ? null : clientId, { droppable });
    if (holdErrors && type === 'execution_error') held.push(deliver);
    else deliver();
  });
  return {
    messages,
    /** Whether the terminal message (success, error or interrupt) went out. */
    ended: () => ended,
    /** Sends the held error (or drops it, for a prompt that runs again). */
    release(send: boolean): void {
      for (const deliver of held.splice(0)) if (send) deliver();
    },
    send: (m: ServerMessage, opts: { toAll?: boolean; droppable?: boolean } = {}) =>
      flow(m.type, m.data, opts.toAll, opts.droppable),
    flow,
  };
}

type Channel = ReturnType<typeof promptChannel>;

/**
 * Runs the prompt on the engine, streaming its events to the channel. Never throws: a prompt
 * invalid now (a model folder vanished since it was queued) or an engine that throws ends in an
 * execution_error like any failed node.
 */
async function runOnEngine(
  deps: RunnerDeps,
  item: QueueItem,
  channel: Channel,
  run: { signal: AbortSignal; checkpoint: RunCheckpoint | undefined; onNode(node: string): void },
): Promise<RunResultSummary> {
  const { engine, hub } = deps;
  const promptId = item.promptId;
  const clientId = clientIdOf(item);
  try {
    const r = await engine.run(item.prompt, {
      promptId,
      signal: run.signal,
      previews: previewsWanted(item.extraData, hub.listeners(clientId)),
      checkpoints: run.checkpoint,
      onEvent(e) {
        if (e.type === 'executing') run.onNode(e.node);
        const w = toWire(e);
        if (w.kind === 'preview') hub.sendBinary(previewFrame(w.format, w.data), clientId);
        else channel.flow(w.type, w.data, w.toAll, w.droppable);
      },
    });
    if (r.status !== 'invalid') return r;
    const [nodeId, ne] = Object.entries(r.validation.nodeErrors)[0] ?? [null, undefined];
    const reason = ne?.errors.map((x) => x.message).join('; ') ?? r.validation.error.message;
    channel.send(
      promptFailed(
        promptId,
        { nodeId, nodeType: ne?.class_type ?? null },
        `${r.validation.error.message}: ${reason}`,
        'ValidationError',
      ),
    );
    return { status: 'error', outputs: {}, nodeId: nodeId ?? '', message: reason };
  } catch (err) {
    // The engine promises not to throw; if it does, the prompt still ends properly.
    const message = err instanceof Error ? err.message : String(err);
    deps.log(`engine.run threw for ${promptId}: ${message}`);
    channel.send(
      promptFailed(
        promptId,
        { nodeId: null, nodeType: null },
        message,
        err instanceof Error ? err.name : 'Error',
      ),
    );
    return { status: 'error', outputs: {}, nodeId: '', message };
  }
}

/** The terminal message of a run the engine ended without one (every prompt gets one). */
function terminalMessage(item: QueueItem, result: RunResultSummary): ServerMessage | undefined {
  if (result.status === 'interrupted') {
    return executionInterrupted({
      prompt_id: item.promptId,
      node_id: result.nodeId,
      node_type: null,
      executed: [],
    });
  }
  if (result.status === 'error') {
    const nodeType = item.prompt[result.nodeId]?.class_type ?? null;
    return promptFailed(item.promptId, { nodeId: result.nodeId, nodeType }, result.message, 'Error');
  }
  return undefined;
}

async function writeHistory(
  deps: RunnerDeps,
  item: QueueItem,
  result: RunResultSummary,
  messages: HistoryStatus['messages'],
): Promise<void> {
  const success = result.status === 'success';
  const outputs = historyOutputs(result.outputs);
  try {
    await deps.history.put(item.promptId, {
      prompt: toTuple(item),
      outputs,
      status: { status_str: success ? 'success' : 'error', completed: success, messages },
      meta: outputMeta(outputs),
    });
  } catch (err) {
    deps.log(`could not write history for ${item.promptId}: ${String(err)}`);
  }
}

/**
 * One prompt from start to `executing {node: null}`. After a graceful stop (`stopping()`) an
 * interrupted prompt goes back first in line to continue after the restart, with no history.
 */
async function runPrompt(
  deps: RunnerDeps,
  item: QueueItem,
  run: { signal: AbortSignal; onNode(node: string): void; stopping(): boolean },
): Promise<void> {
  const clientId = clientIdOf(item);
  const { shared } = deps;
  const channel = promptChannel(deps.hub, clientId, shared !== undefined);
  const checkpoint = openCheckpoint(deps, item);
  const lost = shared?.lockSignal(item.promptId);
  const signal = lost ? AbortSignal.any([run.signal, lost]) : run.signal;
  const onNode = (node: string) => {
    run.onNode(node);
    shared?.reportNode(item.promptId, node);
  };
  const result = await runOnEngine(deps, item, channel, { ...run, signal, onNode, checkpoint });
  if (result.status === 'success') checkpoint?.finish();
  else checkpoint?.stop();
  if (lost?.aborted) {
    // Another worker may run it now: whatever this one would write could clash with its run.
    deps.log(`prompt ${item.promptId} stopped here: this worker lost its lock`);
    shared?.abandon(item.promptId);
    return;
  }
  const terminal = channel.ended() ? undefined : terminalMessage(item, result);
  if (terminal) channel.send(terminal, { toAll: terminal.type === 'execution_interrupted' });
  if (shared && result.status === 'error' && isWorkerFault(result.message)) {
    const error = new Error(result.message);
    const retry = shared.willRetry(item.promptId, error);
    channel.release(!retry);
    if (retry) {
      await shared.fail(item.promptId, error);
      deps.log(`prompt ${item.promptId} failed on this worker (${result.message}); queued again`);
      return;
    }
  }
  channel.release(true);
  if (run.stopping() && result.status === 'interrupted') {
    // Only a crash marks a running prompt failed; a graceful stop (close(), SIGINT/SIGTERM) does not.
    await deps.queue.requeue({ ...item, extraData: { ...item.extraData, [RESUME_FLAG]: true } });
    return;
  }
  await writeHistory(deps, item, result, channel.messages);
  await deps.queue.complete(item.promptId);
  const done = executing({ node: null, display_node: null, prompt_id: item.promptId });
  deps.hub.send(done.type, done.data, clientId);
}

/** The prompt being run, and the node it executes now. */
interface Running {
  item: QueueItem;
  controller: AbortController;
  node?: string;
}

/**
 * How the loop sleeps while nothing is queued: a ring (a prompt queued, a task asked for, stop)
 * wakes it, and a ring that comes while it looks at the queue is not lost.
 */
function createDoorbell() {
  let wakeUp: (() => void) | undefined;
  let rung = false;
  return {
    ring(): void {
      rung = true;
      wakeUp?.();
    },
    /** Forgets earlier rings: called before looking at the queue. */
    listen(): void {
      rung = false;
    },
    /** Resolves at the next ring, or at once when one came since listen() or `ready()` holds. */
    async sleep(ready: () => boolean): Promise<void> {
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        if (rung || ready()) resolve();
      });
      wakeUp = undefined;
    },
  };
}

/** Tasks to run between prompts (POST /free), in the order asked; a failing one is logged. */
function createIdleTasks(log: (message: string) => void) {
  const tasks: (() => Promise<void>)[] = [];
  return {
    pending: () => tasks.length > 0,
    /** Queues `task`; resolves once it ran, whether it failed or not. */
    add(task: () => Promise<void> | void): Promise<void> {
      return new Promise<void>((resolve) => {
        tasks.push(async () => {
          try {
            await task();
          } finally {
            resolve();
          }
        });
      });
    },
    async runAll(): Promise<void> {
      while (tasks.length > 0) {
        try {
          await tasks.shift()!();
        } catch (err) {
          log(`idle task failed: ${String(err)}`);
        }
      }
    },
  };
}

export function createRunner(deps: RunnerDeps): Runner {
  let current: Running | undefined;
  let stopped = false;
  let loopDone: Promise<void> | undefined;
  const bell = createDoorbell();
  const idleTasks = createIdleTasks(deps.log);

  async function next(): Promise<QueueItem | undefined> {
    try {
      const item = await deps.queue.next();
      // Never fails the prompt: without an answer its client just gets no previews.
      if (item) await deps.shared?.prepare(item).catch(() => undefined);
      return item;
    } catch (err) {
      deps.log(`queue.next failed: ${String(err)}`);
      // A shared queue's next() does not wait when Redis is away: no tight loop meanwhile.
      if (deps.shared) await new Promise((r) => setTimeout(r, 1000));
      return undefined;
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      // Tasks asked for before this prompt was taken (POST /free) run before it.
      await idleTasks.runAll();
      bell.listen();
      const item = await next();
      if (!item) {
        if (stopped) break;
        // A shared queue's next() already waited in Redis for work.
        if (deps.shared) continue;
        await bell.sleep(idleTasks.pending);
        continue;
      }
      const running: Running = (current = { item, controller: new AbortController() });
      deps.onQueueChange();
      try {
        await runPrompt(deps, item, {
          signal: running.controller.signal,
          onNode: (node) => (running.node = node),
          stopping: () => stopped,
        });
      } catch (err) {
        deps.log(`prompt ${item.promptId} failed outside the engine: ${String(err)}`);
      }
      current = undefined;
      deps.onQueueChange();
    }
  }

  return {
    async start() {
      // On a shared queue a dead worker's prompt is taken over by the queue's stalled check.
      if (!deps.shared) await settleCrashed(deps);
      loopDone = loop();
    },
    wake: () => bell.ring(),
    interrupt(promptId) {
      if (!current) return false;
      if (promptId !== undefined && current.item.promptId !== promptId) return false;
      current.controller.abort(new Error('Interrupted'));
      return true;
    },
    runningId: () => current?.item.promptId,
    running() {
      return (
        current && { promptId: current.item.promptId, clientId: clientIdOf(current.item), node: current.node }
      );
    },
    whenIdle(task) {
      const done = idleTasks.add(task);
      if (!current) bell.ring();
      return done;
    },
    async stop() {
      stopped = true;
      current?.controller.abort(new Error('Server shutting down'));
      bell.ring();
      await loopDone;
    },
  };
}
