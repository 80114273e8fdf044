// Telling the user what went wrong: short toasts for actions, and a persistent error card for a
// failed run that names the node. The graph itself is never touched by an error.
import { errorLines } from './decorations.ts';
import type { NodeErrors } from './types.ts';

export type ToastKind = 'info' | 'error' | 'success';

export function toast(
  message: string,
  kind: ToastKind = 'info',
  ms = kind === 'error' ? 8000 : 3500,
): HTMLElement {
  const host = document.getElementById('toasts');
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = message;
  el.addEventListener('click', () => el.remove());
  host?.append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}

/** One line per node with errors: `#6 DDIM Sampler: steps: Value 0 smaller than min of 1`. */
export function describeNodeErrors(nodeErrors: NodeErrors, titleOf: (id: string) => string): string[] {
  return Object.entries(nodeErrors).map(([id, entry]) => {
    return `#${id} ${titleOf(id)}: ${errorLines(entry.errors).join('; ')}`;
  });
}

/** An error message for something thrown, without stack traces. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
