// The queue lists and the running prompt, read from GET /queue: after a reload mid-run, or when
// another client's prompt starts (its messages go to that client), the panel shows it running.
import type { QueuePanel } from './queue-panel.ts';
import type { RunState } from './run-state.ts';

/**
 * A function that reloads the queue lists and takes the running prompt from them; `onRunChanged`
 * is called when that changed the run state.
 */
export function createQueueSync(
  panel: QueuePanel,
  state: RunState,
  onRunChanged: () => void,
): () => Promise<void> {
  let queuePoll: ReturnType<typeof setTimeout> | undefined;
  const refreshQueue = async (): Promise<void> => {
    const q = await panel.refresh();
    if (q === undefined) return;
    if (state.noticeRunning(q.queue_running[0]?.[1])) onRunChanged();
    // The queue's status is broadcast when a prompt is queued, not when it starts: while prompts
    // wait with none running, look again shortly to see the next one start.
    clearTimeout(queuePoll);
    if (q.queue_running.length === 0 && q.queue_pending.length > 0)
      queuePoll = setTimeout(() => void refreshQueue(), 250);
  };
  return refreshQueue;
}
