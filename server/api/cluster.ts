// What an API server or a worker does differently on a shared (Redis) queue, as small parts that
// serve.ts and worker.ts plug in where the embedded queue has its single-process ones:
//   - the runner a router sees (clusterControl): /interrupt and deleting a running prompt are
//     published to every worker, /free applies to this process's own worker if it has one;
//   - the `status` broadcast goes through Redis, so every client of every API server gets it;
//   - a worker's runner publishes its prompts' messages and takes interrupts from any process;
//   - while Redis is away, the routes that need it answer 503 with the (redacted) URL at once,
//     instead of waiting for the reconnection.
import express, { type Router } from 'express';
import { executing, queueStatus } from '../protocol/index.ts';
import { errorBody } from './errors.ts';
import type { HistoryStore, QueueItem } from './queue.ts';
import type { EventBus } from './redis/bus.ts';
import type { RedisPromptQueue, RedisWorkerQueue, RunningPrompt } from './redis/queue.ts';
import { clientIdOf, crashedEntry, CRASHED_AGAIN_MESSAGE, type Runner, type SharedWorker } from './runner.ts';

/** A deployment's shared state, as one process holds it (server/api/redis/store.ts). */
export interface SharedParts {
  queue: RedisPromptQueue;
  /** The queue's worker side, in a process that runs prompts; absent with `--workers 0`. */
  worker?: RedisWorkerQueue;
  bus: EventBus;
  /** The Redis URL with the password hidden. */
  redacted: string;
  /** Whether the connections to Redis are up now. */
  connected(): boolean;
}

/**
 * The runner the routes see. Which worker runs a prompt is not known here, so an interrupt is
 * published to all of them (each stops it if it runs it) and answers false: /interrupt then also
 * deletes it when it is still pending, which the queue refuses for a prompt a worker holds.
 */
export function clusterControl(shared: SharedParts, local: Runner | undefined): Runner {
  const publish = (promptId?: string) => {
    shared.bus.interrupt(promptId).catch(() => undefined);
  };
  return {
    start: async () => undefined,
    wake: () => local?.wake(),
    interrupt(promptId) {
      publish(promptId);
      return false;
    },
    runningId: () => undefined,
    running: () => undefined,
    // POST /free frees this process's models; an API server without a worker holds none.
    whenIdle: (task) => (local ? local.whenIdle(task) : Promise.resolve(task())),
    stop: async () => undefined,
  };
}

/** `status` (the queue's length) to every client of every API server, through Redis. */
export function sharedStatus(shared: SharedParts, log: (m: string) => void) {
  const remaining = () => shared.queue.remaining();
  const changed = () => {
    remaining()
      .then((n) => {
        const m = queueStatus(n);
        shared.bus.publish(m.type, m.data, null);
      })
      .catch((err: unknown) => log(`status broadcast failed: ${String(err)}`));
  };
  return { remaining, changed };
}

/** The prompt `clientId` runs now on any worker, and its node (for a client that reconnects). */
export async function runningFor(
  shared: SharedParts,
  clientId: string,
): Promise<{ promptId: string; node?: string } | undefined> {
  const all: RunningPrompt[] = await shared.queue.runningNodes();
  const mine = all.find((r) => clientIdOf(r.item) === clientId && r.node !== null);
  return mine && { promptId: mine.item.promptId, node: mine.node ?? undefined };
}

/** What a worker's runner takes from the shared queue (see SharedWorker in runner.ts). */
export function sharedWorker(
  worker: RedisWorkerQueue,
  bus: EventBus,
  log: (m: string) => void,
): SharedWorker {
  return {
    lockSignal: (id) => worker.lockSignal(id),
    abandon: (id) => worker.abandon(id),
    reportNode: (id, node) => worker.reportNode(id, node),
    willRetry: (id, error) => worker.willRetry(id, error),
    fail: (id, error) => worker.fail(id, error),
    async prepare(item: QueueItem) {
      // Which worker runs what: the one line that ties a prompt to a machine in the logs.
      const again = item.restarts ? ` (try ${item.restarts + 1})` : '';
      log(`prompt ${item.promptId} taken by this worker${again}`);
      const clientId = clientIdOf(item);
      if (clientId) await bus.listeners(clientId);
    },
  };
}

/**
 * A worker's links to the rest of the deployment: interrupts from any process reach its runner,
 * and a prompt the queue gave up on (it came back from dead workers too often) is written to
 * history as failed and ended for its client. Returns what undoes them.
 */
export async function attachWorker(
  shared: SharedParts & { worker: RedisWorkerQueue },
  runner: Runner,
  history: HistoryStore,
  log: (m: string) => void,
): Promise<() => void> {
  const offInterrupt = await shared.bus.onInterrupt((id) => runner.interrupt(id));
  const offGaveUp = shared.worker.onGaveUp((item, reason) => {
    log(`prompt ${item.promptId} came back from stopped workers too often (${reason}); marked failed`);
    history
      .put(item.promptId, crashedEntry(item, CRASHED_AGAIN_MESSAGE))
      .then(() => {
        const done = executing({ node: null, display_node: null, prompt_id: item.promptId });
        shared.bus.publish(done.type, done.data, clientIdOf(item));
      })
      .catch((err: unknown) => log(`could not write history for ${item.promptId}: ${String(err)}`));
  });
  return () => {
    offInterrupt();
    offGaveUp();
  };
}

/** The routes that wait for Redis: while it is away they answer 503 at once, saying so. */
const NEEDS_QUEUE = /^\/(?:api\/)?(?:prompt|queue|history|interrupt|runs\/resume)(?:\/|$)/;

export function unavailableGuard(shared: SharedParts): Router {
  const r = express.Router();
  r.use((req, res, next) => {
    if (shared.connected() || !NEEDS_QUEUE.test(req.path)) {
      next();
      return;
    }
    res
      .status(503)
      .set('Retry-After', '2')
      .json(
        errorBody(
          'queue_unavailable',
          `The shared queue (${shared.redacted}) cannot be reached; reconnecting. Try again shortly.`,
        ),
      );
  });
  return r;
}
