// Every JSON message the server sends on the WebSocket (api.md, ComfyUI's names and snake_case
// fields), plus rdflow's own `iteration` and `clip_written`, which clients that don't know them
// ignore. One schema per message; the server builds each with its constructor, the editor parses
// what arrives with readerMessageSchema, the tests assert shapes with serverMessageSchema.
import { z } from 'zod';
import { UiOutputSchema } from './history.ts';

const promptId = z.string();
/** Milliseconds since the epoch. */
const timestamp = z.number();

/** The queue changed (to everyone), or a socket connected (to it, with its `sid`). */
export const StatusDataSchema = z.object({
  status: z.object({ exec_info: z.object({ queue_remaining: z.number() }) }),
  sid: z.string().optional(),
});

export const ExecutionStartDataSchema = z.object({ prompt_id: promptId, timestamp });

/** Nodes whose cached outputs are reused, once per prompt. */
export const ExecutionCachedDataSchema = z.object({
  nodes: z.array(z.string()),
  prompt_id: promptId,
  timestamp,
});

/** A node starts; `node: null` ends every prompt, whatever its outcome. */
export const ExecutingDataSchema = z.object({
  node: z.string().nullable(),
  display_node: z.string().nullable(),
  prompt_id: promptId,
});

/** A node's steps; inside a loop also the innermost loop's clip (0-based) and clip count. */
export const ProgressDataSchema = z.object({
  value: z.number(),
  max: z.number(),
  prompt_id: promptId,
  node: z.string(),
  iteration: z.number().optional(),
  iterations: z.number().optional(),
});

/** rdflow: a loop starts clip `iteration` (0-based) of `iterations`. */
export const IterationDataSchema = z.object({
  node: z.string(),
  iteration: z.number(),
  iterations: z.number(),
  prompt_id: promptId,
});

/** A node's results (files and other UI output), once per node, after its files are complete. */
export const ExecutedDataSchema = z.object({
  node: z.string(),
  display_node: z.string(),
  output: UiOutputSchema,
  prompt_id: promptId,
});

/**
 * rdflow: one clip appended to a node's file (per-clip progress, never in `executed`). Carries the
 * fields of the node's `clips` UI item (VideoWrite: iteration, iterations, frames) as they are.
 */
export const ClipWrittenDataSchema = z.looseObject({
  node: z.string(),
  display_node: z.string(),
  prompt_id: promptId,
  iteration: z.number().optional(),
  iterations: z.number().optional(),
  frames: z.number().optional(),
});

export const ExecutionSuccessDataSchema = z.object({ prompt_id: promptId, timestamp });

/**
 * A prompt failed. `node_id`/`node_type` are null when no node is to blame (the server stopped,
 * the engine itself failed); `timestamp` only in the history entry of a prompt the server died in.
 */
export const ExecutionErrorDataSchema = z.object({
  prompt_id: promptId,
  node_id: z.string().nullable(),
  node_type: z.string().nullable(),
  executed: z.array(z.string()),
  exception_message: z.string(),
  exception_type: z.string(),
  traceback: z.array(z.string()),
  current_inputs: z.record(z.string(), z.unknown()),
  current_outputs: z.record(z.string(), z.unknown()),
  timestamp: timestamp.optional(),
});

/** A prompt was stopped (to everyone). */
export const ExecutionInterruptedDataSchema = z.object({
  prompt_id: promptId,
  node_id: z.string().nullable(),
  node_type: z.string().nullable(),
  executed: z.array(z.string()),
});

function messageSchema<T extends string, D extends z.ZodType>(type: T, data: D) {
  return z.object({ type: z.literal(type), data });
}

/** Every message exactly as the server sends it: the one list the types and constructors come from. */
export const serverMessageSchema = z.discriminatedUnion('type', [
  messageSchema('status', StatusDataSchema),
  messageSchema('execution_start', ExecutionStartDataSchema),
  messageSchema('execution_cached', ExecutionCachedDataSchema),
  messageSchema('executing', ExecutingDataSchema),
  messageSchema('progress', ProgressDataSchema),
  messageSchema('iteration', IterationDataSchema),
  messageSchema('executed', ExecutedDataSchema),
  messageSchema('clip_written', ClipWrittenDataSchema),
  messageSchema('execution_success', ExecutionSuccessDataSchema),
  messageSchema('execution_error', ExecutionErrorDataSchema),
  messageSchema('execution_interrupted', ExecutionInterruptedDataSchema),
]);

export type ServerMessage = z.infer<typeof serverMessageSchema>;
export type MessageType = ServerMessage['type'];
export type MessageData<T extends MessageType> = Extract<ServerMessage, { type: T }>['data'];
/** One message as it goes on the wire: `{type, data}`. */
export type Message<T extends MessageType> = { type: T; data: MessageData<T> };

/**
 * Every message as a reader needs it: only the fields it acts on are required, the rest may be
 * missing (a ComfyUI-compatible server, an older rdflow), so a message is not lost for a field
 * nobody reads.
 */
export const readerMessageSchema = z.discriminatedUnion('type', [
  messageSchema('status', StatusDataSchema.partial()),
  messageSchema('execution_start', ExecutionStartDataSchema.partial().required({ prompt_id: true })),
  messageSchema(
    'execution_cached',
    ExecutionCachedDataSchema.partial().required({ prompt_id: true, nodes: true }),
  ),
  messageSchema('executing', ExecutingDataSchema.partial().required({ node: true })),
  messageSchema('progress', ProgressDataSchema.partial().required({ value: true, max: true })),
  messageSchema('iteration', IterationDataSchema.partial().required({ iteration: true, iterations: true })),
  messageSchema('executed', ExecutedDataSchema.partial().required({ node: true, output: true })),
  messageSchema('clip_written', ClipWrittenDataSchema.partial().required({ node: true })),
  messageSchema('execution_success', ExecutionSuccessDataSchema.partial().required({ prompt_id: true })),
  messageSchema(
    'execution_error',
    ExecutionErrorDataSchema.partial().required({
      prompt_id: true,
      node_id: true,
      node_type: true,
      exception_message: true,
    }),
  ),
  messageSchema(
    'execution_interrupted',
    ExecutionInterruptedDataSchema.partial().required({ prompt_id: true }),
  ),
]);
export type ReaderMessage = z.infer<typeof readerMessageSchema>;

const MESSAGE_TYPES: ReadonlySet<string> = new Set(
  serverMessageSchema.options.map((o) => o.shape.type.value),
);

/** Whether `type` names a message of this protocol (others are ignored by readers). */
export function isMessageType(type: unknown): type is MessageType {
  return typeof type === 'string' && MESSAGE_TYPES.has(type);
}

function constructor<T extends MessageType>(type: T): (data: MessageData<T>) => Message<T> {
  return (data) => ({ type, data });
}

// One constructor per message (`progress` and `queueStatus` below): the only way the server builds one.
export const executionStart = constructor('execution_start');
export const executionCached = constructor('execution_cached');
export const executing = constructor('executing');
export const iteration = constructor('iteration');
export const executed = constructor('executed');
export const clipWritten = constructor('clip_written');
export const executionSuccess = constructor('execution_success');
export const executionError = constructor('execution_error');
export const executionInterrupted = constructor('execution_interrupted');

/** `progress`, its loop fields only when the node runs inside a loop (absent, not undefined). */
export function progress(data: MessageData<'progress'>): Message<'progress'> {
  const { iteration: i, iterations: n, ...rest } = data;
  return {
    type: 'progress',
    data: {
      ...rest,
      ...(i !== undefined ? { iteration: i } : {}),
      ...(n !== undefined ? { iterations: n } : {}),
    },
  };
}

/** `status` with the queue's length, to everyone, or to one socket with its `sid`. */
export function queueStatus(queueRemaining: number, sid?: string): Message<'status'> {
  const data: MessageData<'status'> = { status: { exec_info: { queue_remaining: queueRemaining } } };
  if (sid !== undefined) data.sid = sid;
  return { type: 'status', data };
}
