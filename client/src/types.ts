// Shapes of the server protocol (api.md) as the editor reads them: all from server/protocol, the
// one source the server builds its answers and messages from.
export type {
  ApiPrompt,
  FileRef,
  HistoryEntry,
  InputConfig,
  InputOptions,
  NodeErrorItem,
  NodeErrors,
  NodeInfo,
  ObjectInfo,
  QueueState,
  QueueTuple as QueueItem,
} from '../../server/protocol/index.ts';

import type { ErrorResponse, ReaderMessage } from '../../server/protocol/index.ts';

/**
 * A refused request's body. Lenient: the editor also reads a plain string `error` (a proxy in
 * front of the server) and a missing node_errors.
 */
export interface PromptErrorBody {
  error: ErrorResponse['error'] | string;
  node_errors?: ErrorResponse['node_errors'];
}

/** WebSocket JSON messages the editor acts on, with the fields it reads; anything else is ignored. */
export type ServerMessage = ReaderMessage;

/** A binary preview frame, decoded. */
export interface PreviewImage {
  mime: 'image/jpeg' | 'image/png';
  blob: Blob;
}
