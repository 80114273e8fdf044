// Edits of the selected nodes (ComfyUI's Ctrl+G, Ctrl+M, Ctrl+B). Each returns whether it changed
// the graph, so the caller records the edit and redraws only then.
import { LGraphGroup } from '@comfyorg/litegraph';
import type { LGraphNode, LGraph, LGraphCanvas } from '@comfyorg/litegraph';

/** Puts a group around the selected nodes. */
export function groupSelection(canvas: LGraphCanvas, graph: LGraph): boolean {
  const nodes = Object.values(canvas.selected_nodes);
  if (nodes.length === 0) return false;
  const group = new LGraphGroup('Group');
  graph.add(group);
  group.resizeTo(nodes, 10);
  return true;
}

/** Sets the selected nodes to `mode`, or back to always when all of them already have it. */
export function toggleSelectionMode(canvas: LGraphCanvas, mode: number): boolean {
  const nodes: LGraphNode[] = Object.values(canvas.selected_nodes);
  if (nodes.length === 0) return false;
  const all = nodes.every((n) => n.mode === mode);
  for (const n of nodes) n.mode = all ? 0 : mode;
  return true;
}
