// Workflow JSON in, API prompt out: API format is shape-checked, litegraph canvas format (v0.4 link
// arrays, v1 link objects) is converted the way ComfyUI's editor builds a prompt from its graph.
import { z } from 'zod';
import type { AnyNodeDef, WidgetSpec } from './define.ts';
import { inputEntries } from './graph.ts';
import type { ApiPrompt, LinkRef } from './types.ts';

export class WorkflowFormatError extends Error {
  override name = 'WorkflowFormatError';
}

const apiNodeSchema = z
  .object({
    class_type: z.string({ error: 'class_type must be a string' }),
    inputs: z.record(z.string(), z.unknown()).default({}),
    _meta: z.object({ title: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();
const apiPromptSchema = z.record(z.string(), apiNodeSchema);

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

type CanvasNode = z.infer<typeof canvasNodeSchema>;
interface CanvasLink {
  originId: string;
  originSlot: number;
}

/** litegraph node modes: 0 always, 2 never (muted), 4 bypass. */
const MODE_MUTED = 2;
const MODE_BYPASS = 4;
const IGNORED_TYPES = new Set(['Note', 'MarkdownNote']);
/** The seed widget's companion value ComfyUI saves right after it. */
const CONTROL_VALUES = new Set(['fixed', 'increment', 'decrement', 'randomize', 'increment-wrap']);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function isCanvasWorkflow(json: unknown): boolean {
  return isObject(json) && Array.isArray(json.nodes);
}

function formatIssues(error: z.ZodError, what: string): string {
  const issues = error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
  return `Not a valid ${what}: ${issues.join('; ')}${error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : ''}`;
}

/** Array constants must be wrapped or API format would read a 2-element list as a link. */
function literal(v: unknown): unknown {
  return Array.isArray(v) ? { __value__: v } : v;
}

/**
 * Accepts API format (`{"<id>": {class_type, inputs}}`) or litegraph canvas format and returns an
 * API prompt. Conversion needs the node types to map widget values onto input names.
 */
export function toApiPrompt(json: unknown, nodes: readonly AnyNodeDef[]): ApiPrompt {
  if (!isObject(json)) throw new WorkflowFormatError('A workflow must be a JSON object');
  if (isCanvasWorkflow(json)) return canvasToApi(json, nodes);
  // The body of POST /prompt ({prompt: {...}}) is accepted too.
  const body = isObject(json.prompt) && !('class_type' in json.prompt) ? json.prompt : json;
  if (Object.keys(body).length === 0) throw new WorkflowFormatError('The workflow has no nodes');
  const parsed = apiPromptSchema.safeParse(body);
  if (!parsed.success) throw new WorkflowFormatError(formatIssues(parsed.error, 'API-format workflow'));
  return parsed.data as ApiPrompt;
}

function widgetNames(def: AnyNodeDef): { name: string; spec: WidgetSpec }[] {
  return inputEntries(def)
    .filter((e) => e.spec.kind !== 'LINK')
    .map((e) => ({ name: e.name, spec: e.spec as WidgetSpec }));
}

/** Whether a saved value could belong to a widget of this kind (used to pick a reading). */
function fitsKind(spec: WidgetSpec, v: unknown): boolean {
  switch (spec.kind) {
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
  names: { name: string; spec: WidgetSpec }[],
  values: readonly unknown[],
): { mapped: Record<string, unknown>; used: number; plausible: boolean } {
  const mapped: Record<string, unknown> = {};
  let i = 0;
  let plausible = true;
  for (const { name, spec } of names) {
    if (i >= values.length) break;
    const v = values[i++];
    mapped[name] = v;
    plausible &&= fitsKind(spec, v);
    const next = values[i];
    if (
      spec.kind === 'INT' &&
      spec.controlAfterGenerate &&
      typeof next === 'string' &&
      CONTROL_VALUES.has(next)
    )
      i++;
  }
  return { mapped, used: i, plausible };
}

function canvasToApi(json: Record<string, unknown>, defs: readonly AnyNodeDef[]): ApiPrompt {
  const parsed = canvasSchema.safeParse(json);
  if (!parsed.success) throw new WorkflowFormatError(formatIssues(parsed.error, 'canvas workflow'));
  const byName = new Map(defs.map((d) => [d.name, d]));
  const nodes = new Map<string, CanvasNode>();
  for (const n of parsed.data.nodes) {
    const id = String(n.id);
    if (nodes.has(id)) throw new WorkflowFormatError(`Canvas workflow has two nodes with id ${id}`);
    nodes.set(id, n);
  }
  const links = new Map<number, CanvasLink>();
  for (const l of parsed.data.links ?? []) {
    if (Array.isArray(l)) links.set(l[0], { originId: String(l[1]), originSlot: l[2] });
    else links.set(l.id, { originId: String(l.origin_id), originSlot: l.origin_slot });
  }

  type Source = { kind: 'link'; ref: LinkRef } | { kind: 'value'; value: unknown } | { kind: 'none' };
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
    if (node.mode === MODE_MUTED || IGNORED_TYPES.has(node.type)) return { kind: 'none' };
    const inputs = node.inputs ?? [];
    if (node.type === 'Reroute') return resolveLink(inputs[0]?.link, next);
    if (node.mode === MODE_BYPASS) {
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
    if (IGNORED_TYPES.has(node.type) || node.type === 'Reroute' || node.type === 'PrimitiveNode') continue;
    if (node.mode === MODE_MUTED || node.mode === MODE_BYPASS) continue;
    const def = byName.get(node.type);
    const canvasInputs = node.inputs ?? [];
    const inputs: Record<string, unknown> = {};

    if (def) {
      const widgets = widgetNames(def);
      const canvasInput = (name: string) =>
        canvasInputs.find((inp) => (inp.widget?.name ?? inp.name) === name);
      const values = node.widgets_values ?? [];
      if (Array.isArray(values)) {
        // ComfyUI saves a value for every widget, linked or not; some editors leave out linked
        // (converted) widgets. Use whichever reading accounts for exactly all saved values.
        const notLinked = widgets.filter((w) => canvasInput(w.name)?.link == null);
        const notConverted = widgets.filter((w) => canvasInput(w.name)?.widget === undefined);
        const readings = [widgets, notLinked, notConverted].map((names) => mapWidgetValues(names, values));
        const complete = readings.filter((r) => r.used === values.length);
        const chosen = complete.find((r) => r.plausible) ?? complete[0] ?? readings[0];
        for (const [name, v] of Object.entries(chosen.mapped)) inputs[name] = literal(v);
      } else {
        for (const w of widgets) if (w.name in values) inputs[w.name] = literal(values[w.name]);
      }
      for (const w of widgets)
        if (!(w.name in inputs) && w.spec.default !== undefined) inputs[w.name] = w.spec.default;
    }

    for (const inp of canvasInputs) {
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
      _meta: { title: node.title ?? def?.displayName ?? node.type },
    };
  }
  if (Object.keys(prompt).length === 0)
    throw new WorkflowFormatError('The canvas workflow has no runnable nodes');
  return prompt;
}
