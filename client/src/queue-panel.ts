// The side panel: connection and run status (executing node, step, clip i of K), the prompts
// running and pending with cancel buttons, and the last error naming its node.
import type { Api } from './api.ts';
import { el } from './dom.ts';
import { messageOf, toast } from './errors.ts';
import { createResumeActions } from './resume.ts';
import type { RunState } from './run-state.ts';
import type { QueueItem, QueueState } from './types.ts';

export class QueuePanel {
  private readonly status = el('div', 'run-status');
  private readonly running = el('ul', 'queue-list');
  private readonly pending = el('ul', 'queue-list');
  private readonly failure = el('div', 'run-failure');
  /** Resume a stopped prompt from its last clip, or extend a finished one (POST /runs/resume). */
  private readonly resume = createResumeActions(
    (id) => {
      toast(`Queued ${id.slice(0, 8)}: it continues from the last finished clip`);
      void this.refresh();
    },
    (message) => toast(`Could not resume: ${message}`, 'error'),
  );
  private connected = false;

  constructor(
    root: HTMLElement,
    private readonly api: Api,
    private readonly titleOf: (nodeId: string) => string,
    private readonly focusNode: (nodeId: string) => void,
  ) {
    this.status.id = 'run-status';
    this.failure.id = 'run-failure';
    this.running.id = 'queue-running';
    this.pending.id = 'queue-pending';
    root.append(
      el('h2', undefined, 'Run'),
      this.status,
      this.failure,
      this.resume.element,
      el('h2', undefined, 'Running'),
      this.running,
      el('h2', undefined, 'Pending'),
      this.pending,
    );
  }

  setConnected(connected: boolean): void {
    this.connected = connected;
  }

  /** Reloads the queue lists from GET /queue; resolves to what it read (undefined on failure). */
  async refresh(): Promise<QueueState | undefined> {
    try {
      const q = await this.api.getQueue();
      this.fill(this.running, q.queue_running, true);
      this.fill(this.pending, q.queue_pending, false);
      return q;
    } catch (e) {
      toast(`Could not read the queue: ${messageOf(e)}`, 'error');
      return undefined;
    }
  }

  private fill(list: HTMLUListElement, items: QueueItem[], isRunning: boolean): void {
    list.replaceChildren();
    if (items.length === 0) {
      list.append(el('li', 'queue-empty', 'none'));
      return;
    }
    for (const [number, promptId, prompt] of [...items].sort((a, b) => a[0] - b[0])) {
      const li = el('li', 'queue-item');
      li.dataset.promptId = promptId;
      const nodes = Object.keys(prompt ?? {}).length;
      li.append(el('span', 'queue-label', `#${number} · ${nodes} nodes · ${promptId.slice(0, 8)}`));
      const cancel = el('button', 'queue-cancel', isRunning ? 'Stop' : 'Cancel');
      cancel.title = isRunning ? 'Interrupt this prompt' : 'Remove from the queue';
      cancel.addEventListener('click', () => {
        const action = isRunning ? this.api.interrupt(promptId) : this.api.deleteFromQueue([promptId]);
        action.then(
          () => this.refresh(),
          (e: unknown) => toast(`Could not cancel: ${messageOf(e)}`, 'error'),
        );
      });
      li.append(cancel);
      list.append(li);
    }
  }

  /** Redraws the status line and error card from the run state. */
  render(state: RunState): void {
    const parts: string[] = [];
    if (!this.connected) parts.push('disconnected from the server');
    switch (state.phase) {
      case 'running': {
        const node = state.executing;
        parts.push(node === undefined ? 'running' : `running #${node} ${this.titleOf(node)}`);
        const p = state.progress;
        if (p !== undefined && p.node === node) parts.push(`step ${p.value} / ${p.max}`);
        const clip = state.clipLabel();
        if (clip !== undefined) parts.push(clip);
        const eta = state.etaLabel();
        if (eta !== undefined) parts.push(eta);
        break;
      }
      case 'queued':
        parts.push('queued');
        break;
      case 'invalid':
        parts.push(`not queued: errors on ${Object.keys(state.nodeErrors).length} node(s)`);
        break;
      case 'success':
        parts.push('finished');
        break;
      case 'error':
        parts.push('failed');
        break;
      case 'interrupted':
        parts.push('interrupted');
        break;
      default:
        parts.push('idle');
    }
    // queue_remaining counts the running prompt too.
    const waiting = state.queueRemaining - (state.phase === 'running' ? 1 : 0);
    if (waiting > 0) parts.push(`${waiting} waiting`);
    this.status.textContent = parts.join(' · ');
    this.status.dataset.phase = state.phase;
    this.resume.update(state.promptId, state.phase);

    const f = state.failure;
    this.failure.replaceChildren();
    this.failure.hidden = f === undefined;
    if (f !== undefined) {
      const title = el('button', 'failure-node', `#${f.nodeId} ${this.titleOf(f.nodeId)} (${f.nodeType})`);
      title.title = 'Show the node';
      title.addEventListener('click', () => this.focusNode(f.nodeId));
      this.failure.append(el('strong', undefined, 'Error in '), title, el('p', 'failure-message', f.message));
    }
  }
}
