// A benchmark child process (bench/proc.ts startWorker): runs named tasks sent over IPC one at a
// time and answers each with its result. State (loaded sessions, an engine's cache) lives on between
// tasks, so repeated runs measure steady state and one-time costs are measured once.
import { engineTasks } from './engine-overhead.ts';
import { guidanceTasks } from './guidance.ts';
import { incrementalTasks } from './incremental.ts';

type Task = (args: never) => Promise<unknown>;

const tasks: Record<string, Task> = { ...engineTasks, ...guidanceTasks, ...incrementalTasks };

interface Request {
  id: number;
  task: string;
  args: unknown;
}

if (!process.send) throw new Error('bench/worker.ts runs as a child process (bench/proc.ts startWorker)');

process.on('message', (req: Request) => {
  const task = tasks[req.task];
  const run = task ? task(req.args as never) : Promise.reject(new Error(`unknown task ${req.task}`));
  run.then(
    (result) => process.send!({ id: req.id, ok: true, result }),
    (err: unknown) =>
      process.send!({
        id: req.id,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }),
  );
});
// Exit when the parent disconnects, whatever sessions or worker threads are still open.
process.on('disconnect', () => process.exit(0));
