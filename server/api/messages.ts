// Engine events → api.md's WebSocket messages (snake_case on the wire), plus who receives each.
// One pure function, so the mapping is tested without sockets.
import type { EngineEvent } from '../engine/types.ts';
import {
  clipWritten,
  executed,
  executing,
  executionCached,
  executionError,
  executionInterrupted,
  executionStart,
  executionSuccess,
  iteration,
  progress,
  type MessageType,
  type ServerMessage,
  type UiOutput,
} from '../protocol/index.ts';

export type WireMessage =
  | (ServerMessage & { kind: 'json'; toAll: boolean; droppable: boolean })
  | { kind: 'preview'; format: 'jpeg' | 'png'; data: Uint8Array };

/** A JSON message for the prompt's client (`toAll`: for every client; `droppable`: a lagging one may skip it). */
function json(m: ServerMessage, o: { toAll?: boolean; droppable?: boolean } = {}): WireMessage {
  return { kind: 'json', ...m, toAll: o.toAll ?? false, droppable: o.droppable ?? false };
}

export function toWire(e: EngineEvent): WireMessage {
  switch (e.type) {
    case 'execution_start':
      return json(executionStart({ prompt_id: e.promptId, timestamp: e.timestamp }));
    case 'execution_cached':
      return json(executionCached({ nodes: e.nodes, prompt_id: e.promptId, timestamp: e.timestamp }));
    case 'executing':
      return json(executing({ node: e.node, display_node: e.displayNode, prompt_id: e.promptId }));
    case 'progress':
      // Progress is superseded by the next one: a lagging client may skip some.
      return json(
        progress({
          value: e.value,
          max: e.max,
          prompt_id: e.promptId,
          node: e.node,
          iteration: e.iteration,
          iterations: e.iterations,
        }),
        { droppable: true },
      );
    case 'loop_iteration':
      return json(
        iteration({ node: e.node, iteration: e.iteration, iterations: e.iterations, prompt_id: e.promptId }),
      );
    case 'executed':
      return json(
        executed({ node: e.node, display_node: e.displayNode, output: e.output, prompt_id: e.promptId }),
      );
    case 'preview':
      return { kind: 'preview', format: e.format, data: e.data };
    case 'execution_success':
      return json(executionSuccess({ prompt_id: e.promptId, timestamp: e.timestamp }));
    case 'execution_error':
      return json(
        executionError({
          prompt_id: e.promptId,
          node_id: e.nodeId,
          node_type: e.nodeType,
          executed: e.executed,
          exception_message: e.exceptionMessage,
          exception_type: e.exceptionType,
          traceback: e.traceback,
          current_inputs: e.currentInputs,
          current_outputs: e.currentOutputs,
        }),
      );
    case 'execution_interrupted':
      return json(
        executionInterrupted({
          prompt_id: e.promptId,
          node_id: e.nodeId,
          node_type: e.nodeType,
          executed: e.executed,
        }),
        { toAll: true },
      );
  }
}

/** Messages ComfyUI keeps in a history entry's status.messages. */
export const HISTORY_MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'execution_start',
  'execution_cached',
  'execution_success',
  'execution_error',
  'execution_interrupted',
]);

/**
 * Keys of a node's UI output that tell how far it has come, not what it produced: VideoWrite
 * reports each clip appended to its file under `clips`. They travel as CLIP_MESSAGE, never in
 * `executed` or history, where ComfyUI clients take every entry for a result.
 */
export const PROGRESS_UI_KEYS: ReadonlySet<string> = new Set(['clips']);

/** One clip appended to a node's file: `{node, display_node, prompt_id, iteration, iterations, frames}`. */
export const CLIP_MESSAGE = 'clip_written' satisfies MessageType;

/** A UI output without its progress keys; undefined when nothing else is left. */
export function resultUi(ui: UiOutput): UiOutput | undefined {
  const out: UiOutput = {};
  for (const [key, items] of Object.entries(ui)) {
    if (!PROGRESS_UI_KEYS.has(key) && items.length > 0) out[key] = items;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A history entry's outputs: only the nodes that produced files or other UI output. */
export function historyOutputs(outputs: Record<string, UiOutput>): Record<string, UiOutput> {
  const out: Record<string, UiOutput> = {};
  for (const [id, ui] of Object.entries(outputs)) {
    const kept = resultUi(ui);
    if (kept) out[id] = kept;
  }
  return out;
}

export type SendJson = (
  type: string,
  data: Record<string, unknown>,
  toAll?: boolean,
  droppable?: boolean,
) => void;

/** The messages that end a prompt (before the final `executing {node: null}`). */
export const TERMINAL_MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'execution_success',
  'execution_error',
  'execution_interrupted',
]);

/**
 * Shapes one prompt's JSON messages into the flow ComfyUI clients rely on (ComfyUI's execution.py
 * sends each once): `execution_cached` once, with every cached node id; one `executed` per node that
 * produced something, with its whole output, after its files are complete; then the terminal
 * message. The engine reports a loop's nodes once per clip (cached ones too), so both are collected
 * and sent just before the terminal message; per-clip progress goes out at once as CLIP_MESSAGE.
 * Returns the `send` to use instead of `send` for every message of the prompt.
 */
export function promptFlow(send: SendJson): SendJson {
  // The prompt id of execution_start; undefined while it has not started (a prompt found invalid
  // when its turn came ends with execution_error alone).
  let startId: unknown;
  let flushed = false;
  const cached = new Set<string>();
  let cachedAt = 0;
  const produced = new Map<
    string,
    { display: unknown; promptId: unknown; ui: UiOutput; seen: Set<string> }
  >();

  // The ids below come from the prompt's own messages, built by the protocol's constructors.
  const flush = () => {
    if (flushed) return;
    flushed = true;
    if (startId !== undefined) {
      const m = executionCached({
        nodes: [...cached],
        prompt_id: startId as string,
        timestamp: cachedAt || Date.now(),
      });
      send(m.type, m.data);
    }
    for (const [node, p] of produced) {
      const m = executed({
        node,
        display_node: p.display as string,
        output: p.ui,
        prompt_id: p.promptId as string,
      });
      send(m.type, m.data);
    }
  };

  return (type, data, toAll, droppable) => {
    if (type === 'execution_start') {
      startId = data.prompt_id;
    } else if (type === 'execution_cached') {
      for (const id of data.nodes as unknown[]) cached.add(String(id));
      cachedAt ||= Number(data.timestamp) || Date.now();
      return;
    } else if (type === 'executed') {
      const node = String(data.node);
      const output = (data.output ?? {}) as UiOutput;
      for (const item of output.clips ?? []) {
        const m = clipWritten({
          node,
          display_node: data.display_node as string,
          prompt_id: data.prompt_id as string,
          ...(typeof item === 'object' && item !== null ? item : { value: item }),
        });
        send(m.type, m.data);
      }
      const ui = resultUi(output);
      if (!ui) return;
      let p = produced.get(node);
      if (!p) {
        p = { display: data.display_node, promptId: data.prompt_id, ui: {}, seen: new Set() };
        produced.set(node, p);
      }
      // Lists concatenate across calls, an item repeated (a cached replay) once, as in history.
      for (const [key, items] of Object.entries(ui)) {
        const list = (p.ui[key] ??= []);
        for (const item of items) {
          const k = `${key}\u0000${JSON.stringify(item)}`;
          if (p.seen.has(k)) continue;
          p.seen.add(k);
          list.push(item);
        }
      }
      return;
    } else if (TERMINAL_MESSAGE_TYPES.has(type)) {
      flush();
    }
    send(type, data, toAll, droppable);
  };
}

/**
 * Whether a prompt's nodes should make previews (a PNG per decoded clip): only when some socket
 * will receive them, and not when the client asked for none with ComfyUI's per-prompt hint
 * `extra_data.preview_method: "none"`. A client that neither listens nor wants them does not pay.
 */
export function previewsWanted(extraData: Record<string, unknown>, listeners: number): boolean {
  return listeners > 0 && extraData.preview_method !== 'none';
}
