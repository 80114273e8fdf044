// /object_info → litegraph node types. Every input becomes a socket typed by its socket type (so
// litegraph refuses incompatible links; '*' matches anything), widget kinds also get a widget
// (the socket sits on the widget and takes over when linked), outputs become output sockets.
// A node type the server adds appears here with no client change.
import { LGraphNode, LiteGraph, RenderShape } from '@comfyorg/litegraph';
import type { LGraph } from '@comfyorg/litegraph';
import {
  SEED_CONTROL_VALUES,
  SEED_CONTROL_WIDGET,
  defaultValue,
  hasSeedControl,
  nextSeed,
  normalizeNumber,
  orderedInputs,
  type InputEntry,
} from './node-info.ts';
import type { NodeInfo, ObjectInfo } from './types.ts';

type Widget = NonNullable<LGraphNode['widgets']>[number];

export interface NodeHooks {
  /** Draws run state (progress, errors, previews) on top of a node. */
  drawForeground(node: LGraphNode, ctx: CanvasRenderingContext2D): void;
}

/** The /object_info entry a node was built from. */
const infoByType = new Map<string, NodeInfo>();

export function nodeInfoOf(node: LGraphNode): NodeInfo | undefined {
  return infoByType.get(node.type);
}

/** Decimal places shown for a FLOAT widget, from its rounding or step. */
function precisionOf(entry: InputEntry): number {
  const unit = typeof entry.options.round === 'number' ? entry.options.round : (entry.options.step ?? 0.01);
  if (!(unit > 0) || unit >= 1) return entry.widget === 'INT' ? 0 : 2;
  return Math.min(6, Math.ceil(-Math.log10(unit) - 1e-9));
}

/** Widgets keep the value they are given; litegraph warns about widgets without a callback. */
const keep = (): void => {};

function addWidgetFor(node: LGraphNode, entry: InputEntry): Widget {
  const value = defaultValue(entry);
  let widget: Widget;
  switch (entry.widget) {
    case 'INT':
    case 'FLOAT': {
      const step = entry.options.step ?? (entry.widget === 'INT' ? 1 : 0.01);
      widget = node.addWidget(
        'number',
        entry.name,
        value as number,
        (v: number) => {
          // Typed values and drags land on the grid and inside the range the server validates.
          widget.value = normalizeNumber(entry, Number(v));
        },
        { min: entry.options.min, max: entry.options.max, step2: step, precision: precisionOf(entry) },
      );
      break;
    }
    case 'BOOLEAN':
      widget = node.addWidget('toggle', entry.name, value as boolean, keep, { on: 'true', off: 'false' });
      break;
    case 'COMBO':
      widget = node.addWidget('combo', entry.name, value as string, keep, { values: entry.values });
      break;
    default:
      widget = node.addWidget('text', entry.name, value as string, keep, {
        multiline: entry.options.multiline,
      });
  }
  if (typeof entry.options.tooltip === 'string') widget.tooltip = entry.options.tooltip;
  if (hasSeedControl(entry)) {
    const control = node.addWidget('combo', SEED_CONTROL_WIDGET, 'fixed', keep, {
      values: [...SEED_CONTROL_VALUES],
    });
    control.tooltip = 'What happens to the seed after each queue';
  }
  return widget;
}

/**
 * After litegraph's configure, which merges the saved inputs over the constructed ones by index:
 * keeps the saved inputs (link indices refer to them) and appends the ones the file lacks (e.g.
 * sockets of widgets the file did not convert), so no input is listed twice.
 */
function reconcileInputs(node: LGraphNode, saved: unknown[] | undefined, entries: InputEntry[]): void {
  if (saved !== undefined) node.inputs.length = Math.min(node.inputs.length, saved.length);
  for (const entry of entries) {
    const present = node.inputs.some(
      (s: LGraphNode['inputs'][number]) => s.name === entry.name || s.widget?.name === entry.name,
    );
    if (present) continue;
    node.addInput(entry.name, entry.type, entry.widget ? { widget: { name: entry.name } } : {});
  }
}

function buildNode(node: LGraphNode, info: NodeInfo): void {
  const entries = orderedInputs(info);
  for (const entry of entries) {
    if (entry.widget === undefined) {
      // Optional sockets are hollow, as in ComfyUI.
      node.addInput(entry.name, entry.type, entry.required ? {} : { shape: RenderShape.HollowCircle });
    }
  }
  for (const entry of entries) {
    if (entry.widget === undefined) continue;
    addWidgetFor(node, entry);
    node.addInput(entry.name, entry.type, { widget: { name: entry.name } });
  }
  info.output.forEach((type, i) => node.addOutput(info.output_name?.[i] ?? type, type));
  const [w, h] = node.computeSize();
  node.size = [Math.max(w, 260), h];
}

export function registerNodeTypes(objectInfo: ObjectInfo, hooks: NodeHooks): void {
  for (const [type, info] of Object.entries(objectInfo)) {
    infoByType.set(type, info);
    const title = info.display_name ?? info.name ?? type;
    const entries = orderedInputs(info);
    // Hooks and statics are assigned rather than declared as overrides: under the repository's
    // NodeNext resolution litegraph's types degrade to `any` (see client/tsconfig.json).
    class ServerNode extends LGraphNode {
      constructor(nodeTitle?: string) {
        super(nodeTitle ?? title, type);
        const node = this as LGraphNode;
        node.serialize_widgets = true;
        buildNode(node, info);
      }
    }
    Object.assign(ServerNode, { title });
    Object.assign(ServerNode.prototype, {
      onConfigure(this: LGraphNode, saved: { inputs?: unknown[] }): void {
        reconcileInputs(this, saved.inputs, entries);
        // A saved size may predate widgets the node has now.
        const [w, h] = this.computeSize();
        if (this.size[0] < w || this.size[1] < h)
          this.setSize([Math.max(this.size[0], w), Math.max(this.size[1], h)]);
      },
      onDrawForeground(this: LGraphNode, ctx: CanvasRenderingContext2D): void {
        hooks.drawForeground(this, ctx);
      },
    });
    LiteGraph.registerNodeType(type, ServerNode);
    // registerNodeType derives a category from the type path; ours come from the server.
    (ServerNode as unknown as { category: string }).category = info.category ?? 'other';
    (ServerNode as unknown as { description?: string }).description = info.description;
  }
}

/** After a queue: each seed widget moves per its control value (fixed, increment, ...). */
export function applySeedControls(graph: LGraph, random: () => number = Math.random): void {
  for (const node of graph.nodes) {
    const info = nodeInfoOf(node);
    const widgets = node.widgets ?? [];
    if (info === undefined) continue;
    for (const entry of orderedInputs(info)) {
      if (!hasSeedControl(entry)) continue;
      const i = widgets.findIndex((w: Widget) => w.name === entry.name);
      const seed = widgets[i];
      const control = widgets[i + 1];
      if (seed === undefined || control?.name !== SEED_CONTROL_WIDGET) continue;
      if (node.getSlotFromWidget(seed)?.link != null) continue;
      seed.value = nextSeed(entry, Number(seed.value), String(control.value), random);
    }
  }
}
