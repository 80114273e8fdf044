// Shapes of the server protocol (api.md) as the editor reads them. Kept structural and lenient:
// the server may add fields, and the client ignores what it does not know.
// The prompt and its validation errors are the engine's own types (the server sends them as is).
import type { ApiPrompt, NodeErrors } from '../../server/engine/types.ts';

export type { ApiPrompt, NodeErrorItem, NodeErrors } from '../../server/engine/types.ts';

/** One input as /object_info writes it: `["INT", {min, max}]`, `[["a", "b"], {default}]`, `["LATENT"]`. */
export type InputConfig = [type: string | string[], options?: InputOptions];

export interface InputOptions {
  default?: unknown;
  min?: number;
  max?: number;
  step?: number;
  round?: number | false;
  multiline?: boolean;
  control_after_generate?: boolean;
  tooltip?: string;
  [key: string]: unknown;
}

export interface NodeInfo {
  name: string;
  display_name?: string;
  description?: string;
  category?: string;
  output_node?: boolean;
  input: {
    required?: Record<string, InputConfig>;
    optional?: Record<string, InputConfig>;
    hidden?: Record<string, unknown>;
  };
  input_order?: { required?: string[]; optional?: string[] };
  output: string[];
  output_name?: string[];
  output_is_list?: boolean[];
}

export type ObjectInfo = Record<string, NodeInfo>;

export interface PromptErrorBody {
  error: { type: string; message: string; details?: string; extra_info?: Record<string, unknown> } | string;
  node_errors?: NodeErrors;
}

/** `[number, prompt_id, prompt, extra_data, outputs]`, as /queue and /history list prompts. */
export type QueueItem = [number, string, ApiPrompt, Record<string, unknown>?, unknown?];

export interface QueueState {
  queue_running: QueueItem[];
  queue_pending: QueueItem[];
}

/** A file a node wrote: `{filename, subfolder, type}` (+ `format` for videos). */
export interface FileRef {
  filename: string;
  subfolder: string;
  type: string;
  format?: string;
}

export interface HistoryEntry {
  prompt: QueueItem;
  outputs: Record<string, Record<string, unknown[]>>;
  status?: { status_str?: string; completed?: boolean; messages?: unknown[] };
}

/** WebSocket JSON messages the editor acts on; anything else is ignored. */
export type ServerMessage =
  | { type: 'status'; data: { status?: { exec_info?: { queue_remaining?: number } }; sid?: string } }
  | { type: 'execution_start'; data: { prompt_id: string } }
  | { type: 'execution_cached'; data: { prompt_id: string; nodes: string[] } }
  | { type: 'executing'; data: { prompt_id?: string; node: string | null; display_node?: string } }
  | {
      type: 'progress';
      data: {
        prompt_id?: string;
        node?: string;
        value: number;
        max: number;
        iteration?: number;
        iterations?: number;
      };
    }
  | {
      type: 'loop_iteration' | 'iteration';
      data: { prompt_id?: string; node?: string; iteration: number; iterations: number };
    }
  | {
      type: 'executed';
      data: { prompt_id?: string; node: string; display_node?: string; output: Record<string, unknown[]> };
    }
  | {
      /** A clip appended to a node's file (per-clip progress, never in `executed`). */
      type: 'clip_written';
      data: { prompt_id?: string; node: string; iteration?: number; iterations?: number };
    }
  | { type: 'execution_success'; data: { prompt_id: string } }
  | {
      type: 'execution_error';
      data: {
        prompt_id: string;
        node_id: string;
        node_type: string;
        exception_message: string;
        exception_type?: string;
      };
    }
  | { type: 'execution_interrupted'; data: { prompt_id: string; node_id?: string; node_type?: string } };

/** A binary preview frame, decoded. */
export interface PreviewImage {
  mime: 'image/jpeg' | 'image/png';
  blob: Blob;
}
