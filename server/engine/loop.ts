// Running a loop step: its body once per iteration in a fresh scope, the LoopEnd's values carried
// into the next, each iteration's values let go when it ends, whole-loop caching of the body's
// output nodes, and checkpoints saved and resumed (top-level loops only).
import type { UiOutput } from './define.ts';
import { hashParts, literalSignature } from './cache.ts';
import type { Step } from './plan.ts';
import { ResumeRefusedError, type LoopCheckpoints, type SavedLoop } from './resume.ts';
import {
  bodySlot,
  CARRIED,
  createSlot,
  inputRef,
  iterationScope,
  loopEndRefs,
  refSig,
  undefinedRef,
  type Iteration,
  type Ref,
  type Scope,
  type Slot,
} from './scope.ts';
import { allowed, showValue } from './outputs.ts';
import {
  captureKey,
  checkBeforeRun,
  executeSlot,
  NodeFailure,
  resolveRef,
  resolveSlot,
  showUi,
  type RunState,
} from './run-node.ts';

export type LoopStep = Step & { kind: 'loop' };
/** Runs a body's steps in its scope (the plan walk, passed in so loops can nest). */
export type RunBody = (scope: Scope, steps: readonly Step[]) => Promise<void>;

/** Where a loop's iterations come from: its LoopStart, the flow link and the carried inputs. */
interface LoopFrame {
  step: LoopStep;
  scope: Scope;
  iterations: number;
  flowRef: Ref;
}

const isNodeStep = (s: Step): s is { kind: 'node'; id: string } => s.kind === 'node';

function isLoopEnd(st: RunState, id: string): boolean {
  return st.registry.get(st.graph.get(id)!.classType)?.role === 'loop-end';
}

/** Iteration c's scope with a slot (and so a signature) for every body node; nothing runs. */
async function simulateIteration(
  st: RunState,
  f: LoopFrame,
  c: number,
  carried: Ref[],
  extra: Pick<Iteration, 'skipOutputs' | 'loopUi'> = {},
  onSlot?: (slot: Slot) => void,
): Promise<Scope> {
  const position = { iteration: c, iterations: f.iterations };
  const body = iterationScope(st, f.scope, f.step.start, position, f.flowRef, carried, extra);
  for (const s of f.step.body.filter(isNodeStep)) {
    if (isLoopEnd(st, s.id)) body.loopEndRefs = loopEndRefs(st, body, s.id);
    else {
      const slot = await createSlot(st, body, s.id);
      onSlot?.(slot);
    }
  }
  return body;
}

/** The refs carried out of an iteration, cut from their history (no chain back to iteration 0). */
function carriedOut(body: Scope): Ref[] {
  const next = body.loopEndRefs ?? Array.from({ length: CARRIED }, () => undefinedRef);
  for (const ref of next) {
    const s = bodySlot(ref);
    if (s) s.inputs = undefined;
  }
  return next;
}

/** Only a top-level loop without inner loops is one stream of clips (cached whole, or continued). */
const isStream = (f: LoopFrame): boolean =>
  f.scope.iteration === undefined && !f.step.body.some((s) => s.kind === 'loop');

/**
 * A whole-loop cache key for each output node in a loop body: the chained hash of its signature in
 * every iteration, computed without running anything (signatures chain through the carried values'
 * signatures). A streaming output node cannot resume a file halfway, so it is replayed from the
 * cache only when its whole loop is unchanged; one small entry per output node, whatever the length.
 * Nested loops are not simulated: their output nodes simply run every time.
 */
async function bodyOutputKeys(st: RunState, f: LoopFrame, initial: Ref[]): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  if (!isStream(f)) return keys;
  const outputIds = f.step.body
    .filter(isNodeStep)
    .map((s) => s.id)
    .filter((id) => st.registry.get(st.graph.get(id)!.classType)?.outputNode === true);
  for (const id of outputIds) keys.set(id, hashParts(['loop-output', id, f.iterations]));
  let carried = initial;
  for (let c = 0; c < f.iterations && keys.size > 0; c++) {
    const body = await simulateIteration(st, f, c, carried, {}, (slot) => {
      const key = keys.get(slot.cell.nodeId);
      if (key !== undefined) keys.set(slot.cell.nodeId, hashParts([key, slot.cell.sig]));
    });
    // Only signatures matter here: the history is cut so a long loop does not pile up slots.
    carried = body.loopEndRefs ? carriedOut(body) : initial.map(() => undefinedRef);
  }
  return keys;
}

/** Output nodes made in this very iteration (not read from an enclosing scope). */
const ownOutputSlots = (body: Scope): Slot[] =>
  body.slots.filter((s) => s.owner === body.id && s.def.outputNode);

/**
 * One signature for what iteration `body` made: the signatures of the values it carries on and of
 * every linked input of its output nodes (as a set, so removing one of two writers of the same
 * frames changes nothing). Output nodes' constant inputs (fps, format, file name) are left out:
 * changing them changes no clip.
 */
function clipSignature(body: Scope): string {
  const inputs = new Set<string>();
  for (const slot of ownOutputSlots(body)) {
    for (const ref of Object.values(slot.inputs ?? {})) if (bodySlot(ref)) inputs.add(refSig(ref));
  }
  return hashParts([[...inputs].sort(), (body.loopEndRefs ?? []).map(refSig)]);
}

/** A refused resume, reported on the LoopStart. */
function refused(st: RunState, f: LoopFrame, c: number, message: string): NodeFailure {
  const classType = st.registry.get(st.graph.get(f.step.start)!.classType)!.name;
  return new NodeFailure(
    { nodeId: f.step.start, classType },
    new ResumeRefusedError(message, f.step.start, c),
    {},
  );
}

/**
 * Continues a saved loop: checks that this workflow makes the same clips as the saved ones (every
 * finished iteration's signature), then feeds the body's output nodes what they received in those
 * iterations, so streaming writers hold the same frames as in an uninterrupted run. Returns the
 * first iteration left to run and the values carried into it.
 */
async function resumeLoop(
  st: RunState,
  f: LoopFrame,
  initial: Ref[],
  saved: SavedLoop,
  checkpoints: LoopCheckpoints,
  extra: Pick<Iteration, 'skipOutputs' | 'loopUi'>,
): Promise<{ next: number; carried: Ref[] }> {
  const next = Math.min(saved.next, f.iterations);
  // First every signature, so a refused resume starts no writer.
  let carried = initial;
  for (let c = 0; c < next; c++) {
    const body = await simulateIteration(st, f, c, carried);
    if (clipSignature(body) !== saved.clipSigs[c]) {
      const why = checkpoints.describeChange(f.step.start, c) ?? 'the workflow changed';
      throw refused(
        st,
        f,
        c,
        `Cannot resume: ${saved.next} clip${saved.next === 1 ? ' was' : 's were'} made with another workflow; ` +
          `clip ${c + 1} would differ (${why})`,
      );
    }
    carried = carriedOut(body);
  }
  carried = initial;
  for (let c = 0; c < next; c++) {
    st.signal.throwIfAborted();
    const body = await simulateIteration(st, f, c, carried, extra);
    const given = await saved.outputInputs(c);
    for (const slot of ownOutputSlots(body)) {
      if (extra.skipOutputs?.has(slot.cell.nodeId)) continue;
      const inputs = slot.inputs ?? {};
      for (const [name, ref] of Object.entries(inputs)) {
        if (!bodySlot(ref)) continue;
        const sig = refSig(ref);
        const codec = slot.def.checkpointCodec?.[name];
        const key = captureKey(sig, codec);
        if (!given.has(key)) {
          throw refused(
            st,
            f,
            c,
            `Cannot resume: the checkpoint holds no input '${name}' of node ${slot.cell.nodeId} for clip ${c + 1}`,
          );
        }
        const stored = given.get(key);
        inputs[name] = { kind: 'literal', value: codec ? codec.decode(stored) : stored, sig };
      }
      await executeSlot(st, slot);
    }
    for (const s of body.slots) st.store.release(s.cell);
    carried = carriedOut(body);
  }
  if (next < saved.next) return { next, carried };
  const values = await saved.carried();
  return {
    next,
    carried: values.map((value, k) => ({ kind: 'literal', value, sig: saved.carriedSigs[k] })),
  };
}

/** The loop's iteration count, checked like a node input (it may come through a link). */
async function iterationCount(st: RunState, scope: Scope, step: LoopStep): Promise<number> {
  const startNode = st.graph.get(step.start)!;
  const startDef = st.registry.get(startNode.classType)!;
  const iterations = await resolveRef(st, inputRef(scope, startNode, 'iterations'));
  const iterSpec = startDef.inputs.required.iterations;
  const at = { nodeId: step.start, classType: startDef.name };
  if (typeof iterations !== 'number' || !iterSpec || !iterSpec.schema.safeParse(iterations).success) {
    throw new NodeFailure(
      at,
      new Error(`Input 'iterations' received ${showValue(iterations)}${iterSpec ? allowed(iterSpec) : ''}`),
      { iterations },
    );
  }
  const problem = await checkBeforeRun(
    st,
    startDef,
    step.start,
    { iterations },
    scope.iteration?.repeats ?? 1,
  );
  if (problem) throw new NodeFailure(at, new Error(problem), { iterations });
  return iterations;
}

/** Output nodes whose whole loop is cached: their UI is shown once, and they do not run. */
function replayCachedOutputs(st: RunState, outputKeys: Map<string, string>): Set<string> {
  const skip = new Set<string>();
  for (const [id, key] of outputKeys) {
    const hit = st.store.cached(key);
    if (!hit) continue;
    skip.add(id);
    if (hit.ui && Object.keys(hit.ui).length > 0) showUi(st, id, hit.ui);
  }
  return skip;
}

/**
 * What one iteration carries on, made to outlive it: values in memory, or pinned on disk, and cut
 * from their history so iteration c+1 holds nothing of iteration c-1. Returns the new pins.
 */
async function keepCarried(st: RunState, next: readonly Ref[]): Promise<string[]> {
  const pins: string[] = [];
  for (const ref of next) {
    const s = bodySlot(ref);
    if (!s) continue;
    const pinned = await st.store.spill(s.cell, () => resolveSlot(st, s));
    if (pinned !== undefined) pins.push(pinned);
    s.inputs = undefined;
  }
  return pins;
}

/** What one iteration hands the next: the carried refs, their disk pins, and their slots. */
interface Carry {
  refs: Ref[];
  pins: string[];
  /** Carried slots made in this loop (released by the iteration that stops carrying them). */
  slots: Slot[];
}

/**
 * Closes iteration `body`: keeps what it carries on (and checkpoints it), lets go of everything
 * else it made or was carried, and announces the body nodes that came from the caches.
 */
async function closeIteration(
  st: RunState,
  f: LoopFrame,
  body: Scope,
  before: Carry,
  firstScopeId: number,
  checkpoints: LoopCheckpoints | undefined,
): Promise<Carry> {
  const refs = body.loopEndRefs ?? Array.from({ length: CARRIED }, () => undefinedRef);
  const pins = await keepCarried(st, refs);
  if (checkpoints) {
    // The state the next iteration needs, saved before this iteration's values are let go.
    await checkpoints.save(f.step.start, {
      iteration: body.iteration!.position.iteration,
      iterations: f.iterations,
      clipSig: clipSignature(body),
      carried: await Promise.all(refs.map((r) => resolveRef(st, r))),
      carriedSigs: refs.map(refSig),
      outputInputs: body.iteration?.capture ?? new Map(),
    });
  }
  for (const sig of before.pins) st.store.unpin(sig);
  for (const sig of body.pins) st.store.unpin(sig);
  // Slots made during this loop (any of its iterations, inner loops included) have larger scope ids.
  const slots = new Set(
    refs.flatMap((r) => (r.kind === 'slot' && r.slot.owner >= firstScopeId ? [r.slot] : [])),
  );
  for (const s of [...body.slots, ...before.slots]) if (!slots.has(s)) st.store.release(s.cell);
  st.store.endIteration([...slots].map((s) => s.cell));
  const cached = body.slots.filter((s) => !s.cell.executed && s.owner === body.id).map((s) => s.cell.nodeId);
  if (cached.length > 0) {
    st.emit({ type: 'execution_cached', promptId: st.promptId, nodes: cached, timestamp: Date.now() });
  }
  return { refs, pins, slots: [...slots] };
}

export async function runLoop(st: RunState, scope: Scope, step: LoopStep, runBody: RunBody): Promise<void> {
  const startNode = st.graph.get(step.start)!;
  const iterations = await iterationCount(st, scope, step);
  const f: LoopFrame = {
    step,
    scope,
    iterations,
    flowRef: { kind: 'literal', value: { loop: step.start }, sig: literalSignature(['flow', step.start]) },
  };
  const initial: Ref[] = Array.from({ length: CARRIED }, (_, k) =>
    inputRef(scope, startNode, `initial_value${k + 1}`),
  );
  const firstScopeId = st.scopeIds.next;
  const outputKeys = await bodyOutputKeys(st, f, initial);
  const skipOutputs = replayCachedOutputs(st, outputKeys);
  const loopUi = new Map<string, UiOutput>();
  const carriedIds = new Set(
    Object.entries(st.graph.get(step.end)!.links).flatMap(([name, [src]]) => (name === 'flow' ? [] : [src])),
  );
  // A loop whose writers are replayed from the cache (skipOutputs) gives them no frames to save: it
  // is not checkpointed, so it leaves an earlier checkpoint of the same prompt as it is.
  const checkpoints = st.checkpoints && isStream(f) && skipOutputs.size === 0 ? st.checkpoints : undefined;
  let carry: Carry = { refs: initial, pins: [], slots: [] };
  let startAt = 0;
  const saved = await checkpoints?.load(step.start);
  if (checkpoints && saved && saved.next > 0) {
    const resumed = await resumeLoop(st, f, initial, saved, checkpoints, { skipOutputs, loopUi });
    startAt = resumed.next;
    carry = { ...carry, refs: resumed.carried };
  }

  for (let c = startAt; c < iterations; c++) {
    st.signal.throwIfAborted();
    st.emit({ type: 'loop_iteration', promptId: st.promptId, node: step.start, iteration: c, iterations });
    const position = { iteration: c, iterations };
    const body = iterationScope(st, scope, step.start, position, f.flowRef, carry.refs, {
      skipOutputs,
      loopUi,
      carriedIds,
      capture: checkpoints ? new Map() : undefined,
    });
    await runBody(body, step.body);
    carry = await closeIteration(st, f, body, carry, firstScopeId, checkpoints);
  }
  for (const [id, key] of outputKeys) {
    if (!skipOutputs.has(id)) st.store.stage(key, { values: [], ui: loopUi.get(id) });
  }
  scope.pins.push(...carry.pins);
  // The loop's results now belong to the enclosing scope, and are let go with it.
  scope.slots.push(...carry.slots);
  st.executed.add(step.start);
  st.executed.add(step.end);
  scope.refs.set(step.end, carry.refs);
}
