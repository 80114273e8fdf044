// The editor: one litegraph canvas wired to the server. Composes the parts — the canvas, the graph
// as an edited document, Queue, the server's messages, the panels and the controls — and exposes
// them as `window.rdflow` for tests and the console.
import { LGraph, LiteGraph } from '@comfyorg/litegraph';
import type { LGraphCanvas } from '@comfyorg/litegraph';
import { createApi, type Api } from './api.ts';
import {
  createCanvasView,
  installCanvasMenus,
  installNodeSearch,
  registerDecoratedNodeTypes,
} from './canvas-view.ts';
import { installControls } from './controls.ts';
import {
  MODE_BYPASSED,
  MODE_MUTED,
  canvasToApi,
  objectInfoLookup,
  type CanvasWorkflow,
} from '../../server/protocol/canvas.ts';
import { createGraphDocument, openStartupWorkflow } from './graph-document.ts';
import { HistoryPanel } from './history-panel.ts';
import { OutputView } from './output.ts';
import { vocabulariesFrom } from './prompt-check.ts';
import { createQueueAction } from './queue-action.ts';
import { QueuePanel } from './queue-panel.ts';
import { createQueueSync } from './queue-sync.ts';
import { connectRunMessages, showLastOutputs } from './run-messages.ts';
import { RunState } from './run-state.ts';
import { groupSelection, toggleSelectionMode } from './selection.ts';
import type { ApiPrompt, ObjectInfo } from './types.ts';

export interface App {
  readonly api: Api;
  readonly graph: LGraph;
  readonly canvas: LGraphCanvas;
  readonly state: RunState;
  readonly outputs: OutputView;
  readonly objectInfo: ObjectInfo;
  /** litegraph's registry, for scripts and tests (registered node types, createNode). */
  readonly liteGraph: typeof LiteGraph;
  /** The graph in canvas format (what Save writes). */
  serialize(): CanvasWorkflow;
  /** The graph in API format (what Queue posts). */
  toPrompt(): ApiPrompt;
  /** Posts the graph; resolves to the prompt id, or undefined when it was refused. */
  queue(): Promise<string | undefined>;
  /** Replaces the graph; `restoreViewport` keeps the file's saved pan/zoom instead of fitting. */
  loadWorkflow(json: unknown, name?: string, restoreViewport?: boolean): void;
  openShipped(name: string): Promise<void>;
  undo(): void;
  redo(): void;
  /** Pans and zooms so the whole graph is in view. */
  fitView(): void;
  /** Records the current graph as an undo step and in local storage. */
  commit(): void;
}

export async function startApp(): Promise<App> {
  const api = createApi();
  const objectInfo = await api.objectInfo();
  const state = new RunState();
  const graph = new LGraph();
  const view = createCanvasView(document.getElementById('graph-canvas') as HTMLCanvasElement, graph);
  const { canvas, redraw, titleOf, focusNode, fitView } = view;
  const outputs = new OutputView(
    document.getElementById('overlays')!,
    canvas,
    (f) => api.viewUrl(f),
    () => graph,
  );
  registerDecoratedNodeTypes(objectInfo, canvas, graph, state, outputs);

  const sidePanel = document.getElementById('side-panel')!;
  const panel = new QueuePanel(sidePanel, api, titleOf, focusNode);
  const showRun = (): void => {
    panel.render(state);
    redraw();
  };
  const refreshQueue = createQueueSync(panel, state, showRun);

  const doc = createGraphDocument({
    graph,
    canvas,
    objectInfo,
    fitView,
    redraw,
    // A new graph: the previous one's previews and errors go.
    onLoaded: () => {
      outputs.clear();
      state.reject({});
    },
  });

  /** Opens a workflow from the server's workflows folder (GET /workflows/:name). */
  const openShipped = async (name: string): Promise<void> => {
    doc.loadWorkflow(await api.getWorkflow(name), name);
  };
  const historyPanel = new HistoryPanel(sidePanel, api, (json, name) => doc.loadWorkflow(json, name));
  installNodeSearch(canvas, objectInfo);

  // The converter the CLI and server use, reading each node type's widgets from /object_info.
  const widgetsOf = objectInfoLookup(objectInfo);
  const toPrompt = (): ApiPrompt => canvasToApi(doc.serialize(), widgetsOf);
  const queue = createQueueAction({
    api,
    vocabularyOf: vocabulariesFrom(objectInfo),
    graph,
    canvas,
    state,
    doc,
    toPrompt,
    titleOf,
    focusNode,
    redraw,
    showRun,
    refreshQueue,
  });

  connectRunMessages({ api, graph, state, outputs, panel, historyPanel, titleOf, redraw, refreshQueue });

  /** Records an edit of the selection (when there was one) and shows it. */
  const editSelection = (edit: () => boolean) => (): void => {
    if (!edit()) return;
    doc.commit();
    redraw();
  };
  const group = editSelection(() => groupSelection(canvas, graph));
  installCanvasMenus(canvas, { groupSelection: group, fitView });
  installControls({
    api,
    state,
    doc,
    toolbar: document.getElementById('toolbar')!,
    dropTarget: document.getElementById('workspace')!,
    queue: () => void queue(),
    toPrompt,
    openShipped,
    fitView,
    groupSelection: group,
    toggleMute: editSelection(() => toggleSelectionMode(canvas, MODE_MUTED)),
    toggleBypass: editSelection(() => toggleSelectionMode(canvas, MODE_BYPASSED)),
  });

  view.followWindowSize();

  await openStartupWorkflow(doc, api);
  panel.render(state);
  void refreshQueue();
  void historyPanel.refresh();
  void showLastOutputs(api, graph, outputs);
  LiteGraph.release_link_on_empty_shows_menu = true;
  return {
    api,
    graph,
    canvas,
    state,
    outputs,
    objectInfo,
    liteGraph: LiteGraph,
    serialize: doc.serialize,
    toPrompt,
    queue,
    loadWorkflow: doc.loadWorkflow,
    openShipped,
    undo: doc.undo,
    redo: doc.redo,
    fitView,
    commit: doc.commit,
  };
}
