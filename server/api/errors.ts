// api.md's error shape (a top-level `error` tells clients the request failed), from the protocol.
import { errorResponse, type ErrorResponse } from '../protocol/index.ts';

export type ErrorBody = ErrorResponse;

/** `{error: {type, message, details, extra_info: {}}, node_errors}`. */
export const errorBody = errorResponse;

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
