// The engine's public contract: the prompt it takes, the events it emits, the outcome it returns.
// Hosts (CLI, server, tests) depend on this file; the engine's modules implement it.
import type { AnyNodeDef, NodePaths, NodeServices, ResourceLimits, UiOutput } from './define.ts';
import type { ApiPrompt, NodeErrors, ObjectInfo, PromptError } from '../protocol/index.ts';
import type { LoopCheckpoints } from './resume.ts';

// The wire types (prompt, node errors) are the protocol's; re-exported under their engine names.
export type { ApiPrompt, LinkRef, NodeErrorItem, NodeErrors, PromptError } from '../protocol/index.ts';

export type ValidationResult =
  { ok: true; outputs: string[] } | { ok: false; error: PromptError; nodeErrors: NodeErrors };

/** Everything the engine reports while running one prompt (api.md message types, camelCased). */
export type EngineEvent =
  | { type: 'execution_start'; promptId: string; timestamp: number }
  | { type: 'execution_cached'; promptId: string; nodes: string[]; timestamp: number }
  | { type: 'executing'; promptId: string; node: string; displayNode: string }
  | {
      type: 'progress';
      promptId: string;
      node: string;
      value: number;
      max: number;
      /** Innermost loop position when the node runs inside a loop. */
      iteration?: number;
      iterations?: number;
    }
  | { type: 'loop_iteration'; promptId: string; node: string; iteration: number; iterations: number }
  | { type: 'executed'; promptId: string; node: string; displayNode: string; output: UiOutput }
  | { type: 'preview'; promptId: string; node: string; format: 'jpeg' | 'png'; data: Uint8Array }
  | { type: 'execution_success'; promptId: string; timestamp: number }
  | {
      type: 'execution_error';
      promptId: string;
      nodeId: string;
      nodeType: string;
      executed: string[];
      exceptionMessage: string;
      exceptionType: string;
      traceback: string[];
      currentInputs: Record<string, unknown>;
      currentOutputs: Record<string, unknown>;
    }
  | { type: 'execution_interrupted'; promptId: string; nodeId: string; nodeType: string; executed: string[] };

/** How a run ended. The host sends `executing {node: null}` after recording it (api.md order). */
export type RunResultSummary =
  | { status: 'success'; outputs: Record<string, UiOutput>; executed: string[]; cached: string[] }
  | { status: 'error'; outputs: Record<string, UiOutput>; nodeId: string; message: string }
  | { status: 'interrupted'; outputs: Record<string, UiOutput>; nodeId: string | null };

export interface RunOptions {
  promptId: string;
  signal?: AbortSignal;
  onEvent?: (event: EngineEvent) => void;
  /** False: the host shows no previews; none are made or sent (default true). */
  previews?: boolean;
  /** Saves each finished clip of a top-level loop and continues saved loops (resume, extend). */
  checkpoints?: LoopCheckpoints;
}

export interface EngineOptions {
  nodes: readonly AnyNodeDef[];
  paths: NodePaths;
  /** What nodes reach through their RunContext (the model runtime); default none. */
  services?: NodeServices;
  /** Byte budget of the output cache (LRU by bytes). */
  cacheBytes?: number;
  /**
   * What one prompt may allocate (the server passes its limits): nodes' cost() is checked against
   * it at validation, and right before a node runs for values known only then. Default: no limits.
   */
  limits?: ResourceLimits;
}

export interface Engine {
  /** Every problem at once, nothing run. */
  validate(prompt: ApiPrompt): Promise<ValidationResult>;
  /** Validates, then runs what the output nodes need. Never throws for bad input or node errors. */
  run(
    prompt: ApiPrompt,
    options: RunOptions,
  ): Promise<RunResultSummary | { status: 'invalid'; validation: ValidationResult & { ok: false } }>;
  /** Drops cached outputs (POST /free). */
  clearCache(): void;
  /** ComfyUI /object_info for all node types. */
  objectInfo(): ObjectInfo;
}
