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

/** What one prompt's messages go through: the flow for its client, and a copy for its history. */
function promptChannel(hub: Hub, clientId: string | null) {
  const messages: HistoryStatus['messages'] = [];
  let ended = false;
  // Every message of the prompt passes the flow: one execution_cached, one executed per node.
  const flow: SendJson = promptFlow((type, data, toAll = false, droppable = false) => {
    if (HISTORY_MESSAGE_TYPES.has(type)) messages.push([type, data]);
    if (TERMINAL_MESSAGE_TYPES.has(type)) ended = true;
    hub.send(type, data, toAll ? null : clientId, { droppable });
  });
  return {
    messages,
    /** Whether the terminal message (success, error or interrupt) went out. */
    ended: () => ended,
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
  const channel = promptChannel(deps.hub, clientId);
  const checkpoint = openCheckpoint(deps, item);
  const result = await runOnEngine(deps, item, channel, { ...run, checkpoint });
  if (result.status === 'success') checkpoint?.finish();
  else checkpoint?.stop();
  const terminal = channel.ended() ? undefined : terminalMessage(item, result);
  if (terminal) channel.send(terminal, { toAll: terminal.type === 'execution_interrupted' });
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
      return await deps.queue.next();
    } catch (err) {
      deps.log(`queue.next failed: ${String(err)}`);
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
      await settleCrashed(deps);
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
