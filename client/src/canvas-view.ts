// The litegraph canvas as the editor sets it up: drawing settings, the run's marks drawn on nodes,
// fitting the graph in view, the menus (no subgraphs) and the node search.
import { LGraphCanvas, LiteGraph } from '@comfyorg/litegraph';
import type { IContextMenuValue, LGraphNode, LGraph } from '@comfyorg/litegraph';
import { drawCanvasDecorations, drawNodeDecorations } from './decorations.ts';
import { searchNodeTypes } from './node-search.ts';
import type { OutputView } from './output.ts';
import { registerNodeTypes } from './registry.ts';
import type { RunState } from './run-state.ts';
import type { ObjectInfo } from './types.ts';

/** The canvas and what the rest of the editor asks of it. */
export interface CanvasView {
  readonly canvas: LGraphCanvas;
  redraw(): void;
  /** A node's title, or "node <id>" for one not in the graph (any more). */
  titleOf(nodeId: string): string;
  /** Selects a node and centres the view on it. */
  focusNode(nodeId: string): void;
  /** Pans and zooms so the whole graph is in view. */
  fitView(): void;
  /** Sizes the canvas to its box now and whenever the window is resized. */
  followWindowSize(): void;
}

/** A canvas on `element` showing `graph`, with the editor's drawing settings. */
export function createCanvasView(element: HTMLCanvasElement, graph: LGraph): CanvasView {
  const canvas = new LGraphCanvas(element, graph);
  canvas.show_info = false;
  canvas.render_canvas_border = false;
  // The default workflow fits a laptop screen at about 0.55 zoom; keep its text drawn there.
  canvas.low_quality_zoom_threshold = 0.4;

  const redraw = (): void => canvas.setDirty(true, true);
  return {
    canvas,
    redraw,
    titleOf: (id) => graph.getNodeById(id)?.title ?? `node ${id}`,
    focusNode: (id) => {
      const node = graph.getNodeById(id);
      if (node === null) return;
      canvas.selectNode(node);
      canvas.centerOnNode(node);
      redraw();
    },
    fitView: () => {
      fitGraph(canvas, graph);
      redraw();
    },
    followWindowSize: () => {
      const resize = (): void => {
        canvas.resize();
        redraw();
      };
      window.addEventListener('resize', resize);
      resize();
    },
  };
}

/**
 * Registers the server's node types, each drawing the run's marks (running, cached, errors) and
 * its previews; the canvas draws the links' marks on top.
 */
export function registerDecoratedNodeTypes(
  objectInfo: ObjectInfo,
  canvas: LGraphCanvas,
  graph: LGraph,
  state: RunState,
  outputs: OutputView,
): void {
  registerNodeTypes(objectInfo, {
    drawForeground: (node, ctx) =>
      drawNodeDecorations(node, ctx, {
        state,
        preview: (id) => outputs.preview(id),
        hasOverlay: (id) => outputs.hasOverlay(id),
      }),
  });
  canvas.onDrawForeground = (ctx: CanvasRenderingContext2D) => drawCanvasDecorations(ctx, graph.nodes, state);
}

/** Pans and zooms so the whole graph is in view. */
function fitGraph(canvas: LGraphCanvas, graph: LGraph): void {
  // From positions and sizes: litegraph's bounding rects are only measured when drawn.
  const nodes: LGraphNode[] = graph.nodes;
  if (nodes.length === 0) return;
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  const x0 = Math.min(...nodes.map((n) => n.pos[0]));
  const y0 = Math.min(...nodes.map((n) => n.pos[1] - th));
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  const pad = 40;
  canvas.ds.fitToBounds([x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad], { zoom: 0.95 });
}

export interface CanvasMenuActions {
  groupSelection(): void;
  fitView(): void;
}

/** The canvas and node menus, without litegraph's subgraph entries (the server runs flat graphs). */
export function installCanvasMenus(canvas: LGraphCanvas, actions: CanvasMenuActions): void {
  canvas.getMenuOptions = (): IContextMenuValue<string>[] => {
    const options: IContextMenuValue<string>[] = [
      { content: 'Add Node', has_submenu: true, callback: LGraphCanvas.onMenuAdd },
      { content: 'Add Group', callback: LGraphCanvas.onGroupAdd },
    ];
    if (Object.keys(canvas.selected_nodes).length > 0) {
      options.push({ content: 'Group selected nodes', callback: actions.groupSelection });
    }
    if (Object.keys(canvas.selected_nodes).length > 1) {
      options.push({ content: 'Align', has_submenu: true, callback: LGraphCanvas.onGroupAlign });
    }
    options.push({ content: 'Fit view', callback: actions.fitView });
    return options;
  };

  const nodeMenu = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node: LGraphNode) =>
    nodeMenu(node).filter((o: IContextMenuValue | null) => !String(o?.content ?? '').includes('Subgraph'));
  // Mode 4 is ComfyUI's bypass: the node's inputs pass through to its outputs of the same type.
  LiteGraph.NODE_MODES = ['Always', 'On Event', 'Never', 'On Trigger', 'Bypass'];
}

/** The search box (double-click) matches type names, titles, categories and descriptions word by word. */
export function installNodeSearch(canvas: LGraphCanvas, objectInfo: ObjectInfo): void {
  (canvas as unknown as { onSearchBox?: (helper: HTMLElement, query: string) => string[] }).onSearchBox = (
    _helper,
    query,
  ) => searchNodeTypes(objectInfo, query);
}
