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
  /** When the run was first seen at a clip (ms) and how far it was then, for the ETA. */
  private etaStart: { at: number; done: number } | undefined;
  /** Prompts seen to end: a late answer of GET /queue cannot make them run again. */
  private readonly ended = new Set<string>();
  /** The run shown was learnt from GET /queue, not from this page's messages. */
  private fromQueue = false;

  constructor(private readonly now: () => number = () => Date.now()) {}

  /** Forgets the marks of the previous run: a new one has started. */
  private startRun(promptId: string): void {
    this.phase = 'running';
    this.promptId = promptId;
    this.executing = undefined;
    this.progress = undefined;
    this.clip = undefined;
    this.etaStart = undefined;
    this.cached.clear();
    this.executed.clear();
    this.nodeErrors = {};
    this.failure = undefined;
  }

  /**
   * The server's queue says `promptId` runs now (GET /queue: after a reload, or a prompt another
   * client queued, whose messages go to that client only): show it as running, without the marks
   * of the run before it. Returns true when that changed the state.
   */
  noticeRunning(promptId: string | undefined): boolean {
    if (promptId === undefined) {
      // Nothing runs: a run learnt from the queue ended while its messages went elsewhere.
      if (this.phase !== 'running' || !this.fromQueue) return false;
      if (this.promptId !== undefined) this.ended.add(this.promptId);
      this.phase = 'idle';
      this.executing = undefined;
      this.progress = undefined;
      return true;
    }
    if (this.ended.has(promptId) || (this.phase === 'running' && this.promptId === promptId)) return false;
    this.startRun(promptId);
    this.fromQueue = true;
    return true;
  }

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
        this.startRun(msg.data.prompt_id);
        this.fromQueue = false;
        return true;
      case 'execution_cached':
        for (const id of msg.data.nodes) this.cached.add(String(id));
        return true;
      case 'executing': {
        const node = msg.data.node;
        if (node === null) {
          // The prompt is over (success, error or interrupt all end with this).
          if (this.promptId !== undefined) this.ended.add(this.promptId);
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
        // Steps of a run this page did not see start (a reload mid-run): it is running that node.
        if (this.phase === 'running' && this.executing === undefined) this.executing = String(node);
        this.progress = { node: String(node), value: msg.data.value, max: msg.data.max };
        if (msg.data.iteration !== undefined && msg.data.iterations !== undefined) {
          this.setClip(msg.data.iteration, msg.data.iterations);
        }
        this.markEta();
        return true;
      }
      case 'iteration':
        this.setClip(msg.data.iteration, msg.data.iterations);
        this.markEta();
        return true;
      case 'clip_written':
        // Clip `iteration` is in the file: the next one is under way.
        if (msg.data.iteration !== undefined && msg.data.iterations !== undefined) {
          if (this.clip === undefined || this.clip.iteration <= msg.data.iteration)
            this.setClip(Math.min(msg.data.iteration + 1, msg.data.iterations - 1), msg.data.iterations);
          this.markEta();
        }
        return true;
      case 'executed':
        this.executed.add(String(msg.data.node));
        return true;
      // The outcome comes before `executing: null`, and GET /queue lists the prompt as running until
      // then: an answer arriving in between must not start it again (and clear its badges).
      case 'execution_success':
        this.ended.add(msg.data.prompt_id);
        this.phase = 'success';
        return true;
      case 'execution_error':
        this.ended.add(msg.data.prompt_id);
        this.phase = 'error';
        this.failure = {
          promptId: msg.data.prompt_id,
          nodeId: String(msg.data.node_id),
          // Null when no node is to blame; shown as the server wrote it.
          nodeType: String(msg.data.node_type),
          message: msg.data.exception_message,
        };
        return true;
      case 'execution_interrupted':
        this.ended.add(msg.data.prompt_id);
        if (msg.data.prompt_id === this.promptId) this.phase = 'interrupted';
        return true;
      default:
        return false;
    }
  }

  private setClip(iteration: number, iterations: number): void {
    this.clip = { iteration, iterations };
  }

  /** How much of the run is done, in clips (fractional within a clip from the sampler's steps). */
  private doneClips(): number | undefined {
    if (this.clip === undefined) return undefined;
    const p = this.progress;
    return this.clip.iteration + (p !== undefined && p.max > 0 ? p.value / p.max : 0);
  }

  private markEta(): void {
    const done = this.doneClips();
    if (this.etaStart === undefined && done !== undefined) this.etaStart = { at: this.now(), done };
  }

  /**
   * Seconds left in a loop, from the pace since the page first saw the run at a clip (the clips
   * are alike, so the pace holds); undefined until a tenth of a clip has passed.
   */
  etaSeconds(): number | undefined {
    const done = this.doneClips();
    if (this.phase !== 'running' || done === undefined || this.etaStart === undefined) return undefined;
    const progressed = done - this.etaStart.done;
    if (progressed < 0.1) return undefined;
    const perClip = (this.now() - this.etaStart.at) / 1000 / progressed;
    return Math.max(0, perClip * (this.clip!.iterations - done));
  }

  /** "clip 2 of 6" (1-based for people), or undefined outside a loop. */
  clipLabel(): string | undefined {
    if (this.clip === undefined) return undefined;
    return `clip ${this.clip.iteration + 1} of ${this.clip.iterations}`;
  }

  /** "ETA 1m05s" while a loop runs and the pace is known. */
  etaLabel(): string | undefined {
    const s = this.etaSeconds();
    return s === undefined ? undefined : `ETA ${formatDuration(s)}`;
  }
}

/** 45s, 3m05s, 1h02m. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
