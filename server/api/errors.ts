// api.md's error shape: a top-level `error` tells clients the request failed.
import type { NodeErrors, PromptError } from '../engine/types.ts';

export interface ErrorBody {
  error: PromptError;
  node_errors: NodeErrors;
}

export function errorBody(
  type: string,
  message: string,
  details = '',
  nodeErrors: NodeErrors = {},
): ErrorBody {
  return { error: { type, message, details, extra_info: {} }, node_errors: nodeErrors };
}

/** An error a route throws to answer with a status and the error shape. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
}
