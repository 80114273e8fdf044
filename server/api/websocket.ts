// The HTTP server's raw edges: WebSocket upgrades at /ws (access-checked like every request, then
// handed to the hub) and requests too malformed for express, answered in the API's error shape.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorBody } from './errors.ts';
import type { Hub } from './hub.ts';
import { executing, queueStatus } from '../protocol/index.ts';
import { checkAccess, type AccessPolicy } from './security.ts';

export interface WebSocketParts {
  policy: AccessPolicy;
  hub: Hub;
  /** The prompt of `clientId` running now and its node, if any (for a client that reconnects). */
  runningFor(clientId: string): Promise<{ promptId: string; node?: string } | undefined>;
  /** ComfyUI's queue_remaining, sent to each client as it connects. */
  queueRemaining(): Promise<number>;
  /** Told of each socket opened and closed (a shared queue's relay watches its client). */
  onSocket?(clientId: string): Promise<void>;
  onSocketClosed?(clientId: string): Promise<void>;
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}

/** A connected client learns the queue length and, reconnecting mid-run, where its prompt is. */
function greet(ws: WebSocket, clientId: string, parts: WebSocketParts): void {
  parts
    .queueRemaining()
    .then(async (n) => {
      ws.send(JSON.stringify(queueStatus(n, clientId)));
      // A client that reconnects mid-run learns where its prompt is (as ComfyUI does).
      const run = await parts.runningFor(clientId);
      if (run?.node !== undefined) {
        ws.send(
          JSON.stringify(executing({ node: run.node, display_node: run.node, prompt_id: run.promptId })),
        );
      }
    })
    .catch(() => undefined);
}

/** Accepts WebSocket clients on `server` (at /ws and /api/ws); returns their server, to close. */
export function acceptWebSockets(server: http.Server, parts: WebSocketParts): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws' && url.pathname !== '/api/ws') {
      rejectUpgrade(socket, 400, 'WebSocket endpoint is /ws');
      return;
    }
    const decision = checkAccess(parts.policy, {
      origin: req.headers.origin,
      host: req.headers.host,
      authorization: req.headers.authorization,
      cookie: req.headers.cookie,
      url: req.url,
    });
    if (!decision.ok) {
      rejectUpgrade(socket, decision.status, decision.message);
      return;
    }
    const asked = url.searchParams.get('clientId');
    const clientId = asked && asked.length <= 128 ? asked : crypto.randomUUID().replaceAll('-', '');
    wss.handleUpgrade(req, socket, head, (ws) => {
      parts.hub.add(ws, clientId);
      const { onSocket, onSocketClosed } = parts;
      if (onSocket) {
        // Greeted once its messages are routed here, so none sent meanwhile is missed.
        ws.once('close', () => void onSocketClosed?.(clientId).catch(() => undefined));
        onSocket(clientId).then(
          () => greet(ws, clientId, parts),
          () => greet(ws, clientId, parts),
        );
        return;
      }
      greet(ws, clientId, parts);
    });
  });
  return wss;
}

/**
 * Unparseable HTTP: answered where the socket still can, as Node does without a handler, but in
 * the API's error shape; headers over Node's 16 KiB (a 20,000-character id in the path) are a 431.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const body = JSON.stringify(
    tooLarge
      ? errorBody('request_too_large', 'The request line and headers are too large.')
      : errorBody('invalid_request', 'Malformed HTTP request.'),
  );
  socket.end(
    `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
      `Connection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
