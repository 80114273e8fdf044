// Runs a validated plan: output nodes pull what they need (each node once per scope), unchanged
// nodes come from the caches, loop bodies run once per iteration with carried values, and every
// step is reported as an EngineEvent.
import type {
  AnyNodeDef,
  CheckpointCodec,
  InputSpec,
  LoopPosition,
  NodePaths,
  NodeServices,
  ResourceLimits,
  RunContext,
  RunOutcome,
  UiOutput,
} from './define.ts';
import { inputEntries, type Graph, type GraphNode } from './graph.ts';
import type { Plan, Step } from './plan.ts';
import type { Registry } from './registry.ts';
import {
  hashParts,
  literalSignature,
  nodeSignature,
  type CacheEntry,
  type MemoryCache,
  type SpillCache,
} from './cache.ts';
import type { EngineEvent, RunResultSummary } from './types.ts';
import { ResumeRefusedError, type LoopCheckpoints, type SavedLoop } from './resume.ts';
import { costProblems } from './values.ts';

interface Slot {
  nodeId: string;
  node: GraphNode;
  def: AnyNodeDef;
  sig: string;
  /** Dropped once the slot's values are materialized for the next iteration (no history chain). */
  inputs?: Record<string, Ref>;
  values?: unknown[];
  inBody: boolean;
  loop?: LoopPosition;
  /** How often this node runs in the prompt: the iterations of the loops around it. */
  repeats: number;
  executed: boolean;
  pending?: Promise<unknown[]>;
  loopUi?: Map<string, UiOutput>;
  /** Id of the scope (loop iteration) the slot was made in; an id, so no slot holds a whole scope. */
  owner: number;
  /** Consumers in the same iteration that have not run yet; at 0 a body slot lets go of its values. */
  consumers: number;
  /** Set on output nodes of a checkpointed loop: where their linked inputs are kept for a resume. */
  capture?: Map<string, unknown>;
  /** Needed beyond its own consumers (carried to the next iteration, or read by an inner loop). */
  keep: boolean;
}

type Ref = { kind: 'literal'; value: unknown; sig: string } | { kind: 'slot'; slot: Slot; index: number };

interface Scope {
  id: number;
  parent?: Scope;
  /** Node id → the refs of its outputs in this scope. */
  refs: Map<string, Ref[]>;
  slots: Slot[];
  inBody: boolean;
  loop?: LoopPosition;
  /** Product of the iterations of the loops this scope is in (1 outside loops). */
  repeats: number;
  loopPath?: string;
  /** What the LoopEnd of this body received this iteration: the next carried values. */
  loopEndRefs?: Ref[];
  /** Spill entries pinned while this scope lives. */
  pins: string[];
  /** Output nodes of this loop body whose whole loop is cached: replayed once, not run. */
  skipOutputs?: Set<string>;
  /** UI of this loop's output nodes over all iterations (cached under a whole-loop key at the end). */
  loopUi?: Map<string, UiOutput>;
  /** Nodes whose outputs the LoopEnd of this body carries: kept for the next iteration. */
  carriedIds?: Set<string>;
  /** A checkpointed loop's iteration: its output nodes' linked inputs, by signature. */
  capture?: Map<string, unknown>;
}

export interface ExecuteDeps {
  graph: Graph;
  plan: Plan;
  registry: Registry;
  paths: NodePaths;
  services: NodeServices;
  memory: MemoryCache;
  spill: SpillCache;
  /** Loop-body slots holding values right now (the engine's view of what one iteration keeps). */
  held: Set<object>;
  /** The host's limits, checked on the values a node receives right before it runs. */
  limits?: ResourceLimits;
  /** Nodes whose validate() runs again on the values they receive (see Validated.recheck). */
  recheck?: Set<string>;
  /** Saves each finished iteration of a top-level loop, and gives saved loops back (resume). */
  checkpoints?: LoopCheckpoints;
}

interface RunState extends ExecuteDeps {
  promptId: string;
  signal: AbortSignal;
  emit: (e: EngineEvent) => void;
  previews: boolean;
  executed: Set<string>;
  outputs: Record<string, UiOutput>;
  nodeState: Map<string, Record<string, unknown>>;
  runEnd: { nodeId: string; classType: string; callback: (o: RunOutcome) => void | Promise<void> }[];
  /**
   * Output nodes' cache entries, stored only if the whole run succeeds: their files are finished
   * (renamed from temp names) by onRunEnd, so a failed run must not be replayed as written.
   */
  outputEntries: { sig: string; entry: CacheEntry }[];
  current?: Slot;
  /** Body nodes' outputs let go of during this iteration, by node id (see RunContext.recycled). */
  released: Map<string, unknown[]>;
  /** Outputs of the previous iteration no one holds, offered back to the node that made them. */
  recycle: Map<string, unknown[]>;
}

/** A node failed: carries which node and what it was given, for execution_error. */
class NodeFailure extends Error {
  constructor(
    readonly slot: { nodeId: string; classType: string },
    readonly original: unknown,
    readonly inputs: Record<string, unknown>,
  ) {
    super(original instanceof Error ? original.message : String(original));
  }
}

const CARRIED = 4;
let nextScopeId = 0;
const undefinedRef: Ref = { kind: 'literal', value: undefined, sig: literalSignature(undefined) };
const refSig = (r: Ref): string => (r.kind === 'literal' ? r.sig : `${r.slot.sig}:${r.index}`);

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
function iterationScope(
  scope: Scope,
  step: Step & { kind: 'loop' },
  c: number,
  iterations: number,
  flowRef: Ref,
  carried: readonly Ref[],
  extra: Pick<Scope, 'skipOutputs' | 'loopUi' | 'carriedIds' | 'capture'> = {},
): Scope {
  const body: Scope = {
    id: nextScopeId++,
    parent: scope,
    refs: new Map(),
    slots: [],
    inBody: true,
    loop: { iteration: c, iterations },
    repeats: scope.repeats * iterations,
    loopPath: scope.loopPath === undefined ? String(c) : `${scope.loopPath}/${c}`,
    pins: [],
    ...extra,
  };
  body.refs.set(step.start, [flowRef, { kind: 'literal', value: c, sig: literalSignature(c) }, ...carried]);
  return body;
}

/** A loop node's input in this scope: what its link carries, its constant, or undefined. */
function inputRef(scope: Scope, node: GraphNode, name: string): Ref {
  const link = node.links[name];
  if (link) return lookup(scope, link[0])?.[link[1]] ?? undefinedRef;
  if (name in node.literals) {
    const value = node.literals[name];
    return { kind: 'literal', value, sig: literalSignature(value) };
  }
  return undefinedRef;
}

/** JSON of the items already in each merged UI list, so long loops merge in linear time. */
const mergedItems = new WeakMap<unknown[], Set<string>>();

/** Adds a node's UI output to the run's outputs: lists concatenated, repeated items once. */
function mergeUi(into: Record<string, UiOutput>, nodeId: string, ui: UiOutput): void {
  const target = (into[nodeId] ??= {});
  for (const [key, items] of Object.entries(ui)) {
    const list = (target[key] ??= []);
    let seen = mergedItems.get(list);
    if (!seen) {
      seen = new Set(list.map((x) => JSON.stringify(x)));
      mergedItems.set(list, seen);
    }
    for (const item of items) {
      const json = JSON.stringify(item);
      if (seen.has(json)) continue;
      seen.add(json);
      list.push(item);
    }
  }
}

/** Input values for error reports: shapes and sizes instead of big arrays. */
export function summarizeValue(v: unknown, depth = 0): unknown {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return v ?? null;
  if (typeof v === 'string') return v.length > 200 ? `${v.slice(0, 200)}… (${v.length} chars)` : v;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return `[function ${v.name || 'anonymous'}]`;
  if (typeof v !== 'object') return String(v);
  if (ArrayBuffer.isView(v))
    return `${v.constructor.name}(${'length' in v ? String(v.length) : v.byteLength})`;
  const o = v as Record<string, unknown>;
  if (ArrayBuffer.isView(o.data) && Array.isArray(o.shape))
    return `Tensor[${(o.shape as number[]).join(',')}]`;
  if (depth >= 2) return Array.isArray(v) ? `[array of ${v.length}]` : `[${v.constructor?.name ?? 'object'}]`;
  if (Array.isArray(v)) {
    const head = v.slice(0, 16).map((x) => summarizeValue(x, depth + 1));
    return v.length > 16 ? [...head, `… ${v.length - 16} more`] : head;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return `[${v.constructor?.name ?? 'object'}]`;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o).slice(0, 32)) out[k] = summarizeValue(x, depth + 1);
  return out;
}

async function resolveRef(st: RunState, ref: Ref): Promise<unknown> {
  if (ref.kind === 'literal') return ref.value;
  const values = await resolveSlot(st, ref.slot);
  return values[ref.index];
}

function resolveSlot(st: RunState, slot: Slot): Promise<unknown[]> {
  if (slot.values) return Promise.resolve(slot.values);
  slot.pending ??= (async () => {
    const hit = slot.inBody ? st.spill.get(slot.sig) : st.memory.get(slot.sig)?.values;
    if (hit) {
      hold(st, slot, hit);
      return hit;
    }
    return executeSlot(st, slot);
  })().finally(() => {
    slot.pending = undefined;
  });
  return slot.pending;
}

function makeContext(st: RunState, slot: Slot): RunContext {
  const { nodeId, def } = slot;
  let state = st.nodeState.get(nodeId);
  if (!state) {
    state = {};
    st.nodeState.set(nodeId, state);
  }
  return {
    nodeId,
    classType: def.name,
    signal: st.signal,
    paths: st.paths,
    services: st.services,
    loop: slot.loop,
    state,
    progress(value, max) {
      st.emit({
        type: 'progress',
        promptId: st.promptId,
        node: nodeId,
        value,
        max,
        ...(slot.loop ? { iteration: slot.loop.iteration, iterations: slot.loop.iterations } : {}),
      });
    },
    previews: st.previews,
    preview(image) {
      if (!st.previews) return;
      st.emit({
        type: 'preview',
        promptId: st.promptId,
        node: nodeId,
        format: image.format,
        data: image.data,
      });
    },
    emitUi(ui) {
      mergeUi(st.outputs, nodeId, ui);
      st.emit({ type: 'executed', promptId: st.promptId, node: nodeId, displayNode: nodeId, output: ui });
    },
    onRunEnd(callback) {
      st.runEnd.push({ nodeId, classType: def.name, callback });
    },
    recycled() {
      const values = st.recycle.get(nodeId);
      st.recycle.delete(nodeId);
      return values;
    },
  };
}

function showValue(v: unknown): string {
  try {
    const s = JSON.stringify(summarizeValue(v));
    if (s === undefined) return String(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/** The range a widget allows, for messages: " (allowed: 1 to 1024, an integer)". */
function allowed(spec: InputSpec): string {
  if (spec.kind === 'INT') return ` (allowed: an integer from ${spec.min} to ${spec.max})`;
  if (spec.kind === 'FLOAT') return ` (allowed: ${spec.min} to ${spec.max})`;
  return '';
}

/**
 * What stops a node right before it runs: a cost over the host's limits, or (for nodes whose
 * widget values were unknown at validation) its validate() on the values it received.
 */
async function checkBeforeRun(
  st: RunState,
  def: AnyNodeDef,
  nodeId: string,
  args: Record<string, unknown>,
  repeats: number,
): Promise<string | undefined> {
  if (st.limits) {
    const over = costProblems(def, args, st.limits, repeats);
    if (over.length > 0) return over.map((p) => p.message).join(' ');
  }
  if (def.validate && st.recheck?.has(nodeId)) {
    const issues = (await def.validate(args, { paths: st.paths })) ?? [];
    if (issues.length > 0) {
      return issues.map((i) => (i.input ? `Input '${i.input}': ${i.message}` : i.message)).join('; ');
    }
  }
  return undefined;
}

/** The array buffers a value holds (plain objects and arrays followed a few levels deep). */
function buffersOf(values: readonly unknown[]): Set<ArrayBufferLike> {
  const out = new Set<ArrayBufferLike>();
  const walk = (v: unknown, depth: number): void => {
    if (v === null || typeof v !== 'object') return;
    if (ArrayBuffer.isView(v)) {
      out.add(v.buffer);
      return;
    }
    if (depth >= 4) return;
    for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, depth + 1);
  };
  for (const v of values) walk(v, 0);
  return out;
}

/** Where a captured output-node input is kept: by its signature and the form it is stored in. */
function captureKey(sig: string, codec: CheckpointCodec | undefined): string {
  return codec ? `${sig}#${codec.name}` : sig;
}

async function executeSlot(st: RunState, slot: Slot): Promise<unknown[]> {
  const { nodeId, def } = slot;
  const failure = (cause: unknown, inputs: Record<string, unknown>) =>
    new NodeFailure({ nodeId, classType: def.name }, cause, inputs);
  if (!slot.inputs) {
    throw failure(new Error(`The cached outputs of node ${nodeId} were dropped before they were used`), {});
  }
  const args: Record<string, unknown> = {};
  for (const [name, ref] of Object.entries(slot.inputs)) args[name] = await resolveRef(st, ref);
  st.signal.throwIfAborted();
  if (slot.capture && def.outputNode) {
    // Kept for a resume: the inputs this output node is fed again from when the loop continues.
    for (const [name, ref] of Object.entries(slot.inputs)) {
      if (ref.kind !== 'slot' || !ref.slot.inBody) continue;
      const codec = def.checkpointCodec?.[name];
      const key = captureKey(refSig(ref), codec);
      if (!slot.capture.has(key)) slot.capture.set(key, codec ? codec.encode(args[name]) : args[name]);
    }
  }
  // Linked widget values are checked here: validation could only check those it could compute.
  for (const { name, spec } of inputEntries(def)) {
    const ref = slot.inputs[name];
    if (!ref || ref.kind !== 'slot' || spec.kind === 'LINK') continue;
    const parsed = spec.schema.safeParse(args[name]);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => i.message).join('; ');
      throw failure(
        new Error(
          `Input '${name}' received ${showValue(args[name])} from node ${ref.slot.nodeId}${allowed(spec)}: ${why}`,
        ),
        args,
      );
    }
  }
  // Limits and the node's own checks on what it receives, before it allocates anything.
  const problem = await checkBeforeRun(st, def, nodeId, args, slot.repeats);
  if (problem) throw failure(new Error(problem), args);
  st.current = slot;
  st.emit({ type: 'executing', promptId: st.promptId, node: nodeId, displayNode: nodeId });
  let result: Awaited<ReturnType<AnyNodeDef['run']>>;
  try {
    result = await def.run(args, makeContext(st, slot));
  } catch (err) {
    throw failure(err, args);
  }
  const values = result?.outputs as unknown[] | undefined;
  if (!Array.isArray(values) || values.length !== def.outputs.length) {
    throw failure(
      new Error(
        `returned ${Array.isArray(values) ? values.length : 'no'} outputs, but declares ${def.outputs.length}`,
      ),
      args,
    );
  }
  hold(st, slot, values);
  slot.executed = true;
  st.executed.add(nodeId);
  releaseInputs(st, slot);
  const ui = result.ui && Object.keys(result.ui).length > 0 ? result.ui : undefined;
  if (ui) {
    mergeUi(st.outputs, nodeId, ui);
    st.emit({ type: 'executed', promptId: st.promptId, node: nodeId, displayNode: nodeId, output: ui });
  }
  if (slot.inBody) {
    // Body outputs go to disk, not memory; output nodes' UI is collected for the whole loop.
    if (!def.outputNode) st.spill.put(slot.sig, values);
    else if (ui && slot.loopUi) {
      const acc: Record<string, UiOutput> = { [nodeId]: slot.loopUi.get(nodeId) ?? {} };
      mergeUi(acc, nodeId, ui);
      slot.loopUi.set(nodeId, acc[nodeId]);
    }
  } else if (def.outputNode) st.outputEntries.push({ sig: slot.sig, entry: { values, ui } });
  else st.memory.set(slot.sig, { values, ui });
  return values;
}

/**
 * A body node's inputs that no other node of this iteration still needs let go of their values
 * (they stay on disk in the spill tier), so one iteration holds only what is still to be read.
 */
function hold(st: RunState, slot: Slot, values: unknown[]): void {
  slot.values = values;
  if (slot.inBody) st.held.add(slot);
}

function release(st: RunState, slot: Slot): void {
  if (slot.values && slot.inBody && slot.executed && !slot.keep && !slot.def.outputNode) {
    st.released.set(slot.nodeId, slot.values);
  }
  slot.values = undefined;
  st.held.delete(slot);
}

function releaseInputs(st: RunState, slot: Slot): void {
  if (!slot.inputs) return;
  for (const ref of new Set(Object.values(slot.inputs))) {
    if (ref.kind !== 'slot') continue;
    const src = ref.slot;
    if (!src.inBody || src.owner !== slot.owner || src.consumers <= 0) continue;
    src.consumers--;
    if (src.consumers === 0 && !src.keep && !src.pending) release(st, src);
  }
}

async function createSlot(st: RunState, scope: Scope, id: string): Promise<Slot> {
  const node = st.graph.get(id)!;
  const def = st.registry.get(node.classType)!;
  const inputs: Record<string, Ref> = {};
  const literals: Record<string, unknown> = {};
  for (const { name } of inputEntries(def)) {
    const link = node.links[name];
    if (link) {
      inputs[name] = lookup(scope, link[0])?.[link[1]] ?? undefinedRef;
    } else if (name in node.literals) {
      const value = node.literals[name];
      literals[name] = value;
      inputs[name] = { kind: 'literal', value, sig: literalSignature(value) };
    }
  }
  let fingerprint: string | undefined;
  if (def.fingerprint) {
    try {
      fingerprint = await def.fingerprint(literals, { paths: st.paths });
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
  const slot: Slot = {
    nodeId: id,
    node,
    def,
    sig: nodeSignature({
      classType: def.name,
      inputs: sigInputs,
      fingerprint,
      nodeId: def.outputNode ? id : undefined,
      loopPath: scope.loopPath,
    }),
    inputs,
    inBody: scope.inBody,
    loop: scope.loop,
    repeats: scope.repeats,
    executed: false,
    loopUi: scope.loopUi,
    owner: scope.id,
    consumers: 0,
    keep: scope.carriedIds?.has(id) ?? false,
    capture: def.outputNode ? scope.capture : undefined,
  };
  for (const ref of Object.values(inputs)) {
    if (ref.kind !== 'slot' || !ref.slot.inBody) continue;
    if (ref.slot.owner === scope.id) ref.slot.consumers++;
    else ref.slot.keep = true;
  }
  scope.refs.set(
    id,
    def.outputs.map((_, index) => ({ kind: 'slot', slot, index })),
  );
  scope.slots.push(slot);
  return slot;
}

/** An output node outside loops: replayed from the cache when unchanged. */
async function runOutputNode(st: RunState, scope: Scope, slot: Slot): Promise<void> {
  if (scope.skipOutputs?.has(slot.nodeId)) return;
  if (!slot.inBody) {
    const hit = st.memory.get(slot.sig);
    if (hit) {
      slot.values = hit.values;
      if (hit.ui && Object.keys(hit.ui).length > 0) {
        mergeUi(st.outputs, slot.nodeId, hit.ui);
        st.emit({
          type: 'executed',
          promptId: st.promptId,
          node: slot.nodeId,
          displayNode: slot.nodeId,
          output: hit.ui,
        });
      }
      return;
    }
  }
  st.signal.throwIfAborted();
  await executeSlot(st, slot);
}

async function runSteps(st: RunState, scope: Scope, steps: readonly Step[]): Promise<void> {
  let i = 0;
  let first = true;
  while (i < steps.length) {
    // A run of plain node steps: signatures first, so cached nodes are announced before running.
    const segment: Slot[] = [];
    for (; i < steps.length && steps[i].kind === 'node'; i++) {
      const id = (steps[i] as { id: string }).id;
      const def = st.registry.get(st.graph.get(id)!.classType)!;
      if (def.role === 'loop-end') {
        scope.loopEndRefs = loopEndRefs(st, scope, id);
        continue;
      }
      segment.push(await createSlot(st, scope, id));
    }
    if (!scope.inBody) {
      const cached = segment.filter((s) => st.memory.has(s.sig)).map((s) => s.nodeId);
      if (first || cached.length > 0) {
        st.emit({ type: 'execution_cached', promptId: st.promptId, nodes: cached, timestamp: Date.now() });
      }
    }
    first = false;
    for (const slot of segment) if (slot.def.outputNode) await runOutputNode(st, scope, slot);
    if (i < steps.length) {
      const step = steps[i++];
      if (step.kind === 'loop') await runLoop(st, scope, step);
    }
  }
}

/**
 * A whole-loop cache key for each output node in a loop body: the chained hash of its signature in
 * every iteration, computed without running anything (signatures chain through the carried values'
 * signatures). A streaming output node cannot resume a file halfway, so it is replayed from the
 * cache only when its whole loop is unchanged; one small entry per output node, whatever the length.
 * Nested loops are not simulated: their output nodes simply run every time.
 */
async function bodyOutputKeys(
  st: RunState,
  scope: Scope,
  step: Step & { kind: 'loop' },
  iterations: number,
  initial: Ref[],
  flowRef: Ref,
): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  // A writer's state spans the whole run, so only a top-level loop without inner loops is one
  // complete stream that can be replayed as a whole.
  if (scope.inBody || step.body.some((s) => s.kind === 'loop')) return keys;
  const outputIds = step.body
    .filter((s): s is { kind: 'node'; id: string } => s.kind === 'node')
    .map((s) => s.id)
    .filter((id) => st.registry.get(st.graph.get(id)!.classType)?.outputNode === true);
  for (const id of outputIds) keys.set(id, hashParts(['loop-output', id, iterations]));
  let carried = initial;
  for (let c = 0; c < iterations && keys.size > 0; c++) {
    const body = iterationScope(scope, step, c, iterations, flowRef, carried);
    for (const s of step.body) {
      if (s.kind !== 'node') continue;
      if (st.registry.get(st.graph.get(s.id)!.classType)?.role === 'loop-end') {
        body.loopEndRefs = loopEndRefs(st, body, s.id);
        continue;
      }
      const slot = await createSlot(st, body, s.id);
      const key = keys.get(s.id);
      if (key !== undefined) keys.set(s.id, hashParts([key, slot.sig]));
    }
    carried = body.loopEndRefs ?? initial.map(() => undefinedRef);
    // Only signatures matter here: cut the history so a long loop does not pile up slots.
    for (const ref of carried) if (ref.kind === 'slot' && ref.slot.inBody) ref.slot.inputs = undefined;
  }
  return keys;
}

/** What a LoopEnd receives this iteration (links or constants): the next carried values. */
function loopEndRefs(st: RunState, scope: Scope, id: string): Ref[] {
  const node = st.graph.get(id)!;
  return Array.from({ length: CARRIED }, (_, k) => inputRef(scope, node, `value${k + 1}`));
}

/**
 * One signature for what iteration `body` made: the signatures of the values it carries on and of
 * every linked input of its output nodes (as a set, so removing one of two writers of the same
 * frames changes nothing). Output nodes' constant inputs (fps, format, file name) are left out:
 * changing them changes no clip.
 */
function clipSignature(body: Scope): string {
  const inputs = new Set<string>();
  for (const slot of body.slots) {
    if (slot.owner !== body.id || !slot.def.outputNode || !slot.inputs) continue;
    for (const ref of Object.values(slot.inputs)) {
      if (ref.kind === 'slot' && ref.slot.inBody) inputs.add(refSig(ref));
    }
  }
  return hashParts([[...inputs].sort(), (body.loopEndRefs ?? []).map(refSig)]);
}

/** Iteration c's scope with a slot (and so a signature) for every body node; nothing runs. */
async function simulateIteration(
  st: RunState,
  scope: Scope,
  step: Step & { kind: 'loop' },
  c: number,
  iterations: number,
  flowRef: Ref,
  carried: Ref[],
  extra: Pick<Scope, 'skipOutputs' | 'loopUi'> = {},
): Promise<Scope> {
  const body = iterationScope(scope, step, c, iterations, flowRef, carried, extra);
  for (const s of step.body) {
    if (s.kind !== 'node') continue;
    if (st.registry.get(st.graph.get(s.id)!.classType)?.role === 'loop-end') {
      body.loopEndRefs = loopEndRefs(st, body, s.id);
      continue;
    }
    await createSlot(st, body, s.id);
  }
  return body;
}

/** The refs carried out of a simulated iteration, cut from their history. */
function carriedOut(body: Scope): Ref[] {
  const next = body.loopEndRefs ?? Array.from({ length: CARRIED }, () => undefinedRef);
  for (const ref of next) if (ref.kind === 'slot' && ref.slot.inBody) ref.slot.inputs = undefined;
  return next;
}

/**
 * Continues a saved loop: checks that this workflow makes the same clips as the saved ones (every
 * finished iteration's signature), then feeds the body's output nodes what they received in those
 * iterations, so streaming writers hold the same frames as in an uninterrupted run. Returns the
 * first iteration left to run and the values carried into it.
 */
async function resumeLoop(
  st: RunState,
  scope: Scope,
  step: Step & { kind: 'loop' },
  iterations: number,
  initial: Ref[],
  flowRef: Ref,
  saved: SavedLoop,
  extra: Pick<Scope, 'skipOutputs' | 'loopUi'>,
): Promise<{ next: number; carried: Ref[] }> {
  const startDef = st.registry.get(st.graph.get(step.start)!.classType)!;
  const at = { nodeId: step.start, classType: startDef.name };
  const next = Math.min(saved.next, iterations);
  // First every signature, so a refused resume starts no writer.
  let carried = initial;
  for (let c = 0; c < next; c++) {
    const body = await simulateIteration(st, scope, step, c, iterations, flowRef, carried);
    if (clipSignature(body) !== saved.clipSigs[c]) {
      const why = st.checkpoints?.describeChange(step.start, c) ?? 'the workflow changed';
      throw new NodeFailure(
        at,
        new ResumeRefusedError(
          `Cannot resume: ${saved.next} clip${saved.next === 1 ? ' was' : 's were'} made with another workflow; ` +
            `clip ${c + 1} would differ (${why})`,
          step.start,
          c,
        ),
        {},
      );
    }
    carried = carriedOut(body);
  }
  carried = initial;
  for (let c = 0; c < next; c++) {
    st.signal.throwIfAborted();
    const body = await simulateIteration(st, scope, step, c, iterations, flowRef, carried, extra);
    const given = await saved.outputInputs(c);
    for (const slot of body.slots) {
      if (slot.owner !== body.id || !slot.def.outputNode || extra.skipOutputs?.has(slot.nodeId)) continue;
      const inputs = slot.inputs ?? {};
      for (const [name, ref] of Object.entries(inputs)) {
        if (ref.kind !== 'slot' || !ref.slot.inBody) continue;
        const sig = refSig(ref);
        const codec = slot.def.checkpointCodec?.[name];
        const key = captureKey(sig, codec);
        if (!given.has(key)) {
          throw new NodeFailure(
            at,
            new ResumeRefusedError(
              `Cannot resume: the checkpoint holds no input '${name}' of node ${slot.nodeId} for clip ${c + 1}`,
              step.start,
              c,
            ),
            {},
          );
        }
        const stored = given.get(key);
        inputs[name] = { kind: 'literal', value: codec ? codec.decode(stored) : stored, sig };
      }
      await executeSlot(st, slot);
    }
    for (const s of body.slots) release(st, s);
    carried = carriedOut(body);
  }
  if (next < saved.next) return { next, carried };
  const values = await saved.carried();
  return {
    next,
    carried: values.map((value, k) => ({ kind: 'literal', value, sig: saved.carriedSigs[k] })),
  };
}

async function runLoop(st: RunState, scope: Scope, step: Step & { kind: 'loop' }): Promise<void> {
  const startNode = st.graph.get(step.start)!;
  const startDef = st.registry.get(startNode.classType)!;
  const startInput = (name: string): Ref => inputRef(scope, startNode, name);
  const iterRef = startInput('iterations');
  const iterations = await resolveRef(st, iterRef);
  const iterSpec = startDef.inputs.required.iterations;
  if (typeof iterations !== 'number' || !iterSpec || !iterSpec.schema.safeParse(iterations).success) {
    throw new NodeFailure(
      { nodeId: step.start, classType: startDef.name },
      new Error(`Input 'iterations' received ${showValue(iterations)}${iterSpec ? allowed(iterSpec) : ''}`),
      { iterations },
    );
  }
  const problem = await checkBeforeRun(st, startDef, step.start, { iterations }, scope.repeats);
  if (problem) {
    throw new NodeFailure({ nodeId: step.start, classType: startDef.name }, new Error(problem), {
      iterations,
    });
  }
  let carried: Ref[] = Array.from({ length: CARRIED }, (_, k) => startInput(`initial_value${k + 1}`));
  let carriedPins: string[] = [];
  // Slots made during this loop (any of its iterations, inner loops included) have larger scope ids.
  const firstScopeId = nextScopeId;
  let carriedSlots: Slot[] = [];
  const flowRef: Ref = {
    kind: 'literal',
    value: { loop: step.start },
    sig: literalSignature(['flow', step.start]),
  };
  const outputKeys = await bodyOutputKeys(st, scope, step, iterations, carried, flowRef);
  const skipOutputs = new Set<string>();
  for (const [id, key] of outputKeys) {
    const hit = st.memory.get(key);
    if (!hit) continue;
    skipOutputs.add(id);
    if (hit.ui && Object.keys(hit.ui).length > 0) {
      mergeUi(st.outputs, id, hit.ui);
      st.emit({ type: 'executed', promptId: st.promptId, node: id, displayNode: id, output: hit.ui });
    }
  }
  const loopUi = new Map<string, UiOutput>();
  const endNode = st.graph.get(step.end)!;
  const carriedIds = new Set(
    Object.entries(endNode.links).flatMap(([name, [src]]) => (name === 'flow' ? [] : [src])),
  );
  // Only a top-level loop without inner loops is one stream of clips that can be continued.
  // A loop whose writers are replayed from the cache (skipOutputs) gives them no frames to save: it
  // is not checkpointed, so it leaves an earlier checkpoint of the same prompt as it is.
  const checkpoints =
    st.checkpoints && !scope.inBody && !step.body.some((s) => s.kind === 'loop') && skipOutputs.size === 0
      ? st.checkpoints
      : undefined;
  let startAt = 0;
  if (checkpoints) {
    const saved = await checkpoints.load(step.start);
    if (saved && saved.next > 0) {
      const resumed = await resumeLoop(st, scope, step, iterations, carried, flowRef, saved, {
        skipOutputs,
        loopUi,
      });
      startAt = resumed.next;
      carried = resumed.carried;
    }
  }

  for (let c = startAt; c < iterations; c++) {
    st.signal.throwIfAborted();
    st.emit({ type: 'loop_iteration', promptId: st.promptId, node: step.start, iteration: c, iterations });
    const body = iterationScope(scope, step, c, iterations, flowRef, carried, {
      skipOutputs,
      loopUi,
      carriedIds,
      capture: checkpoints ? new Map() : undefined,
    });
    await runSteps(st, body, step.body);

    // Carried values are materialized (in memory, or pinned on disk) and cut from their history,
    // so iteration c+1 holds nothing of iteration c-1.
    const next = body.loopEndRefs ?? Array.from({ length: CARRIED }, () => undefinedRef);
    const nextPins: string[] = [];
    for (const ref of next) {
      if (ref.kind !== 'slot' || !ref.slot.inBody) continue;
      const s = ref.slot;
      if (!s.values) {
        if (st.spill.has(s.sig)) {
          st.spill.pin(s.sig);
          nextPins.push(s.sig);
        } else await resolveSlot(st, s);
      }
      s.inputs = undefined;
    }
    if (checkpoints) {
      // The state the next iteration needs, saved before this iteration's values are let go.
      await checkpoints.save(step.start, {
        iteration: c,
        iterations,
        clipSig: clipSignature(body),
        carried: await Promise.all(next.map((r) => resolveRef(st, r))),
        carriedSigs: next.map(refSig),
        outputInputs: body.capture ?? new Map(),
      });
    }
    for (const sig of carriedPins) st.spill.unpin(sig);
    for (const sig of body.pins) st.spill.unpin(sig);
    carriedPins = nextPins;
    carried = next;
    // Everything else this iteration (and the values it was carried) is let go now.
    const nextSlots = new Set(
      next.flatMap((r) => (r.kind === 'slot' && r.slot.owner >= firstScopeId ? [r.slot] : [])),
    );
    for (const s of [...body.slots, ...carriedSlots]) if (!nextSlots.has(s)) release(st, s);
    carriedSlots = [...nextSlots];
    // What this iteration let go of goes back to its nodes, unless a carried value shares a buffer.
    const carriedBuffers = buffersOf(carriedSlots.flatMap((s) => s.values ?? []));
    st.recycle.clear();
    for (const [id, values] of st.released) {
      if (![...buffersOf(values)].some((b) => carriedBuffers.has(b))) st.recycle.set(id, values);
    }
    st.released.clear();
    const cached = body.slots.filter((s) => !s.executed && s.owner === body.id).map((s) => s.nodeId);
    if (cached.length > 0) {
      st.emit({ type: 'execution_cached', promptId: st.promptId, nodes: cached, timestamp: Date.now() });
    }
  }
  for (const [id, key] of outputKeys) {
    if (!skipOutputs.has(id)) st.outputEntries.push({ sig: key, entry: { values: [], ui: loopUi.get(id) } });
  }
  scope.pins.push(...carriedPins);
  // The loop's results now belong to the enclosing scope, and are let go with it.
  scope.slots.push(...carriedSlots);
  st.executed.add(step.start);
  st.executed.add(step.end);
  scope.refs.set(step.end, carried);
}

function errorType(err: unknown): string {
  if (err instanceof Error) return err.name || err.constructor.name;
  return typeof err;
}

function traceback(err: unknown): string[] {
  if (!(err instanceof Error) || !err.stack) return [];
  return err.stack
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

export interface ExecuteOptions {
  promptId: string;
  signal: AbortSignal;
  emit: (e: EngineEvent) => void;
  /** Whether the host shows previews (default true). */
  previews?: boolean;
}

/** Runs a validated plan; never throws (a failing node becomes an execution_error). */
export async function executePlan(deps: ExecuteDeps, opts: ExecuteOptions): Promise<RunResultSummary> {
  const st: RunState = {
    ...deps,
    promptId: opts.promptId,
    signal: opts.signal,
    emit: opts.emit,
    previews: opts.previews ?? true,
    executed: new Set(),
    outputs: {},
    nodeState: new Map(),
    runEnd: [],
    outputEntries: [],
    released: new Map(),
    recycle: new Map(),
  };
  const top: Scope = { id: nextScopeId++, refs: new Map(), slots: [], inBody: false, repeats: 1, pins: [] };
  st.emit({ type: 'execution_start', promptId: st.promptId, timestamp: Date.now() });

  let failure:
    { nodeId: string | null; classType: string; error: unknown; inputs: Record<string, unknown> } | undefined;
  try {
    await runSteps(st, top, deps.plan.steps);
  } catch (err) {
    failure =
      err instanceof NodeFailure
        ? { nodeId: err.slot.nodeId, classType: err.slot.classType, error: err.original, inputs: err.inputs }
        : {
            nodeId: st.current?.nodeId ?? null,
            classType: st.current?.def.name ?? '',
            error: err,
            inputs: {},
          };
  } finally {
    for (const sig of top.pins) st.spill.unpin(sig);
    for (const slot of st.held) (slot as Slot).values = undefined;
    st.held.clear();
  }
  const interrupted =
    failure !== undefined && (st.signal.aborted || errorType(failure.error) === 'AbortError');

  const outcome: RunOutcome = failure ? { ok: false, error: failure.error, interrupted } : { ok: true };
  for (const { nodeId, classType, callback } of st.runEnd) {
    try {
      await callback(outcome);
    } catch (err) {
      // A failed finish (e.g. a rename) fails a run that had succeeded; cleanup errors otherwise lose to the first.
      failure ??= { nodeId, classType, error: err, inputs: {} };
    }
  }

  const executed = [...st.executed];
  if (!failure) {
    for (const { sig, entry } of st.outputEntries) st.memory.set(sig, entry);
    st.emit({ type: 'execution_success', promptId: st.promptId, timestamp: Date.now() });
    const cached = [...deps.plan.needed].filter((id) => !st.executed.has(id));
    return { status: 'success', outputs: st.outputs, executed, cached };
  }
  if (interrupted) {
    st.emit({
      type: 'execution_interrupted',
      promptId: st.promptId,
      nodeId: failure.nodeId ?? '',
      nodeType: failure.classType,
      executed,
    });
    return { status: 'interrupted', outputs: st.outputs, nodeId: failure.nodeId };
  }
  const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
  const currentInputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(failure.inputs)) currentInputs[k] = summarizeValue(v);
  st.emit({
    type: 'execution_error',
    promptId: st.promptId,
    nodeId: failure.nodeId ?? '',
    nodeType: failure.classType,
    executed,
    exceptionMessage: message,
    exceptionType: errorType(failure.error),
    traceback: traceback(failure.error),
    currentInputs,
    currentOutputs: {},
  });
  return { status: 'error', outputs: st.outputs, nodeId: failure.nodeId ?? '', message };
}
