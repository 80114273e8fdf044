// The prompt queue and history behind small interfaces, so an embedded store (store.ts, LMDB) can
// later be swapped for a shared one (BullMQ/Redis) without touching routes or the runner.
import type { ApiPrompt, HistoryEntry, QueueTuple } from '../protocol/index.ts';

// The wire shapes are the protocol's; re-exported here, where the stores' interfaces use them.
export type { HistoryEntry, HistoryStatus, QueueTuple } from '../protocol/index.ts';

/** One queued prompt; on the wire it is ComfyUI's tuple [number, prompt_id, prompt, extra_data, outputs]. */
export interface QueueItem {
  /** Sort key: ComfyUI's `number` (FIFO counter; negative for `front: true`, so those jump). */
  number: number;
  promptId: string;
  prompt: ApiPrompt;
  extraData: Record<string, unknown>;
  /** Output node ids to execute. */
  outputs: string[];
  /** How many times the server died while this prompt ran and it was queued again (absent: 0). */
  restarts?: number;
}

export function toTuple(item: QueueItem): QueueTuple {
  return [item.number, item.promptId, item.prompt, item.extraData, item.outputs];
}

export interface PromptQueue {
  /**
   * Adds a prompt, durably (persisted before the promise resolves). Without an explicit `number`,
   * FIFO; `front` puts it before everything pending (latest front first, as ComfyUI does).
   */
  enqueue(
    item: Omit<QueueItem, 'number'> & { number?: number },
    opts?: { front?: boolean },
  ): Promise<QueueItem>;
  /** Atomically takes the first pending prompt and marks it running; undefined when none is pending. */
  next(): Promise<QueueItem | undefined>;
  /** The prompt marked running, if any. */
  running(): Promise<QueueItem | undefined>;
  /** Pending prompts in run order. */
  pending(): Promise<QueueItem[]>;
  /** Pending + running, ComfyUI's queue_remaining. */
  remaining(): Promise<number>;
  /** Removes these pending prompts; returns the ids removed. */
  delete(promptIds: readonly string[]): Promise<string[]>;
  /** Removes every pending prompt. */
  clear(): Promise<void>;
  /**
   * Puts the running prompt `item.promptId` back in pending under `item.number` (so it runs next when
   * that is its old number), replacing the running mark in the same transaction: a crash in
   * between can neither lose it nor queue it twice.
   */
  requeue(item: QueueItem): Promise<void>;
  /** The running prompt is done (its history is written first); clears the running mark. */
  complete(promptId: string): Promise<void>;
  /** Whether a prompt id is pending or running (prompt ids are unique). */
  has(promptId: string): Promise<boolean>;
}

export interface HistoryStore {
  put(promptId: string, entry: HistoryEntry): Promise<void>;
  get(promptId: string): Promise<HistoryEntry | undefined>;
  /** Oldest first; with maxItems, only the newest maxItems. */
  list(maxItems?: number): Promise<[string, HistoryEntry][]>;
  delete(promptIds: readonly string[]): Promise<void>;
  clear(): Promise<void>;
}
