// The prompt as a graph: each node's links and literal inputs separated once, so validation,
// planning and execution never re-interpret the API format.
import type { AnyNodeDef, InputSpec } from './define.ts';
import type { ApiPrompt, LinkRef } from './types.ts';

export interface GraphNode {
  id: string;
  classType: string;
  title?: string;
  /** Input name → [source node id, output index]. */
  links: Record<string, LinkRef>;
  /** Input name → literal value ({__value__: [...]} already unwrapped). */
  literals: Record<string, unknown>;
  /** Inputs given a bare list that is not a link: API format reads lists as links, so these are bad links. */
  malformedLinks: Set<string>;
}

export type Graph = Map<string, GraphNode>;

/** ComfyUI's link shape: [node id, output index]; node ids are strings (numbers tolerated). */
export function isLinkValue(v: unknown): v is [string | number, number] {
  return (
    Array.isArray(v) &&
    v.length === 2 &&
    (typeof v[0] === 'string' || typeof v[0] === 'number') &&
    typeof v[1] === 'number' &&
    Number.isInteger(v[1])
  );
}

/** `{"__value__": [...]}` is how API format wraps a list constant (so it is not read as a link). */
export function unwrapLiteral(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && '__value__' in v) {
    const keys = Object.keys(v);
    if (keys.length === 1) return (v as { __value__: unknown }).__value__;
  }
  return v;
}

export function buildGraph(prompt: ApiPrompt): Graph {
  const graph: Graph = new Map();
  for (const [id, node] of Object.entries(prompt)) {
    const links: Record<string, LinkRef> = {};
    const literals: Record<string, unknown> = {};
    const malformedLinks = new Set<string>();
    for (const [name, value] of Object.entries(node.inputs ?? {})) {
      if (isLinkValue(value)) links[name] = [String(value[0]), value[1]];
      else {
        if (Array.isArray(value)) malformedLinks.add(name);
        literals[name] = unwrapLiteral(value);
      }
    }
    graph.set(id, {
      id,
      classType: node.class_type,
      title: node._meta?.title,
      links,
      literals,
      malformedLinks,
    });
  }
  return graph;
}

/** All inputs of a node type in declaration order (required first), as ComfyUI's input_order. */
export function inputEntries(def: AnyNodeDef): { name: string; spec: InputSpec; required: boolean }[] {
  const out: { name: string; spec: InputSpec; required: boolean }[] = [];
  for (const [name, spec] of Object.entries(def.inputs.required)) out.push({ name, spec, required: true });
  for (const [name, spec] of Object.entries(def.inputs.optional ?? {}))
    out.push({ name, spec, required: false });
  return out;
}

export function inputSpec(def: AnyNodeDef, name: string): InputSpec | undefined {
  return def.inputs.required[name] ?? def.inputs.optional?.[name];
}

/** Ids of the nodes a node links from (deduplicated). */
export function upstreamIds(node: GraphNode): string[] {
  return [...new Set(Object.values(node.links).map((l) => l[0]))];
}
