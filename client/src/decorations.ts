// Run state drawn on the nodes themselves: the executing node outlined with its step progress and
// clip counter, cached nodes tagged, validation and execution errors outlined in red with their
// messages (and the offending input marked), the latest preview image under the widgets.
import { LiteGraph } from '@comfyorg/litegraph';
import type { LGraphNode } from '@comfyorg/litegraph';
import { MODE_BYPASSED, MODE_MUTED } from '../../server/protocol/canvas.ts';
import type { RunState } from './run-state.ts';
import type { NodeErrorItem } from './types.ts';

type Widget = NonNullable<LGraphNode['widgets']>[number];

const RUNNING = '#3ddc84';
const ERROR = '#ff4d4f';
const CACHED = '#8a8f98';

export interface MediaArea {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Where a node shows an image or video: under its widgets, in node-local coordinates. */
export function mediaArea(node: LGraphNode): MediaArea {
  const top = node.computeSize()[1] + 4;
  return { x: 8, y: top, w: node.size[0] - 16, h: Math.max(0, node.size[1] - top - 8) };
}

/**
 * Grows a node so its media area fits a picture of this aspect ratio (width / height), and moves
 * the nodes below it down by as much, so the picture covers none of them.
 */
export function ensureMediaSpace(node: LGraphNode, aspect: number): void {
  const area = mediaArea(node);
  const wanted = Math.min(360, Math.max(80, area.w / (aspect > 0 ? aspect : 1)));
  if (area.h >= wanted - 1) return;
  const oldBottom = node.pos[1] + node.size[1];
  const grow = area.y + wanted + 8 - node.size[1];
  node.setSize([node.size[0], node.size[1] + grow]);
  const left = node.pos[0];
  const right = node.pos[0] + node.size[0];
  for (const other of node.graph?.nodes ?? []) {
    if (other === node) continue;
    const overlapsColumn = other.pos[0] < right && other.pos[0] + other.size[0] > left;
    if (overlapsColumn && other.pos[1] >= oldBottom) other.pos = [other.pos[0], other.pos[1] + grow];
  }
}

function pill(ctx: CanvasRenderingContext2D, x: number, y: number, text: string, color: string): void {
  ctx.font = '12px sans-serif';
  const w = ctx.measureText(text).width + 14;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.roundRect(x, y, w, 18, 9);
  ctx.fill();
  ctx.fillStyle = '#101114';
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'left';
  ctx.fillText(text, x + 7, y + 9.5);
}

function outline(ctx: CanvasRenderingContext2D, node: LGraphNode, color: string, width: number): void {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.roundRect(-5, -th - 5, node.size[0] + 10, node.size[1] + th + 10, 10);
  ctx.stroke();
}

/** Word-wraps `text` to `width` pixels with the current font. */
function wrap(ctx: CanvasRenderingContext2D, text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    const next = line === '' ? word : `${line} ${word}`;
    if (ctx.measureText(next).width > width && line !== '') {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** Marks the row of a named input: its widget if it has one, else its socket. */
function markInput(ctx: CanvasRenderingContext2D, node: LGraphNode, name: string): void {
  const widget = node.widgets?.find((w: Widget) => w.name === name);
  ctx.strokeStyle = ERROR;
  ctx.lineWidth = 2;
  if (widget !== undefined && !(node.getSlotFromWidget(widget)?.link != null)) {
    const h = widget.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT;
    ctx.beginPath();
    ctx.roundRect(10, widget.y, node.size[0] - 20, h, 6);
    ctx.stroke();
    return;
  }
  const index = node.inputs.findIndex(
    (s: LGraphNode['inputs'][number]) => s.name === name || s.widget?.name === name,
  );
  if (index < 0) return;
  const [x, y] = node.getInputPos(index);
  ctx.beginPath();
  ctx.arc(x - node.pos[0], y - node.pos[1], 8, 0, Math.PI * 2);
  ctx.stroke();
}

function drawMessages(ctx: CanvasRenderingContext2D, node: LGraphNode, messages: string[]): void {
  ctx.font = '12px sans-serif';
  const width = Math.max(node.size[0], 220);
  const lines = messages.flatMap((m) => wrap(ctx, m, width - 16)).slice(0, 12);
  const y0 = node.size[1] + 10;
  const h = lines.length * 16 + 10;
  ctx.fillStyle = 'rgba(60, 10, 12, 0.92)';
  ctx.strokeStyle = ERROR;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.roundRect(0, y0, width, h, 6);
  ctx.fill();
  ctx.stroke();
  ctx.fillStyle = '#ffd7d7';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  lines.forEach((line, i) => ctx.fillText(line, 8, y0 + 6 + i * 16));
}

export interface DecorationSources {
  state: RunState;
  preview(nodeId: string): HTMLImageElement | undefined;
  /** Nodes whose media area shows a DOM video instead of a canvas image. */
  hasOverlay(nodeId: string): boolean;
}

export function drawNodeDecorations(
  node: LGraphNode,
  ctx: CanvasRenderingContext2D,
  src: DecorationSources,
): void {
  const id = String(node.id);
  const { state } = src;
  ctx.save();

  const image = src.preview(id);
  if (
    image !== undefined &&
    image.complete &&
    image.naturalWidth > 0 &&
    !src.hasOverlay(id) &&
    !node.collapsed
  ) {
    const area = mediaArea(node);
    const scale = Math.min(area.w / image.naturalWidth, area.h / image.naturalHeight);
    if (scale > 0) {
      const w = image.naturalWidth * scale;
      const h = image.naturalHeight * scale;
      ctx.drawImage(image, area.x + (area.w - w) / 2, area.y + (area.h - h) / 2, w, h);
    }
  }

  // Muted nodes are dimmed, bypassed ones tinted purple, as in ComfyUI.
  if (node.mode === MODE_MUTED || node.mode === MODE_BYPASSED) {
    const th = LiteGraph.NODE_TITLE_HEIGHT;
    ctx.fillStyle = node.mode === MODE_BYPASSED ? 'rgba(160, 60, 200, 0.35)' : 'rgba(10, 10, 12, 0.55)';
    ctx.beginPath();
    ctx.roundRect(0, -th, node.size[0], node.size[1] + th, 8);
    ctx.fill();
  }

  if (state.executing === id) {
    outline(ctx, node, RUNNING, 3);
    const p = state.progress;
    if (p !== undefined && p.node === id) {
      ctx.fillStyle = RUNNING;
      ctx.fillRect(0, -3, (node.size[0] * Math.min(p.value, p.max)) / Math.max(1, p.max), 3);
    }
  }
  const errors = state.errorsOf(id);
  if (errors.length > 0 || state.failure?.nodeId === id) {
    outline(ctx, node, ERROR, 3);
    for (const e of errors) {
      const name = e.extra_info?.input_name;
      if (typeof name === 'string') markInput(ctx, node, name);
    }
  }
  ctx.restore();
}

/** One line per error; the input is named unless the server's text already names it. */
export function errorLines(errors: NodeErrorItem[]): string[] {
  const lines = errors.map((e) => {
    const text = e.details || e.message;
    const name = e.extra_info?.input_name;
    return typeof name === 'string' && !text.includes(name) ? `${name}: ${text}` : text;
  });
  return [...new Set(lines)];
}

/**
 * Labels drawn after all nodes, so no node covers them: the running node's status pill (step,
 * clip i of K), "cached" tags, and error messages under the failing nodes.
 */
export function drawCanvasDecorations(
  ctx: CanvasRenderingContext2D,
  nodes: LGraphNode[],
  state: RunState,
): void {
  const th = LiteGraph.NODE_TITLE_HEIGHT;
  for (const node of nodes) {
    const id = String(node.id);
    ctx.save();
    ctx.translate(node.pos[0], node.pos[1]);
    if (state.executing === id) {
      const parts = ['running'];
      const p = state.progress;
      if (p !== undefined && p.node === id) parts.push(`step ${p.value} / ${p.max}`);
      const clip = state.clipLabel();
      if (clip !== undefined) parts.push(clip);
      pill(ctx, 0, -th - 24, parts.join(' · '), RUNNING);
    } else if (state.cached.has(id)) {
      pill(ctx, 0, -th - 24, 'cached', CACHED);
    }
    const messages = errorLines(state.errorsOf(id));
    if (state.failure?.nodeId === id) messages.push(`Error: ${state.failure.message}`);
    if (messages.length > 0) drawMessages(ctx, node, messages);
    ctx.restore();
  }
}
