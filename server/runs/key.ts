// A workflow's identity for resume: the prompt's content hash with what cannot change a clip left
// out (output nodes' constant inputs — fps, format, file name —, loop lengths, titles), and the list
// of differences between two prompts for a refused resume.
import { createHash } from 'node:crypto';
import { stableJson } from '../engine/cache.ts';
import { isLinkValue } from '../engine/graph.ts';
import type { ApiPrompt } from '../engine/types.ts';

/** What the key needs to know of a node type. */
export interface NodeKinds {
  isOutput(classType: string): boolean;
  isLoopStart(classType: string): boolean;
}

/** Whether an input is output-only: a constant of an output node, or a loop's length. */
function outputOnly(kinds: NodeKinds, classType: string, name: string, value: unknown): boolean {
  if (kinds.isLoopStart(classType)) return name === 'iterations' && !isLinkValue(value);
  return kinds.isOutput(classType) && !isLinkValue(value);
}

/** The prompt as the key sees it: classes and inputs that can change a clip. */
export function keyedPrompt(prompt: ApiPrompt, kinds: NodeKinds): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [id, node] of Object.entries(prompt)) {
    const inputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(node.inputs)) {
      if (!outputOnly(kinds, node.class_type, name, value)) inputs[name] = value;
    }
    out[id] = { class_type: node.class_type, inputs };
  }
  return out;
}

/** The checkpoint key of a prompt: 24 hex digits of a SHA-256 over keyedPrompt. */
export function workflowKey(prompt: ApiPrompt, kinds: NodeKinds): string {
  return createHash('sha256')
    .update(stableJson(keyedPrompt(prompt, kinds)))
    .digest('hex')
    .slice(0, 24);
}

function show(v: unknown): string {
  if (isLinkValue(v)) return `link from node ${v[0]}`;
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * What differs between the prompt a checkpoint was made with and this one, leaving out output-only
 * inputs: "node 6 (DDIMSampler) input 'cfg': 10 → 7.5". Empty when only output-only inputs differ.
 */
export function promptChanges(before: ApiPrompt, after: ApiPrompt, kinds: NodeKinds): string[] {
  const a = keyedPrompt(before, kinds) as Record<
    string,
    { class_type: string; inputs: Record<string, unknown> }
  >;
  const b = keyedPrompt(after, kinds) as Record<
    string,
    { class_type: string; inputs: Record<string, unknown> }
  >;
  const out: string[] = [];
  const ids = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(
    (x, y) => Number(x) - Number(y) || (x < y ? -1 : x > y ? 1 : 0),
  );
  for (const id of ids) {
    const x = a[id];
    const y = b[id];
    if (!x) {
      out.push(`node ${id} (${y.class_type}) was added`);
      continue;
    }
    if (!y) {
      out.push(`node ${id} (${x.class_type}) was removed`);
      continue;
    }
    if (x.class_type !== y.class_type) {
      out.push(`node ${id} is now ${y.class_type}, was ${x.class_type}`);
      continue;
    }
    for (const name of [...new Set([...Object.keys(x.inputs), ...Object.keys(y.inputs)])].sort()) {
      if (stableJson(x.inputs[name]) === stableJson(y.inputs[name])) continue;
      const was = name in x.inputs ? show(x.inputs[name]) : '(unset)';
      const now = name in y.inputs ? show(y.inputs[name]) : '(unset)';
      out.push(`node ${id} (${y.class_type}) input '${name}': ${was} → ${now}`);
    }
  }
  return out;
}
