// The WebSocket hub: sockets by clientId, JSON and binary sends, and bounded per-socket buffers.
// ws.send never blocks, so a client that stops reading only grows its own buffer: above a soft
// limit its droppable messages (previews, progress) are skipped; above a hard limit it is closed
// (it would miss messages it waits for, so it had better reconnect). Nobody else waits on it.
import type { WebSocket } from 'ws';

export interface HubOptions {
  /** Buffered bytes above which droppable messages are skipped for a socket. */
  softLimitBytes?: number;
  /** Buffered bytes above which a socket is closed. */
  hardLimitBytes?: number;
  /** Ping interval; a socket that missed the previous pong is terminated. */
  heartbeatMs?: number;
}

export interface HubStats {
  clients: number;
  dropped: number;
  closedSlow: number;
}

export interface Hub {
  add(ws: WebSocket, clientId: string): void;
  /** To every socket of `clientId`; to all sockets when clientId is null/undefined (ComfyUI's sid None). */
  send(type: string, data: unknown, clientId?: string | null, opts?: { droppable?: boolean }): void;
  sendBinary(frame: Uint8Array, clientId?: string | null): void;
  /** How many open sockets `send(…, clientId)` reaches now. */
  listeners(clientId?: string | null): number;
  stats(): HubStats;
  close(): void;
}

const OPEN = 1;

export function createHub(opts: HubOptions = {}): Hub {
  const soft = opts.softLimitBytes ?? 1 << 20;
  const hard = opts.hardLimitBytes ?? 16 << 20;
  const sockets = new Map<string, Set<WebSocket>>();
  const alive = new WeakMap<WebSocket, boolean>();
  let dropped = 0;
  let closedSlow = 0;

  const targets = (clientId: string | null | undefined): Iterable<WebSocket> => {
    if (clientId === null || clientId === undefined) return [...sockets.values()].flatMap((s) => [...s]);
    return sockets.get(clientId) ?? [];
  };

  const deliver = (ws: WebSocket, payload: string | Uint8Array, droppable: boolean): void => {
    if (ws.readyState !== OPEN) return;
    if (ws.bufferedAmount > hard) {
      closedSlow++;
      ws.terminate();
      return;
    }
    if (droppable && ws.bufferedAmount > soft) {
      dropped++;
      return;
    }
    ws.send(payload, (err) => {
      // A write error means the socket is gone; 'close' cleans it up.
      if (err) ws.terminate();
    });
  };

  const heartbeat = setInterval(() => {
    for (const ws of targets(null)) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }, opts.heartbeatMs ?? 30_000);
  heartbeat.unref();

  return {
    add(ws, clientId) {
      let set = sockets.get(clientId);
      if (!set) sockets.set(clientId, (set = new Set()));
      set.add(ws);
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      ws.on('error', () => ws.terminate());
      ws.on('close', () => {
        const s = sockets.get(clientId);
        s?.delete(ws);
        if (s && s.size === 0) sockets.delete(clientId);
      });
      // Clients may send messages (ComfyUI's frontend sends feature flags); none needs an answer.
      ws.on('message', () => undefined);
    },
    send(type, data, clientId, o = {}) {
      const payload = JSON.stringify({ type, data });
      for (const ws of targets(clientId)) deliver(ws, payload, o.droppable ?? false);
    },
    sendBinary(frame, clientId) {
      for (const ws of targets(clientId)) deliver(ws, frame, true);
    },
    listeners(clientId) {
      let n = 0;
      for (const ws of targets(clientId)) if (ws.readyState === OPEN) n++;
      return n;
    },
    stats() {
      let clients = 0;
      for (const s of sockets.values()) clients += s.size;
      return { clients, dropped, closedSlow };
    },
    close() {
      clearInterval(heartbeat);
      for (const ws of targets(null)) ws.terminate();
      sockets.clear();
    },
  };
}

/** ComfyUI's binary preview frame: 4-byte BE event type (1 = preview image), 4-byte BE format (1 JPEG, 2 PNG). */
export function previewFrame(format: 'jpeg' | 'png', data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(8 + data.byteLength);
  frame.writeUInt32BE(1, 0);
  frame.writeUInt32BE(format === 'jpeg' ? 1 : 2, 4);
  frame.set(data, 8);
  return frame;
}
