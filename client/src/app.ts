// The editor: one litegraph canvas wired to the server. Loads node types from /object_info, the
// last graph (or the default VidRD workflow), queues prompts, and folds WebSocket messages into
// what the canvas and the side panel show.
import { LGraph, LGraphCanvas, LGraphGroup, LiteGraph } from '@comfyorg/litegraph';
import type { IContextMenuValue, LGraphNode } from '@comfyorg/litegraph';
import { PromptRejectedError, createApi, type Api } from './api.ts';
import { drawCanvasDecorations, drawNodeDecorations } from './decorations.ts';
import { describeNodeErrors, messageOf, toast } from './errors.ts';
import {
  MODE_BYPASSED,
  MODE_MUTED,
  canvasToApi,
  objectInfoLookup,
  type CanvasWorkflow,
} from '../../server/engine/canvas.ts';
import { HistoryPanel } from './history-panel.ts';
import { searchNodeTypes } from './node-search.ts';
import { checkPromptTexts } from './prompt-check.ts';
import { OutputView, filesOf } from './output.ts';
import { QueuePanel } from './queue-panel.ts';
import { applySeedControls, nodeInfoOf, registerNodeTypes } from './registry.ts';
import { RunState } from './run-state.ts';
import { installDropTarget, installShortcuts } from './shortcuts.ts';
import { loadSavedWorkflow, saveWorkflow } from './storage.ts';
import { buildToolbar } from './toolbar.ts';
import type { ApiPrompt, NodeErrors, ObjectInfo, PreviewImage, ServerMessage } from './types.ts';
import { UndoHistory } from './undo.ts';
import {
  buildFromApi,
  classifyWorkflow,
  downloadJson,
  DEFAULT_WORKFLOW,
  loadBundledDefault,
  readJsonFile,
} from './workflows.ts';

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

interface Viewport {
  offset: [number, number];
  scale: number;
}

function snapshotOf(graph: LGraph): string {
  const data = graph.serialize() as unknown as CanvasWorkflow & { extra?: Record<string, unknown> };
  // The viewport is not an edit: panning must not create undo steps.
  if (data.extra !== undefined) data.extra = { ...data.extra, ds: undefined };
  return JSON.stringify(data);
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

export async function startApp(): Promise<App> {
  const api = createApi();
  const objectInfo = await api.objectInfo();
  const state = new RunState();
  const graph = new LGraph();
  const canvasEl = document.getElementById('graph-canvas') as HTMLCanvasElement;
  const canvas = new LGraphCanvas(canvasEl, graph);
  canvas.show_info = false;
  canvas.render_canvas_border = false;
  // The default workflow fits a laptop screen at about 0.55 zoom; keep its text drawn there.
  canvas.low_quality_zoom_threshold = 0.4;
  const history = new UndoHistory();
  const outputs = new OutputView(
    document.getElementById('overlays')!,
    canvas,
    (f) => api.viewUrl(f),
    () => graph,
  );

  registerNodeTypes(objectInfo, {
    drawForeground: (node, ctx) =>
      drawNodeDecorations(node, ctx, {
        state,
        preview: (id) => outputs.preview(id),
        hasOverlay: (id) => outputs.hasOverlay(id),
      }),
  });

  canvas.onDrawForeground = (ctx: CanvasRenderingContext2D) => drawCanvasDecorations(ctx, graph.nodes, state);

  const redraw = (): void => canvas.setDirty(true, true);
  const titleOf = (id: string): string => graph.getNodeById(id)?.title ?? `node ${id}`;
  const focusNode = (id: string): void => {
    const node = graph.getNodeById(id);
    if (node === null) return;
    canvas.selectNode(node);
    canvas.centerOnNode(node);
    redraw();
  };
  const panel = new QueuePanel(document.getElementById('side-panel')!, api, titleOf, focusNode);
  /**
   * Reloads the queue lists, and takes the running prompt from them: after a reload mid-run, or
   * when another client's prompt starts (its messages go to that client), the panel shows it.
   */
  let queuePoll: ReturnType<typeof setTimeout> | undefined;
  const refreshQueue = async (): Promise<void> => {
    const q = await panel.refresh();
    if (q === undefined) return;
    if (state.noticeRunning(q.queue_running[0]?.[1])) {
      panel.render(state);
      redraw();
    }
    // The queue's status is broadcast when a prompt is queued, not when it starts: while prompts
    // wait with none running, look again shortly to see the next one start.
    clearTimeout(queuePoll);
    if (q.queue_running.length === 0 && q.queue_pending.length > 0)
      queuePoll = setTimeout(() => void refreshQueue(), 250);
  };

  const serialize = (): CanvasWorkflow => graph.serialize() as unknown as CanvasWorkflow;
  /** True while a whole graph is put in place (load, undo, redo): that is not an edit. */
  let replacing = false;
  const commit = (): void => {
    if (replacing) return;
    const snap = snapshotOf(graph);
    if (history.record(snap)) saveWorkflow(serialize());
  };
  const replaceGraph = (data: unknown): void => {
    replacing = true;
    try {
      graph.configure(data as Parameters<LGraph['configure']>[0]);
    } finally {
      replacing = false;
    }
  };

  // litegraph brackets each discrete edit (delete, paste, connect, add or remove a node) in
  // beforeChange/afterChange, nested when one edit is made of others (deleting two nodes removes
  // each). Recording when the outermost one closes makes the edit its own undo step at once: an
  // edit left to the key-up/pointer-up below may not be recorded yet when the next action comes,
  // and undo would then jump over it.
  let changeDepth = 0;
  graph.onBeforeChange = () => {
    changeDepth++;
  };
  graph.onAfterChange = () => {
    // Some litegraph paths close a change they never opened: never go below zero.
    changeDepth = Math.max(0, changeDepth - 1);
    if (changeDepth === 0) commit();
  };

  const fitView = (): void => {
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
    redraw();
  };

  /** Replaces the graph; the previous one stays if the file cannot be read. */
  const loadWorkflow = (json: unknown, name?: string, restoreViewport = false): void => {
    const parsed = classifyWorkflow(json);
    const before = serialize();
    try {
      if (parsed.kind === 'canvas') {
        replaceGraph(structuredClone(parsed.workflow));
      } else {
        replacing = true;
        graph.clear();
        const unknown = buildFromApi(graph, parsed.prompt);
        if (unknown.length > 0) toast(`Unknown node types left out: nodes ${unknown.join(', ')}`, 'error');
      }
    } catch (e) {
      replaceGraph(before);
      throw e;
    } finally {
      replacing = false;
      changeDepth = 0;
    }
    const missing = graph.nodes.filter(
      (n: LGraphNode) => objectInfo[n.type] === undefined && !['Note', 'Reroute'].includes(n.type),
    );
    if (missing.length > 0) {
      toast(
        `This server does not know: ${[...new Set(missing.map((n: LGraphNode) => n.type))].join(', ')}`,
        'error',
      );
    }
    outputs.clear();
    state.reject({});
    history.reset(snapshotOf(graph));
    saveWorkflow(serialize());
    canvas.resize();
    // The last graph comes back where it was; an opened workflow is fitted to the window.
    const ds =
      parsed.kind === 'canvas' ? (parsed.workflow.extra as { ds?: Viewport } | undefined)?.ds : undefined;
    if (restoreViewport && ds !== undefined && Array.isArray(ds.offset) && ds.scale > 0) {
      canvas.ds.offset = [ds.offset[0], ds.offset[1]];
      canvas.ds.scale = ds.scale;
    } else fitView();
    redraw();
    if (name !== undefined) document.title = `rdflow · ${name}`;
  };

  /** Opens a workflow from the server's workflows folder (GET /workflows/:name). */
  const openShipped = async (name: string): Promise<void> => {
    loadWorkflow(await api.getWorkflow(name), name);
  };
  const historyPanel = new HistoryPanel(document.getElementById('side-panel')!, api, (json, name) =>
    loadWorkflow(json, name),
  );
  // The search box matches type names, titles, categories and descriptions word by word.
  (canvas as unknown as { onSearchBox?: (helper: HTMLElement, query: string) => string[] }).onSearchBox = (
    _helper,
    query,
  ) => searchNodeTypes(objectInfo, query);

  // The converter the CLI and server use, reading each node type's widgets from /object_info.
  const widgetsOf = objectInfoLookup(objectInfo);
  const toPrompt = (): ApiPrompt => canvasToApi(serialize(), widgetsOf);

  /**
   * A value still being typed in litegraph's text popup is the user's edit: queueing takes it as
   * if OK had been pressed, instead of posting the value from before the popup opened.
   */
  const commitOpenPrompt = (): void => {
    const box = (canvas as unknown as { prompt_box?: HTMLElement | null }).prompt_box;
    box?.querySelector<HTMLButtonElement>('button')?.click();
    commit();
  };

  const queue = async (): Promise<string | undefined> => {
    commitOpenPrompt();
    let prompt: ApiPrompt;
    try {
      prompt = toPrompt();
    } catch (e) {
      toast(messageOf(e), 'error');
      return undefined;
    }
    // The same checks as `rdflow run`: an empty positive prompt is not queued; words the demo model
    // does not know are named (the server's /object_info lists "demo" by that name).
    const checked = checkPromptTexts(prompt, (model) => model === 'demo');
    if (checked.errors.length > 0) {
      const nodeErrors: NodeErrors = {};
      for (const e of checked.errors) {
        (nodeErrors[e.nodeId] ??= { errors: [], dependent_outputs: [], class_type: e.classType }).errors.push(
          {
            type: 'prompt_empty',
            message: e.message,
            details: '',
            extra_info: { input_name: e.input },
          },
        );
      }
      state.reject(nodeErrors);
      toast(['Not queued:', ...describeNodeErrors(nodeErrors, titleOf)].join('\n'), 'error');
      focusNode(checked.errors[0].nodeId);
      panel.render(state);
      redraw();
      return undefined;
    }
    for (const w of checked.warnings) toast(`#${w.nodeId} ${titleOf(w.nodeId)}: ${w.message}`, 'info', 8000);
    try {
      const { prompt_id } = await api.queuePrompt(prompt, { extra_pnginfo: { workflow: serialize() } });
      state.begin(prompt_id);
      applySeedControls(graph);
      commit();
      redraw();
      void refreshQueue();
      return prompt_id;
    } catch (e) {
      if (e instanceof PromptRejectedError) {
        state.reject(e.nodeErrors);
        const lines = describeNodeErrors(e.nodeErrors, titleOf);
        toast([e.message, ...lines].join('\n'), 'error');
        const first = Object.keys(e.nodeErrors)[0];
        if (first !== undefined) focusNode(first);
      } else toast(`Could not queue: ${messageOf(e)}`, 'error');
      panel.render(state);
      redraw();
      return undefined;
    }
  };

  const restore = (snapshot: string | undefined): void => {
    if (snapshot === undefined) return;
    const ds = { offset: [...canvas.ds.offset] as [number, number], scale: canvas.ds.scale };
    replaceGraph(JSON.parse(snapshot));
    canvas.ds.offset = ds.offset;
    canvas.ds.scale = ds.scale;
    saveWorkflow(serialize());
    redraw();
  };
  const undo = (): void => {
    // An edit not yet recorded (its pointer/key-up still pending) is a step of its own.
    commit();
    restore(history.undo());
  };
  const redo = (): void => restore(history.redo());

  const onMessage = (msg: ServerMessage): void => {
    if (!state.apply(msg)) return;
    switch (msg.type) {
      case 'status':
        // Sent to every client when the queue changes: a prompt (maybe another client's) started
        // or ended, so the running one and the history may be new.
        void refreshQueue();
        void historyPanel.refresh();
        break;
      case 'executing':
        if (msg.data.node === null) {
          void refreshQueue();
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
          `#${msg.data.node_id} ${titleOf(String(msg.data.node_id))} failed: ${msg.data.exception_message}`,
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
    redraw();
  };

  const onPreview = (image: PreviewImage): void => {
    const node = state.executing === undefined ? null : graph.getNodeById(state.executing);
    if (node === null) return;
    outputs.setPreview(node, image);
    for (const consumer of outputConsumers(node)) {
      if (!outputs.hasOverlay(String(consumer.id))) outputs.setPreview(consumer, image);
    }
    redraw();
  };

  api.connect({
    onMessage,
    onPreview,
    onStatusChange: (connected) => {
      panel.setConnected(connected);
      panel.render(state);
    },
  });

  const groupSelection = (): void => {
    const nodes = Object.values(canvas.selected_nodes);
    if (nodes.length === 0) return;
    const group = new LGraphGroup('Group');
    graph.add(group);
    group.resizeTo(nodes, 10);
    commit();
    redraw();
  };

  // The canvas menu, without litegraph's subgraph entry (the server has no subgraphs).
  canvas.getMenuOptions = (): IContextMenuValue<string>[] => {
    const options: IContextMenuValue<string>[] = [
      { content: 'Add Node', has_submenu: true, callback: LGraphCanvas.onMenuAdd },
      { content: 'Add Group', callback: LGraphCanvas.onGroupAdd },
    ];
    if (Object.keys(canvas.selected_nodes).length > 0) {
      options.push({ content: 'Group selected nodes', callback: groupSelection });
    }
    if (Object.keys(canvas.selected_nodes).length > 1) {
      options.push({ content: 'Align', has_submenu: true, callback: LGraphCanvas.onGroupAlign });
    }
    options.push({ content: 'Fit view', callback: fitView });
    return options;
  };

  // No subgraphs: the server runs flat graphs, so litegraph's conversion is not offered.
  const nodeMenu = canvas.getNodeMenuOptions.bind(canvas);
  canvas.getNodeMenuOptions = (node: LGraphNode) =>
    nodeMenu(node).filter((o: IContextMenuValue | null) => !String(o?.content ?? '').includes('Subgraph'));
  // Mode 4 is ComfyUI's bypass: the node's inputs pass through to its outputs of the same type.
  LiteGraph.NODE_MODES = ['Always', 'On Event', 'Never', 'On Trigger', 'Bypass'];

  /** ComfyUI's Ctrl+M (mute) and Ctrl+B (bypass): toggles the mode of the selected nodes. */
  const toggleMode = (mode: number): void => {
    const nodes: LGraphNode[] = Object.values(canvas.selected_nodes);
    if (nodes.length === 0) return;
    const all = nodes.every((n) => n.mode === mode);
    for (const n of nodes) n.mode = all ? 0 : mode;
    commit();
    redraw();
  };

  /** After a reload: the files of the last run, on the nodes of this graph that produced them. */
  const showLastOutputs = async (): Promise<void> => {
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
  };

  const app: App = {
    api,
    graph,
    canvas,
    state,
    outputs,
    objectInfo,
    liteGraph: LiteGraph,
    serialize,
    toPrompt,
    queue,
    loadWorkflow,
    openShipped,
    undo,
    redo,
    fitView,
    commit,
  };

  const openFile = async (file: File): Promise<void> => {
    try {
      loadWorkflow(await readJsonFile(file), file.name);
      toast(`Opened ${file.name}`, 'success');
    } catch (e) {
      toast(`Could not open ${file.name}: ${messageOf(e)}`, 'error');
    }
  };

  buildToolbar(document.getElementById('toolbar')!, {
    queue: () => void queue(),
    interrupt: () => void api.interrupt(state.promptId).catch((e: unknown) => toast(messageOf(e), 'error')),
    save: () => downloadJson('workflow.json', serialize()),
    exportApi: () => {
      try {
        downloadJson('workflow_api.json', toPrompt());
      } catch (e) {
        toast(messageOf(e), 'error');
      }
    },
    open: (file) => void openFile(file),
    listWorkflows: () => api.listWorkflows(),
    openShipped: (name) => void openShipped(name).catch((e: unknown) => toast(messageOf(e), 'error')),
    undo,
    redo,
    fitView,
  });

  installShortcuts({
    queue: () => void queue(),
    undo,
    redo,
    save: () => downloadJson('workflow.json', serialize()),
    group: groupSelection,
    toggleMute: () => toggleMode(MODE_MUTED),
    toggleBypass: () => toggleMode(MODE_BYPASSED),
  });
  // Edits litegraph does not bracket (moving a node, a widget value): recorded when the pointer or
  // key is released, after litegraph's own handlers have run.
  document.addEventListener('pointerup', () => setTimeout(commit, 0));
  document.addEventListener('keyup', () => setTimeout(commit, 0));
  window.addEventListener('beforeunload', () => saveWorkflow(serialize()));

  // Drop a workflow file anywhere on the canvas.
  installDropTarget(document.getElementById('workspace')!, (file) => void openFile(file));

  const resize = (): void => {
    canvas.resize();
    redraw();
  };
  window.addEventListener('resize', resize);
  resize();

  // First visit: the default workflow; afterwards: the last graph.
  const saved = loadSavedWorkflow();
  let loaded = false;
  if (saved !== undefined) {
    try {
      loadWorkflow(saved, undefined, true);
      loaded = true;
    } catch (e) {
      toast(`The saved graph could not be restored (${messageOf(e)}); opening the default workflow`, 'error');
    }
  }
  if (!loaded) {
    // The server's copy (it may have been edited there); the bundled one only if that fails.
    let json: unknown;
    try {
      json = await api.getWorkflow(DEFAULT_WORKFLOW);
    } catch {
      json = await loadBundledDefault();
    }
    loadWorkflow(json, DEFAULT_WORKFLOW);
  }
  panel.render(state);
  void refreshQueue();
  void historyPanel.refresh();
  void showLastOutputs();
  LiteGraph.release_link_on_empty_shows_menu = true;
  return app;
}
