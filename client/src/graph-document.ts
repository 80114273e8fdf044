// The graph as a document being edited: every edit becomes an undo step and is kept in local
// storage; a workflow (canvas or API format) replaces the graph; the editor opens on the last graph
// or, on a first visit, the default workflow.
import type { LGraph, LGraphCanvas } from '@comfyorg/litegraph';
import type { LGraphNode } from '@comfyorg/litegraph';
import type { CanvasWorkflow } from '../../server/protocol/canvas.ts';
import type { Api } from './api.ts';
import { messageOf, toast } from './errors.ts';
import { loadSavedWorkflow, saveWorkflow } from './storage.ts';
import type { ObjectInfo } from './types.ts';
import { UndoHistory } from './undo.ts';
import { buildFromApi, classifyWorkflow, DEFAULT_WORKFLOW, loadBundledDefault } from './workflows.ts';

export interface GraphDocument {
  /** The graph in canvas format (what Save writes). */
  serialize(): CanvasWorkflow;
  /** Records the current graph as an undo step and in local storage. */
  commit(): void;
  /** Replaces the graph; `restoreViewport` keeps the file's saved pan/zoom instead of fitting. */
  loadWorkflow(json: unknown, name?: string, restoreViewport?: boolean): void;
  undo(): void;
  redo(): void;
}

export interface GraphDocumentOptions {
  graph: LGraph;
  canvas: LGraphCanvas;
  objectInfo: ObjectInfo;
  /** Fits the graph in the window and redraws (an opened workflow). */
  fitView(): void;
  redraw(): void;
  /** A workflow replaced the graph: what was shown for the previous one goes. */
  onLoaded(): void;
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

export function createGraphDocument(o: GraphDocumentOptions): GraphDocument {
  const { graph, canvas } = o;
  const history = new UndoHistory();

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
  // Edits litegraph does not bracket (moving a node, a widget value): recorded when the pointer or
  // key is released, after litegraph's own handlers have run.
  document.addEventListener('pointerup', () => setTimeout(commit, 0));
  document.addEventListener('keyup', () => setTimeout(commit, 0));
  window.addEventListener('beforeunload', () => saveWorkflow(serialize()));

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
      (n: LGraphNode) => o.objectInfo[n.type] === undefined && !['Note', 'Reroute'].includes(n.type),
    );
    if (missing.length > 0) {
      toast(
        `This server does not know: ${[...new Set(missing.map((n: LGraphNode) => n.type))].join(', ')}`,
        'error',
      );
    }
    o.onLoaded();
    history.reset(snapshotOf(graph));
    saveWorkflow(serialize());
    canvas.resize();
    // The last graph comes back where it was; an opened workflow is fitted to the window.
    const ds =
      parsed.kind === 'canvas' ? (parsed.workflow.extra as { ds?: Viewport } | undefined)?.ds : undefined;
    if (restoreViewport && ds !== undefined && Array.isArray(ds.offset) && ds.scale > 0) {
      canvas.ds.offset = [ds.offset[0], ds.offset[1]];
      canvas.ds.scale = ds.scale;
    } else o.fitView();
    o.redraw();
    if (name !== undefined) document.title = `rdflow · ${name}`;
  };

  /** Puts an undo step in place, keeping the view where it is. */
  const restore = (snapshot: string | undefined): void => {
    if (snapshot === undefined) return;
    const ds = { offset: [...canvas.ds.offset] as [number, number], scale: canvas.ds.scale };
    replaceGraph(JSON.parse(snapshot));
    canvas.ds.offset = ds.offset;
    canvas.ds.scale = ds.scale;
    saveWorkflow(serialize());
    o.redraw();
  };
  const undo = (): void => {
    // An edit not yet recorded (its pointer/key-up still pending) is a step of its own.
    commit();
    restore(history.undo());
  };
  const redo = (): void => restore(history.redo());

  return { serialize, commit, loadWorkflow, undo, redo };
}

/** First visit: the default workflow; afterwards: the last graph (its view as it was left). */
export async function openStartupWorkflow(doc: GraphDocument, api: Api): Promise<void> {
  const saved = loadSavedWorkflow();
  if (saved !== undefined) {
    try {
      doc.loadWorkflow(saved, undefined, true);
      return;
    } catch (e) {
      toast(`The saved graph could not be restored (${messageOf(e)}); opening the default workflow`, 'error');
    }
  }
  // The server's copy (it may have been edited there); the bundled one only if that fails.
  let json: unknown;
  try {
    json = await api.getWorkflow(DEFAULT_WORKFLOW);
  } catch {
    json = await loadBundledDefault();
  }
  doc.loadWorkflow(json, DEFAULT_WORKFLOW);
}
