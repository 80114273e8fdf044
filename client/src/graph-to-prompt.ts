// Canvas format (litegraph serialisation, v0.4 or v1) → API format, the one conversion the editor
// does before POST /prompt and "Export API". It follows the rules in api.md, as the engine's
// toApiPrompt (server/engine/workflow.ts) does, so the editor and the CLI send the same prompt for one
// file: widget values map onto the node's widget inputs in input_order (a seed widget is followed
// by its control_after_generate value), links become [source id, output index], muted (2) and
// bypassed (4) nodes are dropped (a bypassed node passes its same-typed input through), notes,
// reroutes and primitive nodes never reach the prompt.
import { SEED_CONTROL_VALUES, orderedInputs } from './node-info.ts';
import type { ApiPrompt, NodeInfo, ObjectInfo } from './types.ts';

export interface CanvasInput {
  name: string;
  type?: unknown;
  link?: number | null;
  widget?: { name: string };
}

export interface CanvasNode {
  id: number | string;
  type: string;
  title?: string;
  mode?: number;
  inputs?: CanvasInput[];
  outputs?: { name?: string; type?: unknown }[];
  widgets_values?: unknown[] | Record<string, unknown>;
}

/** v0.4: `[id, origin_id, origin_slot, target_id, target_slot, type]`; v1: the same as an object. */
export type CanvasLink =
  | [number, number | string, number, number | string, number, unknown]
  | {
      id: number;
      origin_id: number | string;
      origin_slot: number;
      target_id: number | string;
      target_slot: number;
    };

export interface CanvasWorkflow {
  nodes: CanvasNode[];
  links?: CanvasLink[];
  groups?: unknown[];
  extra?: Record<string, unknown>;
  version?: number;
  [key: string]: unknown;
}

export const MODE_MUTED = 2;
export const MODE_BYPASSED = 4;
/** Node types that only exist on the canvas. */
export const VIRTUAL_NODE_TYPES = new Set(['Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode']);

export class GraphConversionError extends Error {
  override name = 'GraphConversionError';
}

interface LinkEnds {
  originId: string;
  originSlot: number;
}

type Source = { kind: 'link'; ref: [string, number] } | { kind: 'value'; value: unknown } | { kind: 'none' };

function readLinks(links: CanvasLink[] | undefined): Map<number, LinkEnds> {
  const byId = new Map<number, LinkEnds>();
  for (const link of links ?? []) {
    if (Array.isArray(link)) byId.set(link[0], { originId: String(link[1]), originSlot: link[2] });
    else byId.set(link.id, { originId: String(link.origin_id), originSlot: link.origin_slot });
  }
  return byId;
}

export function isCanvasWorkflow(json: unknown): json is CanvasWorkflow {
  return json !== null && typeof json === 'object' && Array.isArray((json as { nodes?: unknown }).nodes);
}

/** A literal as API format carries it: lists are wrapped so they are not read as links. */
function literal(value: unknown): unknown {
  return Array.isArray(value) ? { __value__: value } : value;
}

/** Widget values by input name: positional over the widget inputs, a seed's control value skipped. */
function widgetValues(node: CanvasNode, def: NodeInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const values = node.widgets_values;
  const entries = orderedInputs(def).filter((e) => e.widget !== undefined);
  if (Array.isArray(values)) {
    let i = 0;
    for (const entry of entries) {
      if (i >= values.length) break;
      out[entry.name] = values[i++];
      const next = values[i];
      if (entry.widget === 'INT' && typeof next === 'string' && SEED_CONTROLS.has(next)) i++;
    }
  } else if (values !== undefined && values !== null) {
    for (const entry of entries) if (entry.name in values) out[entry.name] = values[entry.name];
  }
  // A value the file does not carry is the input's default, as the server reads it.
  for (const entry of entries) {
    if (!(entry.name in out) && entry.options.default !== undefined) out[entry.name] = entry.options.default;
  }
  return out;
}

const SEED_CONTROLS = new Set<string>([...SEED_CONTROL_VALUES, 'increment-wrap']);

export function graphToPrompt(workflow: CanvasWorkflow, info: ObjectInfo): ApiPrompt {
  const nodes = new Map(workflow.nodes.map((n) => [String(n.id), n]));
  const links = readLinks(workflow.links);

  const resolveLink = (linkId: number | null | undefined, seen: Set<string>): Source => {
    if (linkId === null || linkId === undefined) return { kind: 'none' };
    const ends = links.get(linkId);
    return ends === undefined ? { kind: 'none' } : resolveOutput(ends.originId, ends.originSlot, seen);
  };
  // The real producer behind an output: reroutes and bypassed nodes are looked through, a
  // primitive node gives its value, a muted node gives nothing.
  const resolveOutput = (nodeId: string, slot: number, seen: Set<string>): Source => {
    const node = nodes.get(nodeId);
    if (node === undefined || seen.has(nodeId)) return { kind: 'none' };
    const next = new Set(seen).add(nodeId);
    if (node.type === 'PrimitiveNode') {
      const values = Array.isArray(node.widgets_values) ? node.widgets_values : [];
      return values.length > 0 ? { kind: 'value', value: values[0] } : { kind: 'none' };
    }
    if (node.mode === MODE_MUTED || node.type === 'Note' || node.type === 'MarkdownNote')
      return { kind: 'none' };
    const inputs = node.inputs ?? [];
    if (node.type === 'Reroute') return resolveLink(inputs[0]?.link, next);
    if (node.mode === MODE_BYPASSED) {
      // The output is fed by the input at the same slot if its type matches, else by the first
      // input of the output's type.
      const type = node.outputs?.[slot]?.type;
      const same = inputs[slot];
      const candidates = [
        ...(same !== undefined && same.type === type ? [same] : []),
        ...inputs.filter((i) => i.type === type),
      ];
      for (const candidate of candidates) {
        const src = resolveLink(candidate.link, next);
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
    // An unknown type is still sent: the server names it in its validation errors.
    const def = info[node.type];
    const inputs: Record<string, unknown> = {};
    if (def !== undefined) {
      for (const [name, value] of Object.entries(widgetValues(node, def))) inputs[name] = literal(value);
    }
    for (const slot of node.inputs ?? []) {
      if (slot.link === null || slot.link === undefined) continue;
      const name = slot.widget?.name ?? slot.name;
      const src = resolveLink(slot.link, new Set([id]));
      if (src.kind === 'link') inputs[name] = src.ref;
      else if (src.kind === 'value') inputs[name] = literal(src.value);
      // A link from a muted node is dropped; a widget keeps its own value.
    }
    prompt[id] = {
      class_type: node.type,
      inputs,
      _meta: { title: node.title ?? def?.display_name ?? node.type },
    };
  }
  if (Object.keys(prompt).length === 0) throw new GraphConversionError('The workflow has no runnable nodes');
  return prompt;
}
