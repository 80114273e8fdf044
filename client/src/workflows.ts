// Workflow files: a bundled copy of the default one (used only when the server's cannot be
// fetched; the Workflows… list itself is GET /workflows), reading dropped or uploaded files,
// downloading the graph, and laying out an API-format workflow on the canvas (API files carry no
// positions).
import { LiteGraph } from '@comfyorg/litegraph';
import type { LGraph, LGraphNode } from '@comfyorg/litegraph';
import { isCanvasWorkflow, type CanvasWorkflow } from '../../server/protocol/canvas.ts';
import type { ApiPrompt } from './types.ts';

type Widget = NonNullable<LGraphNode['widgets']>[number];

export const DEFAULT_WORKFLOW = 'vidrd-long-video.canvas.json';
/** Opened when the canvas-format default is not shipped (API format, laid out automatically). */
const FALLBACK_WORKFLOW = 'vidrd-long-video.json';

// Lazy: each bundled copy is its own small chunk, fetched only when the server's is unavailable.
const bundled = import.meta.glob<unknown>('../../workflows/vidrd-long-video*.json', { import: 'default' });

/** The bundled copy of the default workflow (canvas format, else the API-format one). */
export async function loadBundledDefault(): Promise<unknown> {
  for (const name of [DEFAULT_WORKFLOW, FALLBACK_WORKFLOW]) {
    const load = bundled[`../../workflows/${name}`];
    if (load !== undefined) return load();
  }
  throw new Error(`No bundled copy of ${DEFAULT_WORKFLOW}`);
}

export type WorkflowJson = { kind: 'canvas'; workflow: CanvasWorkflow } | { kind: 'api'; prompt: ApiPrompt };

function isApiPrompt(json: unknown): json is ApiPrompt {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return false;
  const values = Object.values(json);
  return (
    values.length > 0 &&
    values.every(
      (v) =>
        v !== null && typeof v === 'object' && typeof (v as { class_type?: unknown }).class_type === 'string',
    )
  );
}

/** Tells the two formats apart; a POST /prompt body `{prompt: {...}}` counts as API format. */
export function classifyWorkflow(json: unknown): WorkflowJson {
  if (isCanvasWorkflow(json)) return { kind: 'canvas', workflow: json };
  const inner = (json as { prompt?: unknown } | null)?.prompt;
  if (isApiPrompt(json)) return { kind: 'api', prompt: json };
  if (isApiPrompt(inner)) return { kind: 'api', prompt: inner };
  throw new Error(
    'Not a workflow: expected canvas format (with "nodes") or API format ({"<id>": {"class_type": ...}})',
  );
}

export async function readJsonFile(file: File): Promise<unknown> {
  const text = await file.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${file.name} is not valid JSON`);
  }
}

export function downloadJson(filename: string, data: unknown): void {
  const blob = new Blob([`${JSON.stringify(data, null, 2)}\n`], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function isLink(v: unknown): v is [string | number, number] {
  return Array.isArray(v) && v.length === 2 && typeof v[1] === 'number';
}

/** Column of each node: the longest chain of links leading to it. */
function depths(prompt: ApiPrompt): Map<string, number> {
  const depth = new Map<string, number>();
  const visit = (id: string, stack: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (stack.has(id)) return 0;
    stack.add(id);
    let d = 0;
    for (const v of Object.values(prompt[id]?.inputs ?? {})) {
      if (isLink(v) && prompt[String(v[0])] !== undefined) d = Math.max(d, visit(String(v[0]), stack) + 1);
    }
    stack.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const id of Object.keys(prompt)) visit(id, new Set());
  return depth;
}

/**
 * Builds an API-format workflow on an empty graph: nodes in columns by link depth, widget values
 * set by name, links connected by input name. Returns the ids of nodes whose type is unknown.
 */
export function buildFromApi(graph: LGraph, prompt: ApiPrompt): string[] {
  const unknown: string[] = [];
  const created = new Map<string, LGraphNode>();
  const depth = depths(prompt);
  const rows = new Map<number, number>();
  for (const [id, spec] of Object.entries(prompt)) {
    const node = LiteGraph.createNode(spec.class_type);
    if (node === null) {
      unknown.push(id);
      continue;
    }
    const numeric = Number(id);
    if (Number.isInteger(numeric) && numeric > 0) node.id = numeric;
    if (spec._meta?.title) node.title = spec._meta.title;
    const col = depth.get(id) ?? 0;
    const y = rows.get(col) ?? 60;
    node.pos = [60 + col * 340, y];
    rows.set(col, y + node.size[1] + 70);
    graph.add(node);
    for (const [name, value] of Object.entries(spec.inputs)) {
      const widget = node.widgets?.find((w: Widget) => w.name === name);
      if (widget === undefined || isLink(value)) continue;
      const v = value !== null && typeof value === 'object' && '__value__' in value ? value.__value__ : value;
      widget.value = v as typeof widget.value;
    }
    created.set(id, node);
  }
  for (const [id, spec] of Object.entries(prompt)) {
    const target = created.get(id);
    if (target === undefined) continue;
    for (const [name, value] of Object.entries(spec.inputs)) {
      if (!isLink(value)) continue;
      const source = created.get(String(value[0]));
      const slot = target.inputs.findIndex(
        (s: LGraphNode['inputs'][number]) => s.name === name || s.widget?.name === name,
      );
      if (source !== undefined && slot >= 0) source.connect(value[1], target, slot);
    }
  }
  return unknown;
}
