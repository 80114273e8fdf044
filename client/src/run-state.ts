// What the editor knows about the prompt that runs now, folded from WebSocket messages. Pure (no
// DOM, no litegraph): the canvas and the panels only read it.
import type { NodeErrorItem, NodeErrors, ServerMessage } from './types.ts';

export interface Progress {
  node: string;
  value: number;
  max: number;
}

/** 0-based clip index within the loop, as the server sends it. */
export interface ClipPosition {
  iteration: number;
  iterations: number;
}

export interface Failure {
  promptId: string;
  nodeId: string;
  nodeType: string;
  message: string;
}

export type RunPhase = 'idle' | 'invalid' | 'queued' | 'running' | 'success' | 'error' | 'interrupted';

export class RunState {
  phase: RunPhase = 'idle';
  promptId: string | undefined;
  executing: string | undefined;
  progress: Progress | undefined;
  clip: ClipPosition | undefined;
  readonly cached = new Set<string>();
  readonly executed = new Set<string>();
  nodeErrors: NodeErrors = {};
  failure: Failure | undefined;
  queueRemaining = 0;

  /** A prompt was accepted: forget the previous run's marks. */
  begin(promptId: string): void {
    this.nodeErrors = {};
    // A prompt queued behind a running one does not change what the panel shows for that one, and
    // a prompt whose messages arrived before the POST answered has already moved on.
    if (this.phase === 'running' || this.promptId === promptId) return;
    this.promptId = promptId;
    this.phase = 'queued';
    this.failure = undefined;
  }

  /** Validation errors from a refused prompt. */
  reject(nodeErrors: NodeErrors): void {
    this.nodeErrors = nodeErrors;
    this.failure = undefined;
    if (Object.keys(nodeErrors).length > 0) this.phase = 'invalid';
    else if (this.phase === 'invalid') this.phase = 'idle';
  }

  errorsOf(nodeId: string): NodeErrorItem[] {
    return this.nodeErrors[nodeId]?.errors ?? [];
  }

  /** Folds one message in; returns true when something drawn changed. */
  apply(msg: ServerMessage): boolean {
    switch (msg.type) {
      case 'status':
        this.queueRemaining = msg.data.status?.exec_info?.queue_remaining ?? this.queueRemaining;
        return true;
      case 'execution_start':
        this.phase = 'running';
        this.promptId = msg.data.prompt_id;
        this.executing = undefined;
        this.progress = undefined;
        this.clip = undefined;
        this.cached.clear();
        this.executed.clear();
        this.nodeErrors = {};
        this.failure = undefined;
        return true;
      case 'execution_cached':
        for (const id of msg.data.nodes) this.cached.add(String(id));
        return true;
      case 'executing': {
        const node = msg.data.node;
        if (node === null) {
          // The prompt is over (success, error or interrupt all end with this).
          if (this.phase === 'running' || this.phase === 'queued') this.phase = 'success';
          this.executing = undefined;
          this.progress = undefined;
          return true;
        }
        if (this.executing !== undefined) this.executed.add(this.executing);
        this.executing = String(node);
        if (this.progress?.node !== this.executing) this.progress = undefined;
        return true;
      }
      case 'progress': {
        const node = msg.data.node ?? this.executing;
        if (node === undefined) return false;
        this.progress = { node: String(node), value: msg.data.value, max: msg.data.max };
        if (msg.data.iteration !== undefined && msg.data.iterations !== undefined) {
          this.clip = { iteration: msg.data.iteration, iterations: msg.data.iterations };
        }
        return true;
      }
      case 'iteration':
      case 'loop_iteration':
        this.clip = { iteration: msg.data.iteration, iterations: msg.data.iterations };
        return true;
      case 'executed':
        this.executed.add(String(msg.data.node));
        return true;
      case 'execution_success':
        this.phase = 'success';
        return true;
      case 'execution_error':
        this.phase = 'error';
        this.failure = {
          promptId: msg.data.prompt_id,
          nodeId: String(msg.data.node_id),
          nodeType: msg.data.node_type,
          message: msg.data.exception_message,
        };
        return true;
      case 'execution_interrupted':
        if (msg.data.prompt_id === this.promptId) this.phase = 'interrupted';
        return true;
      default:
        return false;
    }
  }

  /** "clip 2 of 6" (1-based for people), or undefined outside a loop. */
  clipLabel(): string | undefined {
    if (this.clip === undefined) return undefined;
    return `clip ${this.clip.iteration + 1} of ${this.clip.iterations}`;
  }
}
