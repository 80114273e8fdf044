// Node types by class name, and ComfyUI's /object_info rendered from the same declarations.
import type { InputConfig, NodeInfo } from '../protocol/index.ts';
import type { AnyNodeDef, InputSpec, NodeEnv } from './define.ts';
import { inputEntries } from './graph.ts';

export interface Registry {
  get(classType: string): AnyNodeDef | undefined;
  list(): readonly AnyNodeDef[];
  /** `{"<class>": {...}}` for every node type, COMBO options evaluated now. */
  objectInfo(env: NodeEnv): Record<string, ObjectInfoEntry>;
}

/** One node type's /object_info entry: the protocol's NodeInfo with every field the registry fills. */
export type ObjectInfoEntry = Required<NodeInfo> & {
  input: Required<NodeInfo['input']>;
  input_order: Required<NonNullable<NodeInfo['input_order']>>;
};

export function createRegistry(nodes: readonly AnyNodeDef[]): Registry {
  const byName = new Map<string, AnyNodeDef>();
  for (const def of nodes) {
    if (byName.has(def.name)) throw new Error(`Node type ${def.name} is declared twice`);
    byName.set(def.name, def);
  }
  return {
    get: (classType) => byName.get(classType),
    list: () => [...byName.values()],
    objectInfo(env) {
      const info: Record<string, ObjectInfoEntry> = {};
      for (const def of byName.values()) info[def.name] = nodeObjectInfo(def, env);
      return info;
    },
  };
}

/** COMBO options as offered now; a failing option function offers nothing rather than failing. */
export function comboOptions(spec: InputSpec & { kind: 'COMBO' }, env: NodeEnv): string[] {
  if (typeof spec.options !== 'function') return [...spec.options];
  try {
    return spec.options(env);
  } catch {
    return [];
  }
}

/** One input as ComfyUI writes it: `["INT", {default, min, max, step}]`, `[[options], {default}]`, `["LATENT"]`. */
export function inputConfig(spec: InputSpec, env: NodeEnv): InputConfig {
  const extra: Record<string, unknown> = {};
  if (spec.tooltip !== undefined) extra.tooltip = spec.tooltip;
  switch (spec.kind) {
    case 'INT':
      return [
        'INT',
        {
          default: spec.default,
          min: spec.min,
          max: spec.max,
          step: spec.step,
          ...(spec.controlAfterGenerate ? { control_after_generate: true } : {}),
          ...extra,
        },
      ];
    case 'FLOAT':
      return [
        'FLOAT',
        {
          default: spec.default,
          min: spec.min,
          max: spec.max,
          step: spec.step,
          ...(spec.round !== undefined ? { round: spec.round } : {}),
          ...extra,
        },
      ];
    case 'STRING':
      return ['STRING', { default: spec.default, multiline: spec.multiline, ...extra }];
    case 'BOOLEAN':
      return ['BOOLEAN', { default: spec.default, ...extra }];
    case 'COMBO': {
      const options = comboOptions(spec, env);
      const def = spec.default ?? options[0];
      let details: Record<string, unknown> | undefined;
      try {
        details = spec.details?.(env);
      } catch {
        details = undefined; // facts are extra: a failing lookup leaves them out
      }
      return [
        options,
        {
          ...(def !== undefined ? { default: def } : {}),
          ...extra,
          ...(details ? { option_details: details } : {}),
        },
      ];
    }
    case 'LINK':
      return Object.keys(extra).length > 0 ? [spec.type, extra] : [spec.type];
  }
}

export function nodeObjectInfo(def: AnyNodeDef, env: NodeEnv): ObjectInfoEntry {
  const required: Record<string, InputConfig> = {};
  const optional: Record<string, InputConfig> = {};
  const order = { required: [] as string[], optional: [] as string[] };
  for (const { name, spec, required: isRequired } of inputEntries(def)) {
    (isRequired ? required : optional)[name] = inputConfig(spec, env);
    (isRequired ? order.required : order.optional).push(name);
  }
  return {
    input: { required, optional, hidden: {} },
    input_order: order,
    output: def.outputs.map((o) => o.type),
    output_is_list: def.outputs.map(() => false),
    output_name: def.outputs.map((o) => o.name),
    name: def.name,
    display_name: def.displayName,
    description: def.description,
    category: def.category,
    output_node: def.outputNode === true,
    // ComfyUI's frontend expects this field; our nodes all live in one package.
    python_module: 'rdflow',
  };
}
