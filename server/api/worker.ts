// `runWorker`: a process that only runs prompts (`rdflow worker --queue redis://…`). It takes
// prompts from the shared queue, runs them on its engine with the model loaded once and kept, and
// publishes their messages through Redis to whichever API server holds each client. No HTTP.
import { attachWorker, sharedStatus, type SharedParts } from './cluster.ts';
import { createExecution, prepareFolders, type ServerParts } from './serve.ts';
import type { RedisWorkerQueue } from './redis/queue.ts';
import type { ServerSettings } from './settings.ts';

export interface RunningWorker {
  /** Interrupts the running prompt (it goes back first in line, to continue elsewhere), stops. */
  close(): Promise<void>;
}

export type WorkerParts = Omit<ServerParts, 'shared' | 'listModels'> & {
  shared: SharedParts & { worker: RedisWorkerQueue };
};

export async function runWorker(settings: ServerSettings, parts: WorkerParts): Promise<RunningWorker> {
  const { shared } = parts;
  prepareFolders(settings, true);
  const status = sharedStatus(shared, settings.log);
  const { engine, runner } = createExecution(
    settings,
    { ...parts, listModels: () => [] },
    shared.bus.hub(),
    status.changed,
  );
  let detach: (() => void) | undefined;
  try {
    detach = await attachWorker(shared, runner, parts.history, settings.log);
    await runner.start();
  } catch (err) {
    detach?.();
    engine.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        detach?.();
        await runner.stop();
        engine.close();
      })();
      return closing;
    },
  };
}
