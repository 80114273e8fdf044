// Engine events → api.md's WebSocket messages (snake_case on the wire), plus who receives each.
// One pure function, so the mapping is tested without sockets.
import type { EngineEvent } from '../engine/types.ts';

export type WireMessage =
  | { kind: 'json'; type: string; data: Record<string, unknown>; toAll: boolean; droppable: boolean }
  | { kind: 'preview'; format: 'jpeg' | 'png'; data: Uint8Array };

/** The loop's clip counter is our extension: a new message type clients that don't know it ignore. */
export const ITERATION_MESSAGE = 'iteration';

export function toWire(e: EngineEvent): WireMessage {
  const json = (
    type: string,
    data: Record<string, unknown>,
    o: { toAll?: boolean; droppable?: boolean } = {},
  ) => ({ kind: 'json', type, data, toAll: o.toAll ?? false, droppable: o.droppable ?? false }) as const;
  switch (e.type) {
    case 'execution_start':
      return json('execution_start', { prompt_id: e.promptId, timestamp: e.timestamp });
    case 'execution_cached':
      return json('execution_cached', { nodes: e.nodes, prompt_id: e.promptId, timestamp: e.timestamp });
    case 'executing':
      return json('executing', { node: e.node, display_node: e.displayNode, prompt_id: e.promptId });
    case 'progress': {
      const data: Record<string, unknown> = {
        value: e.value,
        max: e.max,
        prompt_id: e.promptId,
        node: e.node,
      };
      if (e.iteration !== undefined) data.iteration = e.iteration;
      if (e.iterations !== undefined) data.iterations = e.iterations;
      // Progress is superseded by the next one: a lagging client may skip some.
      return json('progress', data, { droppable: true });
    }
    case 'loop_iteration':
      return json(ITERATION_MESSAGE, {
        node: e.node,
        iteration: e.iteration,
        iterations: e.iterations,
        prompt_id: e.promptId,
      });
    case 'executed':
      return json('executed', {
        node: e.node,
        display_node: e.displayNode,
        output: e.output,
        prompt_id: e.promptId,
      });
    case 'preview':
      return { kind: 'preview', format: e.format, data: e.data };
    case 'execution_success':
      return json('execution_success', { prompt_id: e.promptId, timestamp: e.timestamp });
    case 'execution_error':
      return json('execution_error', {
        prompt_id: e.promptId,
        node_id: e.nodeId,
        node_type: e.nodeType,
        executed: e.executed,
        exception_message: e.exceptionMessage,
        exception_type: e.exceptionType,
        traceback: e.traceback,
        current_inputs: e.currentInputs,
        current_outputs: e.currentOutputs,
      });
    case 'execution_interrupted':
      return json(
        'execution_interrupted',
        { prompt_id: e.promptId, node_id: e.nodeId, node_type: e.nodeType, executed: e.executed },
        { toAll: true },
      );
  }
}

/** Messages ComfyUI keeps in a history entry's status.messages. */
export const HISTORY_MESSAGE_TYPES: ReadonlySet<string> = new Set([
  'execution_start',
  'execution_cached',
  'execution_success',
  'execution_error',
  'execution_interrupted',
]);
