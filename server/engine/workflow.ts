// Workflow JSON in, API prompt out: API format is shape-checked, canvas format is converted by the
// shared converter (canvas.ts) with the widgets read from the node declarations.
import { z } from 'zod';
import {
  canvasToApi,
  formatIssues,
  isCanvasWorkflow,
  WorkflowFormatError,
  type NodeWidgets,
} from '../protocol/canvas.ts';
import type { AnyNodeDef, WidgetSpec } from './define.ts';
import { inputEntries } from './graph.ts';
import type { ApiPrompt } from './types.ts';

export { isCanvasWorkflow, WorkflowFormatError };

const apiNodeSchema = z
  .object({
    class_type: z.string({ error: 'class_type must be a string' }),
    inputs: z.record(z.string(), z.unknown()).default({}),
    _meta: z.object({ title: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();
const apiPromptSchema = z.record(z.string(), apiNodeSchema);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A node type's widgets for the canvas converter: its non-link inputs in declaration order. */
export function widgetsFromDef(def: AnyNodeDef): NodeWidgets {
  const widgets = inputEntries(def)
    .filter((e) => e.spec.kind !== 'LINK')
    .map(({ name, spec }) => {
      const w = spec as WidgetSpec;
      return {
        name,
        kind: w.kind,
        ...(w.default !== undefined ? { default: w.default } : {}),
        ...(w.kind === 'INT' && w.controlAfterGenerate ? { controlAfterGenerate: true } : {}),
      };
    });
  return { widgets, displayName: def.displayName };
}

/**
 * Accepts API format (`{"<id>": {class_type, inputs}}`) or litegraph canvas format and returns an
 * API prompt. Conversion needs the node types to map widget values onto input names.
 */
export function toApiPrompt(json: unknown, nodes: readonly AnyNodeDef[]): ApiPrompt {
  if (!isObject(json)) throw new WorkflowFormatError('A workflow must be a JSON object');
  if (isCanvasWorkflow(json)) {
    const byName = new Map(nodes.map((d) => [d.name, d]));
    return canvasToApi(json, (classType) => {
      const def = byName.get(classType);
      return def && widgetsFromDef(def);
    });
  }
  // The body of POST /prompt ({prompt: {...}}) is accepted too.
  const body = isObject(json.prompt) && !('class_type' in json.prompt) ? json.prompt : json;
  if (Object.keys(body).length === 0) throw new WorkflowFormatError('The workflow has no nodes');
  const parsed = apiPromptSchema.safeParse(body);
  if (!parsed.success) throw new WorkflowFormatError(formatIssues(parsed.error, 'API-format workflow'));
  return parsed.data as ApiPrompt;
}
