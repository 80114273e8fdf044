// What a run shows: UI outputs merged per node, and values summarized for messages and error reports.
import type { InputSpec, UiOutput } from './define.ts';

/** JSON of the items already in each merged UI list, so long loops merge in linear time. */
const mergedItems = new WeakMap<unknown[], Set<string>>();

/** Adds a node's UI output to the run's outputs: lists concatenated, repeated items once. */
export function mergeUi(into: Record<string, UiOutput>, nodeId: string, ui: UiOutput): void {
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

/** A value in one short line, for messages. */
export function showValue(v: unknown): string {
  try {
    const s = JSON.stringify(summarizeValue(v));
    if (s === undefined) return String(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/** The range a widget allows, for messages: " (allowed: 1 to 1024, an integer)". */
export function allowed(spec: InputSpec): string {
  if (spec.kind === 'INT') return ` (allowed: an integer from ${spec.min} to ${spec.max})`;
  if (spec.kind === 'FLOAT') return ` (allowed: ${spec.min} to ${spec.max})`;
  return '';
}

export function errorType(err: unknown): string {
  if (err instanceof Error) return err.name || err.constructor.name;
  return typeof err;
}

export function traceback(err: unknown): string[] {
  if (!(err instanceof Error) || !err.stack) return [];
  return err.stack
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
