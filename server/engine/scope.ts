// The plan's nodes as the run sees them: a slot per node per scope (the run outside loops, or one
// loop iteration), its inputs as refs to other slots or constants, and its signature. Making a slot
// runs nothing; the slot's values live in the value store's cell.
import type { AnyNodeDef, LoopPosition, NodePaths, UiOutput } from './define.ts';
import { inputEntries, type Graph, type GraphNode } from './graph.ts';
import { literalSignature, nodeSignature } from './cache.ts';
import type { Registry } from './registry.ts';
import type { ValueCell, ValueStore } from './value-store.ts';

export interface Slot {
  readonly cell: ValueCell;
  readonly def: AnyNodeDef;
  /** Dropped once the slot's values are materialized for the next iteration (no history chain). */
  inputs?: Record<string, Ref>;
  /** The scope it was made in: an id, so no slot holds a whole scope. */
  readonly owner: number;
  readonly iteration?: Iteration;
  pending?: Promise<unknown[]>;
}

export type Ref =
  { kind: 'literal'; value: unknown; sig: string } | { kind: 'slot'; slot: Slot; index: number };

/** What a loop iteration's scope knows of its loop. */
export interface Iteration {
  position: LoopPosition;
  /** Product of the iterations of the loops this iteration is in. */
  repeats: number;
  /** Loop position path ("2/0"): part of body nodes' signatures, as they may read ctx.loop. */
  path: string;
  /** Output nodes of this loop body whose whole loop is cached: replayed once, not run. */
  skipOutputs?: Set<string>;
  /** UI of this loop's output nodes over all iterations (cached under a whole-loop key at the end). */
  loopUi?: Map<string, UiOutput>;
  /** Nodes whose outputs the LoopEnd of this body carries: kept for the next iteration. */
  carriedIds?: Set<string>;
  /** A checkpointed loop's iteration: its output nodes' linked inputs, by signature. */
  capture?: Map<string, unknown>;
}

export interface Scope {
  id: number;
  parent?: Scope;
  /** Node id → the refs of its outputs in this scope. */
  refs: Map<string, Ref[]>;
  slots: Slot[];
  /** Spill entries pinned while this scope lives. */
  pins: string[];
  /** What the LoopEnd of this body received this iteration: the next carried values. */
  loopEndRefs?: Ref[];
  /** Set in loop bodies. */
  iteration?: Iteration;
}

/** What making slots needs: the graph, the node types, where values live, the scope numbering. */
export interface SlotMaker {
  graph: Graph;
  registry: Registry;
  paths: NodePaths;
  store: ValueStore;
  /** Scope ids of this run, in creation order (a loop's inner scopes have larger ids). */
  scopeIds: { next: number };
}

export const CARRIED = 4;
export const undefinedRef: Ref = { kind: 'literal', value: undefined, sig: literalSignature(undefined) };
export const literalRef = (value: unknown): Ref => ({ kind: 'literal', value, sig: literalSignature(value) });
export const refSig = (r: Ref): string => (r.kind === 'literal' ? r.sig : `${r.slot.cell.sig}:${r.index}`);
/** A ref to a value made in a loop body (the only values whose lifetime the run manages). */
export const bodySlot = (r: Ref): Slot | undefined =>
  r.kind === 'slot' && r.slot.cell.inBody ? r.slot : undefined;

export function topScope(m: SlotMaker): Scope {
  return { id: m.scopeIds.next++, refs: new Map(), slots: [], pins: [] };
}

function lookup(scope: Scope, id: string): Ref[] | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const refs = s.refs.get(id);
    if (refs) return refs;
  }
  return undefined;
}

/**
 * The scope of iteration c of a loop inside `scope`, where its LoopStart gives the flow link, the
 * index c and the carried values.
 */
export function iterationScope(
  m: SlotMaker,
  scope: Scope,
  start: string,
  position: LoopPosition,
  flowRef: Ref,
  carried: readonly Ref[],
  extra: Pick<Iteration, 'skipOutputs' | 'loopUi' | 'carriedIds' | 'capture'> = {},
): Scope {
  const c = position.iteration;
  const outer = scope.iteration;
  const body: Scope = {
    id: m.scopeIds.next++,
    parent: scope,
    refs: new Map(),
    slots: [],
    pins: [],
    iteration: {
      position,
      repeats: (outer?.repeats ?? 1) * position.iterations,
      path: outer === undefined ? String(c) : `${outer.path}/${c}`,
      ...extra,
    },
  };
  body.refs.set(start, [flowRef, literalRef(c), ...carried]);
  return body;
}

/** A node's input in this scope: what its link carries, its constant, or undefined. */
export function inputRef(scope: Scope, node: GraphNode, name: string): Ref {
  const link = node.links[name];
  if (link) return lookup(scope, link[0])?.[link[1]] ?? undefinedRef;
  if (name in node.literals) return literalRef(node.literals[name]);
  return undefinedRef;
}

/** What a LoopEnd receives in this scope (links or constants): the next carried values. */
export function loopEndRefs(m: SlotMaker, scope: Scope, id: string): Ref[] {
  const node = m.graph.get(id)!;
  return Array.from({ length: CARRIED }, (_, k) => inputRef(scope, node, `value${k + 1}`));
}

/** Signature of a node in a scope: its class, constants, upstream signatures and fingerprint. */
async function slotSignature(
  m: SlotMaker,
  scope: Scope,
  id: string,
  def: AnyNodeDef,
  inputs: Record<string, Ref>,
): Promise<string> {
  let fingerprint: string | undefined;
  if (def.fingerprint) {
    const literals: Record<string, unknown> = {};
    const node = m.graph.get(id)!;
    for (const [name, ref] of Object.entries(inputs)) {
      if (ref.kind === 'literal' && !node.links[name]) literals[name] = ref.value;
    }
    try {
      fingerprint = await def.fingerprint(literals, { paths: m.paths });
    } catch {
      // Unknown state outside the inputs: never reuse a cached result.
      fingerprint = `unstable:${Math.random()}`;
    }
  }
  const sigInputs: Record<string, string> = {};
  for (const [name, ref] of Object.entries(inputs)) sigInputs[name] = refSig(ref);
  if (def.signature) {
    // The node says which part of its constants decides its result: that part stands for them all.
    const constants: Record<string, unknown> = {};
    for (const [name, ref] of Object.entries(inputs)) {
      if (ref.kind !== 'literal') continue;
      constants[name] = ref.value;
      delete sigInputs[name];
    }
    sigInputs['*signature'] = literalSignature(def.signature(constants));
  }
  return nodeSignature({
    classType: def.name,
    inputs: sigInputs,
    fingerprint,
    nodeId: def.outputNode ? id : undefined,
    loopPath: scope.iteration?.path,
  });
}

/** Node `id`'s slot in `scope`, its outputs registered there for the nodes after it. */
export async function createSlot(m: SlotMaker, scope: Scope, id: string): Promise<Slot> {
  const node = m.graph.get(id)!;
  const def = m.registry.get(node.classType)!;
  const inputs: Record<string, Ref> = {};
  for (const { name } of inputEntries(def)) {
    if (node.links[name] || name in node.literals) inputs[name] = inputRef(scope, node, name);
  }
  const inBody = scope.iteration !== undefined;
  const slot: Slot = {
    cell: m.store.cell({
      nodeId: id,
      sig: await slotSignature(m, scope, id, def, inputs),
      inBody,
      outputNode: def.outputNode === true,
      keep: scope.iteration?.carriedIds?.has(id) ?? false,
    }),
    def,
    inputs,
    owner: scope.id,
    iteration: scope.iteration,
  };
  // Same-iteration readers are counted; a reader in another scope keeps the value for good.
  for (const ref of Object.values(inputs)) {
    const src = bodySlot(ref);
    if (!src) continue;
    if (src.owner === scope.id) src.cell.consumers++;
    else src.cell.keep = true;
  }
  scope.refs.set(
    id,
    def.outputs.map((_, index) => ({ kind: 'slot', slot, index })),
  );
  scope.slots.push(slot);
  return slot;
}
