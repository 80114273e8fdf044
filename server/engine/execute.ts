// Runs a planned prompt as a walk of its plan: output nodes pull what they need (each node once per
// scope), loop steps run their body once per iteration (loop.ts), and every step is reported as an
// EngineEvent. Values and how long they live are the value store's business (value-store.ts).
import type { NodePaths, NodeServices, ResourceLimits, RunOutcome } from './define.ts';
import type { Graph } from './graph.ts';
import { runLoop } from './loop.ts';
import { errorType, summarizeValue, traceback } from './outputs.ts';
import type { Plan, Step } from './plan.ts';
import type { Registry } from './registry.ts';
import type { LoopCheckpoints } from './resume.ts';
import { executeSlot, NodeFailure, showUi, type RunState } from './run-node.ts';
import { createSlot, loopEndRefs, topScope, type Scope, type Slot } from './scope.ts';
import type { EngineEvent, RunResultSummary } from './types.ts';
import type { ValueStore } from './value-store.ts';

export { summarizeValue } from './outputs.ts';

export interface ExecuteDeps {
  graph: Graph;
  plan: Plan;
  registry: Registry;
  paths: NodePaths;
  services: NodeServices;
  /** Where node outputs live: held values, the memory and disk caches. */
  store: ValueStore;
  /** The host's limits, checked on the values a node receives right before it runs. */
  limits?: ResourceLimits;
  /** Nodes whose validate() runs again on the values they receive (see Validated.recheck). */
  recheck?: Set<string>;
  /** Saves each finished iteration of a top-level loop, and gives saved loops back (resume). */
  checkpoints?: LoopCheckpoints;
}

export interface ExecuteOptions {
  promptId: string;
  signal: AbortSignal;
  emit: (e: EngineEvent) => void;
  /** Whether the host shows previews (default true). */
  previews?: boolean;
}

/** An output node: replayed from the cache when unchanged (outside loops), run otherwise. */
async function runOutputNode(st: RunState, scope: Scope, slot: Slot): Promise<void> {
  if (scope.iteration?.skipOutputs?.has(slot.cell.nodeId)) return;
  if (!slot.cell.inBody) {
    const hit = st.store.replay(slot.cell);
    if (hit) {
      if (hit.ui && Object.keys(hit.ui).length > 0) showUi(st, slot.cell.nodeId, hit.ui);
      return;
    }
  }
  st.signal.throwIfAborted();
  await executeSlot(st, slot);
}

/** Runs steps in a scope: runs of node steps (output nodes pull the rest), then a loop step. */
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
    if (!scope.iteration) {
      const cached = segment.filter((s) => st.store.isCached(s.cell.sig)).map((s) => s.cell.nodeId);
      if (first || cached.length > 0) {
        st.emit({ type: 'execution_cached', promptId: st.promptId, nodes: cached, timestamp: Date.now() });
      }
    }
    first = false;
    for (const slot of segment) if (slot.def.outputNode) await runOutputNode(st, scope, slot);
    if (i < steps.length) {
      const step = steps[i++];
      if (step.kind === 'loop') await runLoop(st, scope, step, (body, inner) => runSteps(st, body, inner));
    }
  }
}

interface Failure {
  nodeId: string | null;
  classType: string;
  error: unknown;
  inputs: Record<string, unknown>;
}

function failureOf(st: RunState, err: unknown): Failure {
  if (err instanceof NodeFailure) {
    return {
      nodeId: err.slot.nodeId,
      classType: err.slot.classType,
      error: err.original,
      inputs: err.inputs,
    };
  }
  return {
    nodeId: st.current?.cell.nodeId ?? null,
    classType: st.current?.def.name ?? '',
    error: err,
    inputs: {},
  };
}

/** Tells the nodes that asked (onRunEnd) how the run went; returns the failure that stands after. */
async function finishRun(
  st: RunState,
  failure: Failure | undefined,
  interrupted: boolean,
): Promise<Failure | undefined> {
  const outcome: RunOutcome = failure ? { ok: false, error: failure.error, interrupted } : { ok: true };
  for (const { nodeId, classType, callback } of st.runEnd) {
    try {
      await callback(outcome);
    } catch (err) {
      // A failed finish (e.g. a rename) fails a run that had succeeded; cleanup errors otherwise lose to the first.
      failure ??= { nodeId, classType, error: err, inputs: {} };
    }
  }
  return failure;
}

/** The run's result, and its last event. */
function report(st: RunState, failure: Failure | undefined, interrupted: boolean): RunResultSummary {
  const executed = [...st.executed];
  if (!failure) {
    st.emit({ type: 'execution_success', promptId: st.promptId, timestamp: Date.now() });
    const cached = [...st.plan.needed].filter((id) => !st.executed.has(id));
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

/** Runs a validated plan; never throws (a failing node becomes an execution_error). */
export async function executePlan(deps: ExecuteDeps, opts: ExecuteOptions): Promise<RunResultSummary> {
  const st: RunState = {
    ...deps,
    scopeIds: { next: 0 },
    promptId: opts.promptId,
    signal: opts.signal,
    emit: opts.emit,
    previews: opts.previews ?? true,
    executed: new Set(),
    outputs: {},
    nodeState: new Map(),
    runEnd: [],
  };
  const top = topScope(st);
  st.emit({ type: 'execution_start', promptId: st.promptId, timestamp: Date.now() });

  let failure: Failure | undefined;
  try {
    await runSteps(st, top, deps.plan.steps);
  } catch (err) {
    failure = failureOf(st, err);
  } finally {
    for (const sig of top.pins) st.store.unpin(sig);
    st.store.letGo();
  }
  const interrupted =
    failure !== undefined && (st.signal.aborted || errorType(failure.error) === 'AbortError');
  failure = await finishRun(st, failure, interrupted);
  // Output nodes' entries are kept only now: their files were finished by the onRunEnd callbacks.
  st.store.commit(!failure);
  return report(st, failure, interrupted);
}
