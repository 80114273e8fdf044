// GET /queue and GET /history: queued prompts as ComfyUI's tuples, finished ones as history entries.
import { z } from 'zod';
import { ApiPromptSchema } from './prompt.ts';

/** What a node shows in the UI: `{images: [{filename, subfolder, type}], animated: [true], …}`. */
export const UiOutputSchema = z.record(z.string(), z.array(z.unknown()));
export type UiOutput = z.infer<typeof UiOutputSchema>;

/** A file a node wrote: `{filename, subfolder, type}` (+ `format` for videos). */
export const FileRefSchema = z.object({
  filename: z.string(),
  subfolder: z.string(),
  type: z.string(),
  format: z.string().optional(),
});
export type FileRef = z.infer<typeof FileRefSchema>;

/** `[number, prompt_id, prompt, extra_data, outputs to execute]`. */
export const QueueTupleSchema = z.tuple([
  z.number(),
  z.string(),
  ApiPromptSchema,
  z.record(z.string(), z.unknown()),
  z.array(z.string()),
]);
export type QueueTuple = z.infer<typeof QueueTupleSchema>;

/** GET /queue. */
export const QueueStateSchema = z.object({
  queue_running: z.array(QueueTupleSchema),
  queue_pending: z.array(QueueTupleSchema),
});
export type QueueState = z.infer<typeof QueueStateSchema>;

/** How a prompt ended, with the messages ComfyUI keeps: `[type, data]` of start, cached and the end. */
export const HistoryStatusSchema = z.object({
  status_str: z.enum(['success', 'error']),
  completed: z.boolean(),
  messages: z.array(z.tuple([z.string(), z.record(z.string(), z.unknown())])),
});
export type HistoryStatus = z.infer<typeof HistoryStatusSchema>;

/** One finished prompt. */
export const HistoryEntrySchema = z.object({
  prompt: QueueTupleSchema,
  outputs: z.record(z.string(), UiOutputSchema),
  status: HistoryStatusSchema,
  meta: z.record(
    z.string(),
    z.object({
      node_id: z.string(),
      display_node: z.string(),
      parent_node: z.null(),
      real_node_id: z.string(),
    }),
  ),
});
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;

/** GET /history: prompt id → entry, oldest first. */
export const HistorySchema = z.record(z.string(), HistoryEntrySchema);
export type History = z.infer<typeof HistorySchema>;
