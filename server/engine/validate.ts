// Validation before anything runs: every problem at once, in ComfyUI's node_errors shape.
import type { InputSpec, NodeEnv, ResourceLimits, WidgetSpec } from './define.ts';
import { buildGraph, inputEntries, type Graph, type GraphNode } from './graph.ts';
import { neededNodes, outputNodes, planPrompt, type Plan } from './plan.ts';
import { comboOptions, inputConfig, type Registry } from './registry.ts';
import { checkValues, validateNode, type AddIssue } from './values.ts';
import type {
  ApiPrompt,
  LinkRef,
  NodeErrorItem,
  NodeErrors,
  PromptError,
  ValidationResult,
} from './types.ts';

export interface Validated {
  result: ValidationResult;
  /** Set when valid: the graph with literals coerced to their widget types. */
  graph?: Graph;
  /** Set when valid: the planner's plan of that graph, which the value checks walked (run it as is). */
  plan?: Plan;
  /** Nodes whose validate() runs again right before they run (a widget value known only then). */
  recheck?: Set<string>;
}

function promptError(type: string, message: string, details = ''): PromptError {
  return { type, message, details, extra_info: {} };
}

/** Shape check of untrusted JSON: node id → {class_type: string, inputs: object}. */
function shapeErrors(prompt: unknown): string[] {
  if (prompt === null || typeof prompt !== 'object' || Array.isArray(prompt)) {
    return ['the prompt must be an object of node id → {class_type, inputs}'];
  }
  const problems: string[] = [];
  for (const [id, node] of Object.entries(prompt)) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) {
      problems.push(`node ${id} is not an object`);
      continue;
    }
    const n = node as Record<string, unknown>;
    if (typeof n.class_type !== 'string') problems.push(`node ${id} is missing the class_type property`);
    if (
      n.inputs !== undefined &&
      (n.inputs === null || typeof n.inputs !== 'object' || Array.isArray(n.inputs))
    ) {
      problems.push(`node ${id}: inputs must be an object`);
    }
  }
  return problems;
}

/** '*' matches anything; 'A,B' lists alternatives (ComfyUI's convention). */
export function socketTypesMatch(received: string, expected: string): boolean {
  if (received === '*' || expected === '*') return true;
  const r = received.split(',').map((s) => s.trim());
  return expected.split(',').some((e) => r.includes(e.trim()));
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  try {
    const s = JSON.stringify(v);
    if (s === undefined) return String(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/** What Python's int() takes from a string, less its oddities: decimal digits, a sign, spaces around. */
const INT_TEXT = /^\s*[+-]?\d+\s*$/;
/** What Python's float() takes, less inf/nan and `_` grouping: decimal with an optional exponent. */
const FLOAT_TEXT = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/**
 * Widget literals as ComfyUI coerces them (its validate_inputs calls int(val) / float(val)), where
 * that is sane: " 7" → 7 and "-3" → -3 for INT; "1e3" and "2.5" for FLOAT; "true" → true for
 * BOOLEAN. Not followed: int() truncating 7.5 to 7 (refused: not an integer), and strings int()
 * refuses anyway ("0x10", "1e3", "7.0"). A JSON number is a number whatever its spelling (1e3 and
 * 7.0 are the integers 1000 and 7). Anything else is left as it is, for the type check to refuse.
 */
function coerce(spec: WidgetSpec, v: unknown): unknown {
  if (typeof v === 'string' && (spec.kind === 'INT' || spec.kind === 'FLOAT')) {
    if (!(spec.kind === 'INT' ? INT_TEXT : FLOAT_TEXT).test(v)) return v;
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
  }
  if (spec.kind === 'BOOLEAN' && typeof v === 'string' && (v === 'true' || v === 'false'))
    return v === 'true';
  return v;
}

type AddError = (nodeId: string, item: Omit<NodeErrorItem, 'details'> & { details?: string }) => void;

function checkLiteral(
  node: GraphNode,
  name: string,
  spec: InputSpec,
  value: unknown,
  env: NodeEnv,
  add: AddError,
  /** Set when the value was computed before the run from this link (constant folding). */
  from?: LinkRef,
): { ok: boolean; value: unknown } {
  const base = {
    input_name: name,
    input_config: inputConfig(spec, env),
    received_value: value,
    ...(from ? { linked_node: from } : {}),
  };
  const via = from ? ` (computed from node ${from[0]})` : '';
  if (spec.kind === 'LINK') {
    // '*' sockets also take constants (e.g. a LoopStart initial value); typed sockets need a link.
    if (spec.type === '*') return { ok: true, value };
    add(node.id, {
      type: 'invalid_input_type',
      message: `Input '${name}' needs a link from a ${spec.type} output, got the constant ${show(value)}`,
      extra_info: base,
    });
    return { ok: false, value };
  }
  const v = coerce(spec, value);
  if (spec.kind === 'COMBO') {
    if (typeof v !== 'string') {
      add(node.id, {
        type: 'invalid_input_type',
        message: `Input '${name}' expects one of the listed strings, got ${show(v)}`,
        extra_info: base,
      });
      return { ok: false, value: v };
    }
    const options = comboOptions(spec, env);
    if (!options.includes(v) && !(spec.acceptOther?.(v) ?? false)) {
      const list = options.length > 12 ? [...options.slice(0, 12), '...'] : options;
      add(node.id, {
        type: 'value_not_in_list',
        message: `Value ${show(v)} of '${name}'${via} is not one of: ${list.length > 0 ? list.join(', ') : '(no options available)'}`,
        extra_info: base,
      });
      return { ok: false, value: v };
    }
    return { ok: true, value: v };
  }
  if (spec.kind === 'INT' || spec.kind === 'FLOAT') {
    if (typeof v !== 'number' || !Number.isFinite(v) || (spec.kind === 'INT' && !Number.isInteger(v))) {
      add(node.id, {
        type: 'invalid_input_type',
        message: `Input '${name}' expects ${spec.kind === 'INT' ? 'an integer (a JSON number, or a string of decimal digits)' : 'a number'}, got ${show(v)}${via}`,
        extra_info: base,
      });
      return { ok: false, value: v };
    }
    if (v < spec.min) {
      add(node.id, {
        type: 'value_smaller_than_min',
        message: `Value ${v} of '${name}'${via} is smaller than the minimum ${spec.min} (allowed: ${spec.min} to ${spec.max})`,
        extra_info: base,
      });
      return { ok: false, value: v };
    }
    if (v > spec.max) {
      add(node.id, {
        type: 'value_bigger_than_max',
        message: `Value ${v} of '${name}'${via} is bigger than the maximum ${spec.max} (allowed: ${spec.min} to ${spec.max})`,
        extra_info: base,
      });
      return { ok: false, value: v };
    }
  }
  const parsed = spec.schema.safeParse(v);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => i.message).join('; ');
    add(node.id, {
      type: 'invalid_input_type',
      message: `Input '${name}' (${spec.kind}) got ${show(v)}${via}: ${why}`,
      extra_info: base,
    });
    return { ok: false, value: v };
  }
  return { ok: true, value: parsed.data };
}

function checkLink(
  graph: Graph,
  registry: Registry,
  node: GraphNode,
  name: string,
  spec: InputSpec,
  link: LinkRef,
  env: NodeEnv,
  add: AddError,
): void {
  const extra = {
    input_name: name,
    input_config: inputConfig(spec, env),
    received_value: link,
    linked_node: link,
  };
  const [srcId, index] = link;
  const src = graph.get(srcId);
  if (!src) {
    add(node.id, {
      type: 'bad_linked_input',
      message: `Input '${name}' links to node ${srcId}, which does not exist`,
      extra_info: extra,
    });
    return;
  }
  const srcDef = registry.get(src.classType);
  if (!srcDef) return; // the unknown class is reported on that node
  if (index < 0 || index >= srcDef.outputs.length) {
    add(node.id, {
      type: 'bad_linked_input',
      message: `Input '${name}' links to output ${index} of node ${srcId} (${src.classType}), which has ${srcDef.outputs.length} output${srcDef.outputs.length === 1 ? '' : 's'}`,
      extra_info: extra,
    });
    return;
  }
  const received = srcDef.outputs[index].type;
  const expected = spec.kind === 'LINK' ? spec.type : spec.kind;
  if (!socketTypesMatch(received, expected)) {
    add(node.id, {
      type: 'return_type_mismatch',
      message: `Input '${name}' expects ${expected} but node ${srcId} (${src.classType}) output ${index} '${srcDef.outputs[index].name}' is ${received}`,
      extra_info: { ...extra, received_type: received } as NodeErrorItem['extra_info'],
    });
  }
}

/** Upstream closure of one node (itself included). */
function upstreamClosure(graph: Graph, id: string): Set<string> {
  const seen = new Set<string>();
  const stack = [id];
  while (stack.length > 0) {
    const n = stack.pop() as string;
    if (seen.has(n) || !graph.has(n)) continue;
    seen.add(n);
    for (const [src] of Object.values(graph.get(n)!.links)) stack.push(src);
  }
  return seen;
}

/** ComfyUI's details of a failed validation: the errors one per line (the first 20). */
function summary(count: number, nodeErrors: NodeErrors): string {
  const nodes = Object.keys(nodeErrors).length;
  const lines = Object.entries(nodeErrors).flatMap(([id, e]) =>
    e.errors.map((x) => `node ${id} (${e.class_type}): ${x.message}`),
  );
  const more = lines.length > 20 ? [`... and ${lines.length - 20} more`] : [];
  return [
    `${count} error${count === 1 ? '' : 's'} in ${nodes} node${nodes === 1 ? '' : 's'}:`,
    ...lines.slice(0, 20),
    ...more,
  ].join('\n');
}

/** Collects node errors in ComfyUI's shape, in the order they are found. */
function errorCollector(graph: Graph): { nodeErrors: NodeErrors; add: AddError } {
  const nodeErrors: NodeErrors = {};
  const add: AddError = (nodeId, item) => {
    const node = graph.get(nodeId)!;
    nodeErrors[nodeId] ??= { errors: [], dependent_outputs: [], class_type: node.classType };
    nodeErrors[nodeId].errors.push({ details: item.details ?? item.message, ...item } as NodeErrorItem);
  };
  return { nodeErrors, add };
}

function checkNodeTypes(graph: Graph, registry: Registry, add: AddError): void {
  for (const node of graph.values()) {
    if (!registry.get(node.classType)) {
      add(node.id, {
        type: 'missing_node_type',
        message: `Unknown node type '${node.classType}'`,
        extra_info: {},
      });
    }
  }
}

/** Checks one needed node's inputs; returns its literal inputs that passed, coerced. */
function checkInputs(
  graph: Graph,
  registry: Registry,
  node: GraphNode,
  env: NodeEnv,
  add: AddError,
): Record<string, unknown> {
  const def = registry.get(node.classType)!;
  const valid: Record<string, unknown> = {};
  for (const { name, spec, required } of inputEntries(def)) {
    const link = node.links[name];
    if (link) {
      checkLink(graph, registry, node, name, spec, link, env, add);
      continue;
    }
    if (!(name in node.literals) || node.literals[name] === undefined || node.literals[name] === null) {
      if (required) {
        add(node.id, {
          type: 'required_input_missing',
          message: `Required input '${name}' is missing`,
          extra_info: { input_name: name, input_config: inputConfig(spec, env) },
        });
      }
      continue;
    }
    if (node.malformedLinks.has(name)) {
      add(node.id, {
        type: 'bad_linked_input',
        message: `Input '${name}' is a list but not a link: a link is [node id, output index]; wrap a list constant as {"__value__": [...]}`,
        extra_info: {
          input_name: name,
          input_config: inputConfig(spec, env),
          received_value: node.literals[name],
        },
      });
      continue;
    }
    const checked = checkLiteral(node, name, spec, node.literals[name], env, add);
    if (checked.ok) valid[name] = checked.value;
  }
  return valid;
}

/** A copy of the graph whose nodes carry the coerced literals (the prompt's graph stays as parsed). */
function withLiterals(graph: Graph, literals: Map<string, Record<string, unknown>>): Graph {
  const out: Graph = new Map();
  for (const [id, node] of graph) {
    const coerced = literals.get(id);
    out.set(id, coerced ? { ...node, literals: { ...node.literals, ...coerced } } : node);
  }
  return out;
}

/** Reports a problem that node checks or limits found on a value known before the run. */
function issueReporter(graph: Graph, add: AddError): AddIssue {
  return (nodeId, issue) => {
    // A value that came through a link names the link too, as ComfyUI does for linked inputs.
    const link = issue.input ? graph.get(nodeId)?.links[issue.input] : undefined;
    add(nodeId, {
      type: 'custom_validation_failed',
      message: issue.message,
      extra_info: issue.input
        ? { input_name: issue.input, received_value: issue.received, ...(link ? { linked_node: link } : {}) }
        : {},
    });
  };
}

/**
 * Node checks and limits on every value known before the run (constants through pure nodes), in
 * the order the planner gives; structural problems (cycles, misused loops) are reported with them.
 * Without a run order, the node checks see the literals alone. Returns the nodes to check again.
 */
async function checkKnownValues(
  graph: Graph,
  registry: Registry,
  outputs: readonly string[],
  env: NodeEnv,
  limits: ResourceLimits,
  literals: Map<string, Record<string, unknown>>,
  add: AddError,
): Promise<{ recheck: Set<string>; plan?: Plan }> {
  const addIssue = issueReporter(graph, add);
  const planned = outputs.length > 0 ? planPrompt(graph, registry, outputs) : undefined;
  for (const issue of planned?.issues ?? []) {
    add(issue.nodeId, {
      type: issue.type,
      message: issue.message,
      extra_info: issue.input ? { input_name: issue.input } : {},
    });
  }
  if (planned?.plan) {
    const checked = await checkValues({
      graph,
      plan: planned.plan,
      registry,
      env,
      limits,
      literals,
      add: addIssue,
      checkWidget: (node, name, spec, value, from, report) =>
        checkLiteral(node, name, spec, value, env, report ? add : () => undefined, from),
    });
    return { recheck: checked.recheck, plan: planned.plan };
  }
  for (const [id, inputs] of literals) {
    const def = registry.get(graph.get(id)!.classType)!;
    await validateNode(def, id, inputs, env, addIssue);
  }
  return { recheck: new Set() };
}

/** What each error stops: the output nodes downstream of it. */
function markDependentOutputs(graph: Graph, outputs: readonly string[], nodeErrors: NodeErrors): void {
  if (Object.keys(nodeErrors).length === 0) return;
  for (const out of outputs) {
    for (const id of upstreamClosure(graph, out)) nodeErrors[id]?.dependent_outputs.push(out);
  }
}

/**
 * Checks a prompt and reports every problem at once; changes nothing. When valid, gives the graph
 * with literals coerced to their widget types, the planner's plan of it (the value checks walk it
 * in run order, so the run takes it as is rather than planning again) and the nodes whose
 * validate() runs again on the values they receive.
 */
export async function validatePrompt(
  prompt: ApiPrompt,
  registry: Registry,
  env: NodeEnv,
  limits: ResourceLimits = {},
): Promise<Validated> {
  const shape = shapeErrors(prompt);
  if (shape.length > 0) {
    return {
      result: {
        ok: false,
        error: promptError('invalid_prompt', `Invalid prompt: ${shape[0]}`, shape.join('; ')),
        nodeErrors: {},
      },
    };
  }
  const parsed = buildGraph(prompt);
  const { nodeErrors, add } = errorCollector(parsed);
  checkNodeTypes(parsed, registry, add);
  const outputs = outputNodes(parsed, registry);
  const needed = outputs.length > 0 ? neededNodes(parsed, registry, outputs) : new Set(parsed.keys());

  /** Node id → its literal inputs that passed their checks. */
  const literals = new Map<string, Record<string, unknown>>();
  for (const id of needed) {
    const node = parsed.get(id)!;
    if (registry.get(node.classType)) literals.set(id, checkInputs(parsed, registry, node, env, add));
  }
  const graph = withLiterals(parsed, literals);
  const { recheck, plan } = await checkKnownValues(graph, registry, outputs, env, limits, literals, add);
  markDependentOutputs(graph, outputs, nodeErrors);

  if (outputs.length === 0) {
    return {
      result: {
        ok: false,
        error: promptError(
          'prompt_no_outputs',
          'Prompt has no outputs',
          'The workflow needs at least one output node',
        ),
        nodeErrors,
      },
    };
  }
  if (Object.keys(nodeErrors).length > 0) {
    const count = Object.values(nodeErrors).reduce((n, e) => n + e.errors.length, 0);
    return {
      result: {
        ok: false,
        error: promptError(
          'prompt_outputs_failed_validation',
          'Prompt outputs failed validation',
          summary(count, nodeErrors),
        ),
        nodeErrors,
      },
    };
  }
  return { result: { ok: true, outputs }, graph, plan, recheck };
}
