// Reading /object_info entries for the canvas nodes: which inputs are widgets, in which order, with
// which extra "control after generate" value, and the widget rules. Pure, so it can be tested
// without a browser. (The canvas → API conversion reads /object_info through the engine's
// widgetsFromObjectInfo, server/protocol/canvas.ts.)
import type { InputConfig, InputOptions, NodeInfo } from './types.ts';

export type WidgetKind = 'INT' | 'FLOAT' | 'STRING' | 'BOOLEAN' | 'COMBO';

/** ComfyUI's seed widget companion: what happens to the value after each queue. */
export const SEED_CONTROL_VALUES = ['fixed', 'increment', 'decrement', 'randomize'] as const;
export type SeedControl = (typeof SEED_CONTROL_VALUES)[number];
export const SEED_CONTROL_WIDGET = 'control_after_generate';

export interface InputEntry {
  name: string;
  /** Socket type (for a COMBO: 'COMBO'). */
  type: string;
  widget: WidgetKind | undefined;
  options: InputOptions;
  /** COMBO choices. */
  values: string[];
  required: boolean;
}

const WIDGET_TYPES = new Set<string>(['INT', 'FLOAT', 'STRING', 'BOOLEAN']);

export function readInput(name: string, config: InputConfig, required: boolean): InputEntry {
  const [type, options = {}] = config;
  if (Array.isArray(type)) {
    return { name, type: 'COMBO', widget: 'COMBO', options, values: type.map(String), required };
  }
  const widget = WIDGET_TYPES.has(type) ? (type as WidgetKind) : undefined;
  return { name, type, widget, options, values: [], required };
}

/** Inputs in ComfyUI's `input_order` (required, then optional), falling back to key order. */
export function orderedInputs(info: NodeInfo): InputEntry[] {
  const out: InputEntry[] = [];
  for (const group of ['required', 'optional'] as const) {
    const configs = info.input[group] ?? {};
    const order = info.input_order?.[group] ?? Object.keys(configs);
    for (const name of order) {
      const config = configs[name];
      if (config !== undefined) out.push(readInput(name, config, group === 'required'));
    }
  }
  return out;
}

/** True for an INT input that carries ComfyUI's seed control (one extra serialized widget value). */
export function hasSeedControl(entry: InputEntry): boolean {
  return entry.widget === 'INT' && entry.options.control_after_generate === true;
}

/** The value a new widget starts with. */
export function defaultValue(entry: InputEntry): string | number | boolean {
  const d = entry.options.default;
  switch (entry.widget) {
    case 'INT':
    case 'FLOAT':
      return typeof d === 'number' ? d : (entry.options.min ?? 0);
    case 'BOOLEAN':
      return typeof d === 'boolean' ? d : false;
    case 'COMBO':
      return typeof d === 'string' ? d : (entry.values[0] ?? '');
    default:
      return typeof d === 'string' ? d : '';
  }
}

/** A widget value after an edit: INTs are whole numbers on their step grid, all within range. */
export function normalizeNumber(entry: InputEntry, value: number): number {
  const { min, max, step } = entry.options;
  let v = Number.isFinite(value) ? value : defaultValue(entry);
  if (typeof v !== 'number') v = 0;
  if (entry.widget === 'INT') {
    const s = step !== undefined && step > 1 ? step : 1;
    const origin = min !== undefined && Number.isFinite(min) ? min : 0;
    v = origin + Math.round((v - origin) / s) * s;
  } else if (typeof entry.options.round === 'number' && entry.options.round > 0) {
    const r = entry.options.round;
    v = Number((Math.round(v / r) * r).toFixed(12));
  }
  if (min !== undefined && v < min) v = min;
  if (max !== undefined && v > max) v = max;
  return v;
}

/** The seed after a queue, per its control value. */
export function nextSeed(entry: InputEntry, value: number, control: string, random: () => number): number {
  const min = entry.options.min ?? 0;
  // Seeds beyond 2^53 cannot be represented exactly; randomize within the safe range.
  const max = Math.min(entry.options.max ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const step = entry.options.step !== undefined && entry.options.step > 0 ? entry.options.step : 1;
  switch (control) {
    case 'increment':
      return Math.min(max, value + step);
    case 'decrement':
      return Math.max(min, value - step);
    case 'randomize':
      return min + Math.floor(random() * (max - min + 1));
    default:
      return value;
  }
}
