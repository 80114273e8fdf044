// What can be known of the values a node will receive, before anything runs: constants computed
// through pure nodes (IntMath on literals), stand-ins from infer() (a tensor's shape), carried
// through loops where an iteration cannot change them. Validation checks every input range, every
// node's validate() and every cost() against the host's limits on these values; what stays
// unknown is checked again right before the node runs (costProblems, from run-node.ts).
import type { AnyNodeDef, Cost, InputSpec, NodeEnv, ResourceLimits, RunContext } from './define.ts';
import { inputEntries, type Graph, type GraphNode } from './graph.ts';
import type { Plan, Step } from './plan.ts';
import type { Registry } from './registry.ts';
import type { LinkRef } from './types.ts';

/** What validation knows of one output: a constant, a stand-in with the fields known, or nothing. */
export type Known = { constant: true; value: unknown } | { constant: false; standIn: object } | undefined;

/** Checks a widget value computed before the run (reports it like a literal); ok and the coerced value. */
export type CheckWidget = (
  node: GraphNode,
  name: string,
  spec: InputSpec,
  value: unknown,
  from: LinkRef,
  report: boolean,
) => { ok: boolean; value: unknown };

export type AddIssue = (
  nodeId: string,
  issue: { input?: string; message: string; received?: unknown },
) => void;

export interface ValueCheckOptions {
  graph: Graph;
  plan: Plan;
  registry: Registry;
  env: NodeEnv;
  limits: ResourceLimits;
  /** Literal inputs that passed their checks, by node id. */
  literals: Map<string, Record<string, unknown>>;
  checkWidget: CheckWidget;
  add: AddIssue;
}

export interface ValueCheckResult {
  /**
   * Nodes with a widget input whose linked value is unknown before the run: their validate() is
   * called again, on the values they receive, right before they run.
   */
  recheck: Set<string>;
}

/** Nodes in the order they run: a loop's LoopStart, then its body (its LoopEnd included). */
function runOrder(steps: readonly Step[], out: string[] = []): string[] {
  for (const step of steps) {
    if (step.kind === 'node') out.push(step.id);
    else {
      out.push(step.start);
      runOrder(step.body, out);
    }
  }
  return out;
}

const CARRIED = 4;
/** Rounds spent on what loops carry unchanged before giving up on it (see checkValues). */
const MAX_ROUNDS = 6;

function sameKnown(a: Known, b: Known): boolean {
  if (a === undefined || b === undefined) return a === b;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/** A value for a message, without serializing a big one (a tensor shows its shape). */
function show(v: unknown): string {
  if (v !== null && typeof v === 'object') {
    const shape = (v as { shape?: unknown }).shape;
    if (Array.isArray(shape)) return `shape [${shape.join(', ')}]`;
    return Array.isArray(v) ? `a list of ${v.length}` : 'an object';
  }
  return typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v) : String(v);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Product of the iteration counts of the loops around a node; undefined when one is unknown. */
function repeatsOf(plan: Plan, id: string, iterations: Map<string, number | undefined>): number | undefined {
  let n = 1;
  for (let loop = plan.parentLoop.get(id); loop !== undefined; loop = plan.parentLoop.get(loop)) {
    const k = iterations.get(loop);
    if (k === undefined) return undefined;
    n *= k;
  }
  return n;
}

/** A node's own validate() on what is known of its inputs; its issues go to `add`. */
export async function validateNode(
  def: AnyNodeDef,
  id: string,
  inputs: Record<string, unknown>,
  env: NodeEnv,
  add: AddIssue,
): Promise<void> {
  if (!def.validate) return;
  try {
    for (const issue of (await def.validate(inputs, env)) ?? []) {
      add(id, {
        input: issue.input,
        message: issue.input ? `Input '${issue.input}': ${issue.message}` : issue.message,
        received: issue.input ? inputs[issue.input] : undefined,
      });
    }
  } catch (err) {
    add(id, { message: `Validation of the node failed: ${messageOf(err)}` });
  }
}

/** A cost over its limit, with the message that names the input, the value and the allowed range. */
export interface CostProblem {
  cost: Cost;
  message: string;
}

/**
 * The costs of `def` on `inputs` that exceed `limits`. `repeats` is how often the node runs in the
 * prompt (the loops around it); the per-prompt totals are checked only when it is known.
 */
export function costProblems(
  def: AnyNodeDef,
  inputs: Record<string, unknown>,
  limits: ResourceLimits,
  repeats: number | undefined,
): CostProblem[] {
  if (!def.cost) return [];
  let costs: Cost[];
  try {
    costs = def.cost(inputs);
  } catch {
    // A cost that cannot be computed from what is known now is computed again before the run.
    return [];
  }
  const source = limits.source ?? 'configured';
  const problems: CostProblem[] = [];
  for (const c of costs) {
    const max = limits[c.resource];
    // NaN: not computable from what is known; Infinity is simply over any limit.
    if (max === undefined || Number.isNaN(c.amount)) continue;
    const unit = c.unit ? ` ${c.unit}` : '';
    const head = `Input '${c.input}' = ${show(inputs[c.input])}: `;
    if (c.resource === 'totalFrames') {
      if (repeats === undefined) continue;
      const total = c.amount * repeats;
      if (total <= max) continue;
      const per = c.per ?? 'run';
      problems.push({
        cost: c,
        message:
          `${head}${c.amount}${unit} per ${per} × ${repeats} ${per}s = ${total}${unit} exceed the ${source} limit ` +
          `of ${max}${unit} per prompt (allowed: at most ${max}).`,
      });
      continue;
    }
    if (c.amount <= max) continue;
    let message = `${head}${c.what} exceed the ${source} limit of ${max}${unit} (allowed: at most ${max}).`;
    if (c.resource === 'clipPixels') {
      // Decoded frames are float32 RGB: 12 bytes per pixel-frame.
      const gib = ((c.amount * 12) / 2 ** 30).toFixed(1);
      message =
        `${head}a clip of ${c.what} = ${c.amount} pixel-frames needs about ${gib} GiB as images; the ${source} ` +
        `limit is ${max} pixel-frames (allowed: at most ${max}). Use fewer frames, a smaller size or a smaller batch.`;
    }
    problems.push({ cost: c, message });
  }
  return problems;
}

/** The context a pure node runs in at validation: nothing to report, nothing to keep. */
function foldContext(node: GraphNode, def: AnyNodeDef, env: NodeEnv): RunContext {
  return {
    nodeId: node.id,
    classType: def.name,
    signal: new AbortController().signal,
    paths: env.paths,
    services: {},
    progress: () => undefined,
    preview: () => undefined,
    previews: false,
    emitUi: () => undefined,
    state: {},
    onRunEnd: () => undefined,
  };
}

/**
 * One pass over the plan: what every node receives and produces, given which of the loops'
 * carried values are assumed to stay as they start. With `report`, the node checks run and report.
 */
async function pass(
  o: ValueCheckOptions,
  order: readonly string[],
  invariant: Map<string, boolean[]>,
  report: boolean,
): Promise<{ initial: Map<string, Known[]>; received: Map<string, Known[]>; recheck: Set<string> }> {
  const { graph, plan, registry, env, limits } = o;
  const known = new Map<string, Known[]>();
  const iterations = new Map<string, number | undefined>();
  /** LoopStart id → the knowns of its initial values; LoopEnd id → what it receives to carry. */
  const initial = new Map<string, Known[]>();
  const received = new Map<string, Known[]>();
  /** Per node, the limits already reported upstream: one root cause is reported once. */
  const reported = new Map<string, Set<string>>();
  let totalReported = false;
  const recheck = new Set<string>();
  const knownOf = (link: LinkRef): Known => known.get(link[0])?.[link[1]];
  const carried = (node: GraphNode, prefix: string): Known[] =>
    Array.from({ length: CARRIED }, (_, k): Known => {
      const name = `${prefix}${k + 1}`;
      const link = node.links[name];
      if (link) return knownOf(link);
      // '*' sockets take constants too.
      return name in node.literals ? { constant: true, value: node.literals[name] } : undefined;
    });

  for (const id of order) {
    const node = graph.get(id)!;
    const def = registry.get(node.classType);
    if (!def) continue; // reported as missing_node_type
    if (def.role === 'loop-end') {
      // After the loop, its outputs are what the last iteration gave it.
      const got = carried(node, 'value');
      received.set(id, got);
      known.set(id, got);
      continue;
    }
    const literals = o.literals.get(id) ?? {};
    const inputs: Record<string, unknown> = {};
    let allConstant = true;
    const upstream = new Set<string>();
    for (const { name, spec } of inputEntries(def)) {
      const link = node.links[name];
      if (!link) {
        if (name in literals) inputs[name] = literals[name];
        continue;
      }
      for (const r of reported.get(link[0]) ?? []) upstream.add(r);
      const k = knownOf(link);
      if (k?.constant) {
        if (spec.kind === 'LINK') {
          inputs[name] = k.value;
          continue;
        }
        // A computed widget value is checked like a literal: range, integer, list.
        const checked = o.checkWidget(node, name, spec, k.value, link, report);
        if (checked.ok) inputs[name] = checked.value;
        else allConstant = false;
        continue;
      }
      allConstant = false;
      if (spec.kind !== 'LINK') recheck.add(id);
      else if (k !== undefined) inputs[name] = k.standIn;
    }
    reported.set(id, upstream);

    if (report) await validateNode(def, id, inputs, env, o.add);
    if (report) {
      for (const p of costProblems(def, inputs, limits, repeatsOf(plan, id, iterations))) {
        const r = p.cost.resource;
        if (upstream.has(r) || (r === 'totalFrames' && totalReported)) continue;
        upstream.add(r);
        if (r === 'totalFrames') totalReported = true;
        o.add(id, { input: p.cost.input, message: p.message, received: inputs[p.cost.input] });
      }
    }

    if (def.role === 'loop-start') {
      const n = inputs.iterations;
      iterations.set(id, typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined);
      const start = carried(node, 'initial_value');
      initial.set(id, start);
      const keep = invariant.get(id) ?? [];
      // flow and index change every iteration; value1..4 are known where no iteration changes them.
      known.set(id, [undefined, undefined, ...start.map((k, i) => (keep[i] ? k : undefined))]);
      continue;
    }
    let outputs: Known[] = [];
    if (def.pure && allConstant) {
      try {
        const result = await def.run(inputs, foldContext(node, def, env));
        const values = result?.outputs as unknown[] | undefined;
        if (Array.isArray(values)) outputs = values.map((value) => ({ constant: true, value }));
      } catch (err) {
        if (report)
          o.add(id, { message: `Computing this node's value before the run failed: ${messageOf(err)}` });
      }
    } else if (def.infer) {
      try {
        const standIns = (await def.infer(inputs, env)) ?? [];
        outputs = standIns.map((s): Known =>
          s !== null && typeof s === 'object' ? { constant: false, standIn: s } : undefined,
        );
      } catch {
        // Nothing is known of the outputs before the run; the run itself says what is wrong.
      }
    }
    known.set(id, outputs);
  }
  return { initial, received, recheck };
}

/**
 * Checks every node on the values known before the run, reporting through `add` and the widget
 * check. A loop's carried values are first assumed to stay as they start, and dropped to unknown
 * where an iteration changes them, until what is assumed holds.
 */
export async function checkValues(o: ValueCheckOptions): Promise<ValueCheckResult> {
  const order = runOrder(o.plan.steps);
  const invariant = new Map<string, boolean[]>();
  for (const start of o.plan.loops.keys()) invariant.set(start, Array<boolean>(CARRIED).fill(true));
  // Each round confirms every assumption or drops some. Chained loops could take a round per loop,
  // and a prompt comes from anyone: after a few rounds, what is still assumed is dropped (unknown
  // is always safe: it is checked right before the run).
  let settled = o.plan.loops.size === 0;
  for (let round = 0; round < MAX_ROUNDS && !settled; round++) {
    const { initial, received } = await pass(o, order, invariant, false);
    let changed = false;
    for (const loop of o.plan.loops.values()) {
      const keep = invariant.get(loop.start)!;
      const start = initial.get(loop.start) ?? [];
      const got = received.get(loop.end) ?? [];
      for (let k = 0; k < CARRIED; k++) {
        if (keep[k] && !sameKnown(start[k], got[k])) {
          keep[k] = false;
          changed = true;
        }
      }
    }
    settled = !changed;
  }
  if (!settled) for (const keep of invariant.values()) keep.fill(false);
  const { recheck } = await pass(o, order, invariant, true);
  return { recheck };
}
