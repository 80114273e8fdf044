// Canvas (litegraph serialisation, v0.4 link arrays or v1 link objects) → API format: the one
// conversion the CLI, the server and the editor all use (api.md "Workflow formats"). It knows a
// node type only by its widgets in input order, so the engine (from node declarations) and the
// editor (from /object_info) describe them through an adapter each and get the same prompt.
// Browser-safe (part of the wire protocol): no node: imports, the editor bundles this file.
import { z } from 'zod';
import type { NodeInfo } from './object-info.ts';
import type { ApiPrompt, LinkRef } from './prompt.ts';

export class WorkflowFormatError extends Error {
  override name = 'WorkflowFormatError';
}

/** Widget kinds, as /object_info names them. */
export type CanvasWidgetKind = 'INT' | 'FLOAT' | 'STRING' | 'BOOLEAN' | 'COMBO';

/** One widget input of a node type; a node's widgets are listed in its input order. */
export interface WidgetDesc {
  name: string;
  kind: CanvasWidgetKind;
  /** What the input gets when the saved node carries no value for it. */
  default?: unknown;
  /** A seed widget: the editor saves its control value ("randomize", ...) right after it. */
  controlAfterGenerate?: boolean;
}

export interface NodeWidgets {
  widgets: WidgetDesc[];
  /** Title for `_meta.title` when the canvas node has none. */
  displayName?: string;
}

/** The widgets of a node type, or undefined for a type this side does not know. */
export type WidgetLookup = (classType: string) => NodeWidgets | undefined;

/** One /object_info entry, as much of it as the conversion reads (api.md). */
export type ObjectInfoNode = Pick<NodeInfo, 'display_name' | 'input' | 'input_order'>;

const WIDGET_TYPES = new Set<string>(['INT', 'FLOAT', 'STRING', 'BOOLEAN']);

/** The widgets of an /object_info entry: `["INT", {...}]` etc. and combos; socket inputs are not widgets. */
export function widgetsFromObjectInfo(info: ObjectInfoNode): NodeWidgets {
  const widgets: WidgetDesc[] = [];
  for (const group of ['required', 'optional'] as const) {
    const configs = info.input[group] ?? {};
    for (const name of info.input_order?.[group] ?? Object.keys(configs)) {
      const config = configs[name];
      if (config === undefined) continue;
      const [type, options] = config;
      const opts =
        options !== null && typeof options === 'object' ? (options as Record<string, unknown>) : {};
      // A combo is `[[options], {...}]` (api.md), as the editor's nodes read it too: both must
      // agree on which inputs are widgets, or saved values would land on the wrong inputs.
      const kind: CanvasWidgetKind | undefined = Array.isArray(type)
        ? 'COMBO'
        : typeof type === 'string' && WIDGET_TYPES.has(type)
          ? (type as CanvasWidgetKind)
          : undefined;
      if (kind === undefined) continue;
      widgets.push({
        name,
        kind,
        ...(opts.default !== undefined ? { default: opts.default } : {}),
        ...(kind === 'INT' && opts.control_after_generate === true ? { controlAfterGenerate: true } : {}),
      });
    }
  }
  return { widgets, ...(info.display_name !== undefined ? { displayName: info.display_name } : {}) };
}

/** A lookup over a whole /object_info reply (the editor's side). */
export function objectInfoLookup(info: Readonly<Record<string, ObjectInfoNode>>): WidgetLookup {
  return (classType) => (Object.hasOwn(info, classType) ? widgetsFromObjectInfo(info[classType]) : undefined);
}

const canvasInputSchema = z
  .object({
    name: z.string(),
    type: z.union([z.string(), z.number()]).optional(),
    link: z.number().nullable().optional(),
    widget: z.object({ name: z.string() }).passthrough().optional(),
  })
  .passthrough();
const canvasOutputSchema = z
  .object({ name: z.string().optional(), type: z.union([z.string(), z.number()]).optional() })
  .passthrough();
const canvasNodeSchema = z
  .object({
    id: z.union([z.number(), z.string()]),
    type: z.string(),
    mode: z.number().optional(),
    title: z.string().optional(),
    inputs: z.array(canvasInputSchema).nullable().optional(),
    outputs: z.array(canvasOutputSchema).nullable().optional(),
    widgets_values: z
      .union([z.array(z.unknown()), z.record(z.string(), z.unknown())])
      .nullable()
      .optional(),
  })
  .passthrough();
const linkArraySchema = z
  .tuple([
    z.number(),
    z.union([z.number(), z.string()]),
    z.number(),
    z.union([z.number(), z.string()]),
    z.number(),
  ])
  .rest(z.unknown());
const linkObjectSchema = z
  .object({
    id: z.number(),
    origin_id: z.union([z.number(), z.string()]),
    origin_slot: z.number(),
    target_id: z.union([z.number(), z.string()]),
    target_slot: z.number(),
  })
  .passthrough();
const canvasSchema = z
  .object({
    nodes: z.array(canvasNodeSchema),
    links: z
      .array(z.union([linkArraySchema, linkObjectSchema]))
      .nullable()
      .optional(),
  })
  .passthrough();

type ParsedNode = z.infer<typeof canvasNodeSchema>;

/** The canvas format as the editor writes it (the schema above checks what conversion reads). */
export interface CanvasWorkflow {
  nodes: CanvasNode[];
  links?: CanvasLink[] | null;
  groups?: unknown[];
  extra?: Record<string, unknown>;
  version?: number;
  [key: string]: unknown;
}

export interface CanvasNode {
  id: number | string;
  type: string;
  title?: string;
  mode?: number;
  inputs?: { name: string; type?: unknown; link?: number | null; widget?: { name: string } }[] | null;
  outputs?: { name?: string; type?: unknown }[] | null;
  widgets_values?: unknown[] | Record<string, unknown> | null;
  [key: string]: unknown;
}

/** v0.4: `[id, origin_id, origin_slot, target_id, target_slot, type]`; v1: the same as an object. */
export type CanvasLink =
  | [number, number | string, number, number | string, number, ...unknown[]]
  | {
      id: number;
      origin_id: number | string;
      origin_slot: number;
      target_id: number | string;
      target_slot: number;
    };

/** litegraph node modes: 0 always, 2 never (muted), 4 bypass. */
export const MODE_MUTED = 2;
export const MODE_BYPASSED = 4;
const NOTE_TYPES = new Set(['Note', 'MarkdownNote']);
/** Node types that only exist on the canvas and never reach a prompt. */
export const VIRTUAL_NODE_TYPES = new Set([...NOTE_TYPES, 'Reroute', 'PrimitiveNode']);
/** The seed widget's companion value ComfyUI saves right after it. */
const CONTROL_VALUES = new Set(['fixed', 'increment', 'decrement', 'randomize', 'increment-wrap']);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function isCanvasWorkflow(json: unknown): json is CanvasWorkflow {
  return isObject(json) && Array.isArray(json.nodes);
}

export function formatIssues(error: z.ZodError, what: string): string {
  const issues = error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
  return `Not a valid ${what}: ${issues.join('; ')}${error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : ''}`;
}

/** Array constants must be wrapped or API format would read a 2-element list as a link. */
function literal(v: unknown): unknown {
  return Array.isArray(v) ? { __value__: v } : v;
}

/** Whether a saved value could belong to a widget of this kind (used to pick a reading). */
function fitsKind(kind: CanvasWidgetKind, v: unknown): boolean {
  switch (kind) {
    case 'INT':
    case 'FLOAT':
      return typeof v === 'number';
    case 'BOOLEAN':
      return typeof v === 'boolean';
    default:
      return typeof v === 'string';
  }
}

/** Maps widgets_values onto names in order, skipping a seed's control value; says how many it used. */
function mapWidgetValues(
  widgets: readonly WidgetDesc[],
  values: readonly unknown[],
): { mapped: Record<string, unknown>; used: number; plausible: boolean } {
  const mapped: Record<string, unknown> = {};
  let i = 0;
  let plausible = true;
  for (const w of widgets) {
    if (i >= values.length) break;
    const v = values[i++];
    mapped[w.name] = v;
    plausible &&= fitsKind(w.kind, v);
    const next = values[i];
    if (w.kind === 'INT' && w.controlAfterGenerate && typeof next === 'string' && CONTROL_VALUES.has(next))
      i++;
  }
  return { mapped, used: i, plausible };
}

/** Widget inputs of one canvas node by name, defaults filling what the file does not carry. */
function widgetInputs(node: ParsedNode, widgets: readonly WidgetDesc[]): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  const canvasInputs = node.inputs ?? [];
  const canvasInput = (name: string) => canvasInputs.find((inp) => (inp.widget?.name ?? inp.name) === name);
  const values = node.widgets_values ?? [];
  if (Array.isArray(values)) {
    // ComfyUI saves a value for every widget, linked or not; some editors leave out linked
    // (converted) widgets. Use whichever reading accounts for exactly all saved values.
    const notLinked = widgets.filter((w) => canvasInput(w.name)?.link == null);
    const notConverted = widgets.filter((w) => canvasInput(w.name)?.widget === undefined);
    const readings = [widgets, notLinked, notConverted].map((ws) => mapWidgetValues(ws, values));
    const complete = readings.filter((r) => r.used === values.length);
    const chosen = complete.find((r) => r.plausible) ?? complete[0] ?? readings[0];
    for (const [name, v] of Object.entries(chosen.mapped)) inputs[name] = literal(v);
  } else {
    for (const w of widgets) if (Object.hasOwn(values, w.name)) inputs[w.name] = literal(values[w.name]);
  }
  for (const w of widgets) if (!(w.name in inputs) && w.default !== undefined) inputs[w.name] = w.default;
  return inputs;
}

type Source = { kind: 'link'; ref: LinkRef } | { kind: 'value'; value: unknown } | { kind: 'none' };

/**
 * Converts a canvas workflow to an API prompt: widget values map onto the widget inputs in input
 * order, links become `[source id, output index]`, muted and bypassed nodes are dropped (a bypassed
 * node passes its same-typed input through), notes, reroutes and primitive nodes never reach the
 * prompt. A node type `lookup` does not know is still sent, for validation to name it.
 * Throws WorkflowFormatError for malformed JSON or a graph with nothing to run.
 */
export function canvasToApi(json: unknown, lookup: WidgetLookup): ApiPrompt {
  const parsed = canvasSchema.safeParse(json);
  if (!parsed.success) throw new WorkflowFormatError(formatIssues(parsed.error, 'canvas workflow'));
  const nodes = new Map<string, ParsedNode>();
  for (const n of parsed.data.nodes) {
    const id = String(n.id);
    if (nodes.has(id)) throw new WorkflowFormatError(`Canvas workflow has two nodes with id ${id}`);
    nodes.set(id, n);
  }
  const links = new Map<number, { originId: string; originSlot: number }>();
  for (const l of parsed.data.links ?? []) {
    if (Array.isArray(l)) links.set(l[0], { originId: String(l[1]), originSlot: l[2] });
    else links.set(l.id, { originId: String(l.origin_id), originSlot: l.origin_slot });
  }

  const resolveLink = (linkId: number | null | undefined, seen: Set<string>): Source => {
    if (linkId === null || linkId === undefined) return { kind: 'none' };
    const link = links.get(linkId);
    return link ? resolveOutput(link.originId, link.originSlot, seen) : { kind: 'none' };
  };
  // Follows reroutes, bypassed nodes and primitive widgets back to a real output or a value.
  const resolveOutput = (nodeId: string, slot: number, seen: Set<string>): Source => {
    const node = nodes.get(nodeId);
    if (!node || seen.has(nodeId)) return { kind: 'none' };
    const next = new Set(seen).add(nodeId);
    if (node.type === 'PrimitiveNode') {
      const values = Array.isArray(node.widgets_values) ? node.widgets_values : [];
      return values.length > 0 ? { kind: 'value', value: values[0] } : { kind: 'none' };
    }
    if (node.mode === MODE_MUTED || NOTE_TYPES.has(node.type)) return { kind: 'none' };
    const inputs = node.inputs ?? [];
    if (node.type === 'Reroute') return resolveLink(inputs[0]?.link, next);
    if (node.mode === MODE_BYPASSED) {
      // Like ComfyUI: the output is fed by the input at the same slot if its type matches, else
      // by the first input of the output's type.
      const type = node.outputs?.[slot]?.type;
      const same = inputs[slot];
      const candidates = [
        ...(same && same.type === type ? [same] : []),
        ...inputs.filter((inp) => inp.type === type),
      ];
      for (const inp of candidates) {
        const src = resolveLink(inp.link, next);
        if (src.kind !== 'none') return src;
      }
      return { kind: 'none' };
    }
    return { kind: 'link', ref: [nodeId, slot] };
  };

  const prompt: ApiPrompt = {};
  for (const [id, node] of nodes) {
    if (VIRTUAL_NODE_TYPES.has(node.type) || node.mode === MODE_MUTED || node.mode === MODE_BYPASSED)
      continue;
    const described = lookup(node.type);
    const inputs = described ? widgetInputs(node, described.widgets) : {};
    for (const inp of node.inputs ?? []) {
      if (inp.link === null || inp.link === undefined) continue;
      const name = inp.widget?.name ?? inp.name;
      const src = resolveLink(inp.link, new Set([id]));
      if (src.kind === 'link') inputs[name] = src.ref;
      else if (src.kind === 'value') inputs[name] = literal(src.value);
      // A link from a muted node is dropped; a widget keeps its own saved value (as ComfyUI does).
    }
    prompt[id] = {
      class_type: node.type,
      inputs,
      _meta: { title: node.title ?? described?.displayName ?? node.type },
    };
  }
  if (Object.keys(prompt).length === 0)
    throw new WorkflowFormatError('The canvas workflow has no runnable nodes');
  return prompt;
}
