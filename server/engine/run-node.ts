// Running one node: its inputs resolved (running what they come from, or reading the caches), the
// checks on what it receives, its RunContext, and its outputs handed to the value store.
import type {
  AnyNodeDef,
  CheckpointCodec,
  NodeServices,
  ResourceLimits,
  RunContext,
  RunOutcome,
  UiOutput,
} from './define.ts';
import { inputEntries } from './graph.ts';
import type { Plan } from './plan.ts';
import type { LoopCheckpoints } from './resume.ts';
import { bodySlot, refSig, type Ref, type Slot, type SlotMaker } from './scope.ts';
import type { EngineEvent } from './types.ts';
import { allowed, mergeUi, showValue } from './outputs.ts';
import { costProblems } from './values.ts';

/** Everything one run shares: what it runs over, where it reports, what it has shown so far. */
export interface RunState extends SlotMaker {
  plan: Plan;
  services: NodeServices;
  /** The host's limits, checked on the values a node receives right before it runs. */
  limits?: ResourceLimits;
  /** Nodes whose validate() runs again on the values they receive (see Validated.recheck). */
  recheck?: Set<string>;
  /** Saves each finished iteration of a top-level loop, and gives saved loops back (resume). */
  checkpoints?: LoopCheckpoints;
  promptId: string;
  signal: AbortSignal;
  emit: (e: EngineEvent) => void;
  previews: boolean;
  executed: Set<string>;
  outputs: Record<string, UiOutput>;
  nodeState: Map<string, Record<string, unknown>>;
  runEnd: { nodeId: string; classType: string; callback: (o: RunOutcome) => void | Promise<void> }[];
  current?: Slot;
}

/** A node failed: carries which node and what it was given, for execution_error. */
export class NodeFailure extends Error {
  constructor(
    readonly slot: { nodeId: string; classType: string },
    readonly original: unknown,
    readonly inputs: Record<string, unknown>,
  ) {
    super(original instanceof Error ? original.message : String(original));
  }
}

/** Shows a node's UI output: merged into the run's outputs and sent as `executed`. */
export function showUi(st: RunState, nodeId: string, ui: UiOutput): void {
  mergeUi(st.outputs, nodeId, ui);
  st.emit({ type: 'executed', promptId: st.promptId, node: nodeId, displayNode: nodeId, output: ui });
}

export async function resolveRef(st: RunState, ref: Ref): Promise<unknown> {
  if (ref.kind === 'literal') return ref.value;
  const values = await resolveSlot(st, ref.slot);
  return values[ref.index];
}

/** A slot's values: held, cached, or made by running its node (once, however many ask). */
export function resolveSlot(st: RunState, slot: Slot): Promise<unknown[]> {
  if (slot.cell.values) return Promise.resolve(slot.cell.values);
  slot.pending ??= (async () => st.store.get(slot.cell) ?? executeSlot(st, slot))().finally(() => {
    slot.pending = undefined;
  });
  return slot.pending;
}

function makeContext(st: RunState, slot: Slot): RunContext {
  const { def } = slot;
  const { nodeId } = slot.cell;
  const loop = slot.iteration?.position;
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
    loop,
    state,
    progress(value, max) {
      st.emit({
        type: 'progress',
        promptId: st.promptId,
        node: nodeId,
        value,
        max,
        ...(loop ? { iteration: loop.iteration, iterations: loop.iterations } : {}),
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
    emitUi: (ui) => showUi(st, nodeId, ui),
    onRunEnd(callback) {
      st.runEnd.push({ nodeId, classType: def.name, callback });
    },
    recycled: () => st.store.recycled(nodeId),
  };
}

/**
 * What stops a node right before it runs: a cost over the host's limits, or (for nodes whose
 * widget values were unknown at validation) its validate() on the values it received.
 */
export async function checkBeforeRun(
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

/** Where a captured output-node input is kept: by its signature and the form it is stored in. */
export function captureKey(sig: string, codec: CheckpointCodec | undefined): string {
  return codec ? `${sig}#${codec.name}` : sig;
}

/** Kept for a resume: the inputs a checkpointed output node is fed again from when its loop continues. */
function captureInputs(slot: Slot, inputs: Record<string, Ref>, args: Record<string, unknown>): void {
  const capture = slot.iteration?.capture;
  if (!capture || !slot.def.outputNode) return;
  for (const [name, ref] of Object.entries(inputs)) {
    if (!bodySlot(ref)) continue;
    const codec = slot.def.checkpointCodec?.[name];
    const key = captureKey(refSig(ref), codec);
    if (!capture.has(key)) capture.set(key, codec ? codec.encode(args[name]) : args[name]);
  }
}

/** Linked widget values, checked here: validation could only check those it could compute. */
function linkedWidgetProblem(
  slot: Slot,
  inputs: Record<string, Ref>,
  args: Record<string, unknown>,
): string | undefined {
  for (const { name, spec } of inputEntries(slot.def)) {
    const ref = inputs[name];
    if (!ref || ref.kind !== 'slot' || spec.kind === 'LINK') continue;
    const parsed = spec.schema.safeParse(args[name]);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => i.message).join('; ');
      return `Input '${name}' received ${showValue(args[name])} from node ${ref.slot.cell.nodeId}${allowed(spec)}: ${why}`;
    }
  }
  return undefined;
}

/** Same-iteration inputs this node was the last reader of are let go (they stay on disk). */
function releaseInputs(st: RunState, slot: Slot): void {
  if (!slot.inputs) return;
  for (const ref of new Set(Object.values(slot.inputs))) {
    const src = bodySlot(ref);
    if (src && src.owner === slot.owner) st.store.consumed(src.cell, src.pending !== undefined);
  }
}

/** Runs a slot's node on its resolved inputs; its outputs go to the value store. */
export async function executeSlot(st: RunState, slot: Slot): Promise<unknown[]> {
  const { def, cell } = slot;
  const { nodeId } = cell;
  const failure = (cause: unknown, inputs: Record<string, unknown>) =>
    new NodeFailure({ nodeId, classType: def.name }, cause, inputs);
  const inputs = slot.inputs;
  if (!inputs) {
    throw failure(new Error(`The cached outputs of node ${nodeId} were dropped before they were used`), {});
  }
  const args: Record<string, unknown> = {};
  for (const [name, ref] of Object.entries(inputs)) args[name] = await resolveRef(st, ref);
  st.signal.throwIfAborted();
  captureInputs(slot, inputs, args);
  const problem =
    linkedWidgetProblem(slot, inputs, args) ??
    // Limits and the node's own checks on what it receives, before it allocates anything.
    (await checkBeforeRun(st, def, nodeId, args, slot.iteration?.repeats ?? 1));
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
  const ui = result.ui && Object.keys(result.ui).length > 0 ? result.ui : undefined;
  st.store.put(cell, values, ui);
  st.executed.add(nodeId);
  releaseInputs(st, slot);
  if (ui) {
    showUi(st, nodeId, ui);
    // A loop's output nodes' UI is collected over the whole loop (cached with it at the end).
    const loopUi = slot.iteration?.loopUi;
    if (cell.inBody && def.outputNode && loopUi) {
      const acc: Record<string, UiOutput> = { [nodeId]: loopUi.get(nodeId) ?? {} };
      mergeUi(acc, nodeId, ui);
      loopUi.set(nodeId, acc[nodeId]);
    }
  }
  return values;
}
