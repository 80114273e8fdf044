// The server's WebSocket, as the editor follows it: each message is folded into the run state,
// then the canvas, the panels, the node outputs and the toasts follow; preview frames show on the
// running node and the output nodes it feeds.
import type { LGraph } from '@comfyorg/litegraph';
import type { LGraphNode } from '@comfyorg/litegraph';
import type { Api } from './api.ts';
import { toast } from './errors.ts';
import type { HistoryPanel } from './history-panel.ts';
import type { OutputView } from './output.ts';
import { filesOf } from './output.ts';
import type { QueuePanel } from './queue-panel.ts';
import { nodeInfoOf } from './registry.ts';
import type { RunState } from './run-state.ts';
import type { PreviewImage, ServerMessage } from './types.ts';

export interface RunMessagesOptions {
  api: Api;
  graph: LGraph;
  state: RunState;
  outputs: OutputView;
  panel: QueuePanel;
  historyPanel: HistoryPanel;
  titleOf(nodeId: string): string;
  redraw(): void;
  refreshQueue(): Promise<void>;
}

/** Output nodes fed directly by this node: they show its previews too (a clip as soon as decoded). */
function outputConsumers(node: LGraphNode): LGraphNode[] {
  const out: LGraphNode[] = [];
  for (let slot = 0; slot < node.outputs.length; slot++) {
    for (const target of node.getOutputNodes(slot) ?? []) {
      if (nodeInfoOf(target)?.output_node === true) out.push(target);
    }
  }
  return out;
}

/** Opens the socket (it reconnects by itself) and follows it. */
export function connectRunMessages(o: RunMessagesOptions): void {
  const { graph, state, outputs, panel, historyPanel } = o;

  const onMessage = (msg: ServerMessage): void => {
    if (!state.apply(msg)) return;
    switch (msg.type) {
      case 'status':
        // Sent to every client when the queue changes: a prompt (maybe another client's) started
        // or ended, so the running one and the history may be new.
        void o.refreshQueue();
        void historyPanel.refresh();
        break;
      case 'executing':
        if (msg.data.node === null) {
          void o.refreshQueue();
          void historyPanel.refresh();
        }
        break;
      case 'executed': {
        const node = graph.getNodeById(msg.data.node);
        const files = filesOf(msg.data.output);
        if (node !== null && files.length > 0) outputs.showFiles(node, files);
        break;
      }
      case 'execution_error':
        toast(
          `#${msg.data.node_id} ${o.titleOf(String(msg.data.node_id))} failed: ${msg.data.exception_message}`,
          'error',
        );
        break;
      case 'execution_interrupted':
        // Sent to every client; only ours is news here.
        if (msg.data.prompt_id === state.promptId) toast('Interrupted', 'info');
        break;
      case 'execution_success':
        toast('Finished', 'success');
        break;
    }
    panel.render(state);
    o.redraw();
  };

  const onPreview = (image: PreviewImage): void => {
    const node = state.executing === undefined ? null : graph.getNodeById(state.executing);
    if (node === null) return;
    outputs.setPreview(node, image);
    for (const consumer of outputConsumers(node)) {
      if (!outputs.hasOverlay(String(consumer.id))) outputs.setPreview(consumer, image);
    }
    o.redraw();
  };

  o.api.connect({
    onMessage,
    onPreview,
    onStatusChange: (connected) => {
      panel.setConnected(connected);
      panel.render(state);
    },
  });
}

/** After a reload: the files of the last run, on the nodes of this graph that produced them. */
export async function showLastOutputs(api: Api, graph: LGraph, outputs: OutputView): Promise<void> {
  try {
    const last = await api.lastHistory();
    const prompt = last?.prompt[2] ?? {};
    for (const [id, output] of Object.entries(last?.outputs ?? {})) {
      const node = graph.getNodeById(id);
      if (node === null || node.type !== prompt[id]?.class_type) continue;
      const files = filesOf(output);
      if (files.length > 0 && !outputs.hasOverlay(id)) outputs.showFiles(node, files);
    }
  } catch {
    // No history to show is not an error worth a toast.
  }
}
