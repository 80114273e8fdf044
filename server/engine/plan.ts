// What runs and in which order: the nodes the output nodes need, each once, dependencies first,
// with every LoopStart/LoopEnd pair collapsed into one loop step whose body runs per iteration.
import type { AnyNodeDef } from './define.ts';
import type { Graph } from './graph.ts';
import type { Registry } from './registry.ts';

export type Step = { kind: 'node'; id: string } | { kind: 'loop'; start: string; end: string; body: Step[] };

export interface LoopInfo {
  start: string;
  end: string;
  /** Nodes that transitively depend on the LoopStart (not through its LoopEnd), plus the LoopEnd. */
  body: Set<string>;
}

export interface Plan {
  steps: Step[];
  needed: Set<string>;
  /** LoopStart id → its loop. */
  loops: Map<string, LoopInfo>;
  /** Node id → the LoopStart of the innermost loop whose body holds it. */
  parentLoop: Map<string, string>;
}

export interface PlanIssue {
  nodeId: string;
  type: 'dependency_cycle' | 'custom_validation_failed';
  message: string;
  input?: string;
}

/** Needed nodes: upstream closure of the outputs; a needed LoopStart pulls in its LoopEnd too. */
export function neededNodes(graph: Graph, registry: Registry, outputs: readonly string[]): Set<string> {
  const needed = new Set<string>();
  const stack = [...outputs];
  const visit = (): void => {
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (needed.has(id) || !graph.has(id)) continue;
      needed.add(id);
      for (const [src] of Object.values(graph.get(id)!.links)) stack.push(src);
    }
  };
  visit();
  for (;;) {
    for (const node of graph.values()) {
      if (needed.has(node.id) || registry.get(node.classType)?.role !== 'loop-end') continue;
      const flow = node.links.flow;
      if (flow && needed.has(flow[0])) stack.push(node.id);
    }
    if (stack.length === 0) return needed;
    visit();
  }
}

function dependentsOf(graph: Graph, needed: Set<string>): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const id of needed) deps.set(id, []);
  for (const id of needed) {
    for (const [src] of Object.values(graph.get(id)!.links)) {
      if (needed.has(src) && !deps.get(src)!.includes(id)) deps.get(src)!.push(id);
    }
  }
  return deps;
}

/** Numeric ids in numeric order, others after: a stable order for equal-rank nodes. */
function compareIds(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  if (Number.isFinite(na)) return -1;
  if (Number.isFinite(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function findCycles(graph: Graph, needed: Set<string>): PlanIssue[] {
  const issues: PlanIssue[] = [];
  const state = new Map<string, 1 | 2>();
  const reported = new Set<string>();
  const path: string[] = [];
  const visit = (id: string): void => {
    state.set(id, 1);
    path.push(id);
    for (const [src] of Object.values(graph.get(id)!.links)) {
      if (!needed.has(src)) continue;
      const s = state.get(src);
      if (s === 1) {
        const cycle = path.slice(path.indexOf(src));
        for (const n of cycle) {
          if (reported.has(n)) continue;
          reported.add(n);
          issues.push({
            nodeId: n,
            type: 'dependency_cycle',
            message: `Dependency cycle: ${[...cycle, src].join(' → ')} (only a LoopStart/LoopEnd pair may repeat work)`,
          });
        }
      } else if (s === undefined) visit(src);
    }
    path.pop();
    state.set(id, 2);
  };
  for (const id of [...needed].sort(compareIds)) if (!state.has(id)) visit(id);
  return issues;
}

function forwardClosure(from: string, dependents: Map<string, string[]>, stopAt?: string): Set<string> {
  const seen = new Set<string>();
  const stack = [...(dependents.get(from) ?? [])];
  while (stack.length > 0) {
    const id = stack.pop() as string;
    if (seen.has(id)) continue;
    seen.add(id);
    if (id !== stopAt) stack.push(...(dependents.get(id) ?? []));
  }
  return seen;
}

type Role = (id: string) => AnyNodeDef['role'];

/** Pairs each needed LoopEnd with the LoopStart its flow comes from; every LoopStart needs one. */
function pairLoops(
  graph: Graph,
  needed: Set<string>,
  role: Role,
): { loops: Map<string, LoopInfo>; issues: PlanIssue[] } {
  const issues: PlanIssue[] = [];
  const loops = new Map<string, LoopInfo>();
  for (const id of [...needed].sort(compareIds)) {
    if (role(id) !== 'loop-end') continue;
    const flow = graph.get(id)!.links.flow;
    if (!flow || !graph.has(flow[0])) continue; // reported by input validation
    if (!needed.has(flow[0]) || role(flow[0]) !== 'loop-start' || flow[1] !== 0) {
      issues.push({
        nodeId: id,
        type: 'custom_validation_failed',
        input: 'flow',
        message: `LoopEnd ${id}: input 'flow' must come from a LoopStart's 'flow' output (output 0), not node ${flow[0]} output ${flow[1]}`,
      });
      continue;
    }
    const existing = loops.get(flow[0]);
    if (existing) {
      issues.push({
        nodeId: id,
        type: 'custom_validation_failed',
        input: 'flow',
        message: `LoopStart ${flow[0]} already ends at LoopEnd ${existing.end}; one LoopStart has exactly one LoopEnd`,
      });
      continue;
    }
    loops.set(flow[0], { start: flow[0], end: id, body: new Set() });
  }
  for (const id of needed) {
    if (role(id) === 'loop-start' && !loops.has(id)) {
      issues.push({
        nodeId: id,
        type: 'custom_validation_failed',
        message: `LoopStart ${id} has no LoopEnd: connect its 'flow' output to a LoopEnd's 'flow' input`,
      });
    }
  }
  return { loops, issues };
}

/** Fills in each loop's body; a node may not use both a loop's body and its result. */
function fillBodies(loops: Map<string, LoopInfo>, dependents: Map<string, string[]>): PlanIssue[] {
  const issues: PlanIssue[] = [];
  for (const loop of loops.values()) {
    loop.body = forwardClosure(loop.start, dependents, loop.end);
    if (!loop.body.has(loop.end)) loop.body.add(loop.end);
    const after = forwardClosure(loop.end, dependents);
    for (const id of loop.body) {
      if (id === loop.end || !after.has(id)) continue;
      issues.push({
        nodeId: id,
        type: 'custom_validation_failed',
        message: `Node ${id} uses both the loop body of LoopStart ${loop.start} and the loop's result from LoopEnd ${loop.end}; a node runs either inside the loop or after it`,
      });
    }
  }
  return issues;
}

/** Node id → the loops whose bodies hold it. */
function holdingLoops(loops: Map<string, LoopInfo>): Map<string, LoopInfo[]> {
  const holding = new Map<string, LoopInfo[]>();
  for (const loop of loops.values()) {
    for (const id of loop.body) holding.set(id, [...(holding.get(id) ?? []), loop]);
  }
  return holding;
}

/** Loops must nest: the loops holding a node form a chain, and a LoopEnd sits at its LoopStart's level. */
function nestingIssues(loops: Map<string, LoopInfo>, holding: Map<string, LoopInfo[]>): PlanIssue[] {
  const issues: PlanIssue[] = [];
  const nestedIn = (inner: LoopInfo, outer: LoopInfo) => outer.body.has(inner.start);
  for (const [id, ls] of holding) {
    for (let i = 0; i < ls.length; i++) {
      for (let j = i + 1; j < ls.length; j++) {
        if (!nestedIn(ls[i], ls[j]) && !nestedIn(ls[j], ls[i])) {
          issues.push({
            nodeId: id,
            type: 'custom_validation_failed',
            message: `Node ${id} is in the bodies of LoopStart ${ls[i].start} and LoopStart ${ls[j].start}, but neither loop is inside the other`,
          });
        }
      }
    }
  }
  for (const loop of loops.values()) {
    const atEnd = (holding.get(loop.end) ?? []).filter((l) => l !== loop).map((l) => l.start);
    const atStart = (holding.get(loop.start) ?? []).map((l) => l.start);
    if (atEnd.length !== atStart.length || atEnd.some((s) => !atStart.includes(s))) {
      issues.push({
        nodeId: loop.end,
        type: 'custom_validation_failed',
        message: `LoopEnd ${loop.end} depends on another loop's body that its LoopStart ${loop.start} is not inside; end that inner loop first`,
      });
    }
  }
  return issues;
}

/** Node id → the LoopStart of the innermost loop holding it (the one nested deepest). */
function innermostLoops(holding: Map<string, LoopInfo[]>): Map<string, string> {
  const depth = (start: string) => (holding.get(start) ?? []).length;
  const parentLoop = new Map<string, string>();
  for (const [id, ls] of holding) {
    let inner = ls[0];
    for (const l of ls) if (depth(l.start) > depth(inner.start)) inner = l;
    parentLoop.set(id, inner.start);
  }
  return parentLoop;
}

/**
 * The steps of one level (the top, or one loop's body) in dependency order, ties by id: a node
 * is a step, and a loop nested right in this level is one step, ordered recursively.
 */
function orderLevel(graph: Graph, structure: Omit<Plan, 'steps'>, level: string | undefined): Step[] {
  const { needed, loops, parentLoop } = structure;
  const inScope = (id: string) => level === undefined || loops.get(level)!.body.has(id);
  // The unit a node belongs to at this level: itself, or the loop step that contains it.
  const unitOf = (id: string): string => {
    const p = parentLoop.get(id);
    if (loops.has(id) && p === level) return `loop:${id}`;
    if (p === level) return id;
    return unitOf(p as string);
  };
  const members = [...needed].filter((id) => inScope(id));
  const units = new Set(members.map(unitOf));
  const edges = new Map<string, Set<string>>();
  const indegree = new Map<string, number>();
  for (const u of units) {
    edges.set(u, new Set());
    indegree.set(u, 0);
  }
  for (const id of members) {
    const to = unitOf(id);
    for (const [src] of Object.values(graph.get(id)!.links)) {
      if (!needed.has(src) || !inScope(src)) continue;
      const from = unitOf(src);
      if (from === to || edges.get(from)!.has(to)) continue;
      edges.get(from)!.add(to);
      indegree.set(to, indegree.get(to)! + 1);
    }
  }
  const unitKey = (u: string) => (u.startsWith('loop:') ? u.slice(5) : u);
  const ready = [...units].filter((u) => indegree.get(u) === 0);
  const steps: Step[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => compareIds(unitKey(a), unitKey(b)));
    const u = ready.shift() as string;
    if (u.startsWith('loop:')) {
      const loop = loops.get(u.slice(5))!;
      steps.push({
        kind: 'loop',
        start: loop.start,
        end: loop.end,
        body: orderLevel(graph, structure, loop.start),
      });
    } else steps.push({ kind: 'node', id: u });
    for (const v of edges.get(u)!) {
      indegree.set(v, indegree.get(v)! - 1);
      if (indegree.get(v) === 0) ready.push(v);
    }
  }
  return steps;
}

/** The output nodes of a graph (the nodes a run is for). */
export function outputNodes(graph: Graph, registry: Registry): string[] {
  return [...graph.values()].filter((n) => registry.get(n.classType)?.outputNode === true).map((n) => n.id);
}

/** Plans the run, or says why the graph's structure cannot run (cycles, misused loops). */
export function planPrompt(
  graph: Graph,
  registry: Registry,
  outputs: readonly string[],
): { plan: Plan; issues: [] } | { plan?: undefined; issues: PlanIssue[] } {
  const needed = neededNodes(graph, registry, outputs);
  const cycles = findCycles(graph, needed);
  if (cycles.length > 0) return { issues: cycles };
  const role: Role = (id) => registry.get(graph.get(id)!.classType)?.role;
  const { loops, issues } = pairLoops(graph, needed, role);
  if (issues.length > 0) return { issues };
  const bodyIssues = fillBodies(loops, dependentsOf(graph, needed));
  if (bodyIssues.length > 0) return { issues: bodyIssues };
  const holding = holdingLoops(loops);
  const nesting = nestingIssues(loops, holding);
  if (nesting.length > 0) return { issues: nesting };
  const structure = { needed, loops, parentLoop: innermostLoops(holding) };
  return { plan: { steps: orderLevel(graph, structure, undefined), ...structure }, issues: [] };
}
