// WebSocket messages across processes. A worker publishes each prompt's messages (JSON and binary
// previews) to Redis; every API server forwards to its local hub the messages of the clients that
// have a socket on it, and only those.
//
// Design: one channel per client id (`…:ev:<clientId>`), subscribed by an API server while it has
// a socket of that client, plus one broadcast channel (`…:ev`, ComfyUI's sid None: `status`,
// `execution_interrupted`, prompts without a client id) that every API server subscribes to.
// Cost per progress event: one PUBLISH, delivered by Redis only to the API servers that hold the
// client (usually one), so a preview's bytes cross the network once more, not once per server.
// One channel filtered by each server would cost the same single PUBLISH but deliver every
// message to all N servers (N× the traffic, previews included) to be thrown away by N−1 of them.
// Subscribing costs one SUBSCRIBE per client connect and one UNSUBSCRIBE per last disconnect.
// JSON and previews share a channel, so their order is kept (Redis delivers a channel in order).
//
// Interrupts: `…:interrupt` carries {prompt_id} (null: every running prompt, as ComfyUI's
// /interrupt without an id); each worker stops the prompt if it runs it.
//
// Pub/sub is fire-and-forget: a message published while an API server is disconnected from Redis
// is lost for its clients (the result stays in /history). Droppable messages (progress, previews)
// are not even queued while the publisher is disconnected, so an outage cannot pile them up.
import { Redis } from 'ioredis';
import type { Hub } from '../hub.ts';
import { ioredisOptions, parseRedisUrl } from './url.ts';

export interface EventBusOptions {
  url: string;
  /** Same name and prefix as the queue's. */
  name?: string;
  prefix?: string;
}

/** The part of the hub an API server's relay delivers to. */
export type HubSink = Pick<Hub, 'send' | 'sendBinary'>;

export interface EventBus {
  /** Publishes a JSON message for `clientId`'s sockets on every API server (null: all sockets). */
  publish(type: string, data: unknown, clientId?: string | null, opts?: { droppable?: boolean }): void;
  /** Publishes a binary frame (a preview) for `clientId`'s sockets. */
  publishBinary(frame: Uint8Array, clientId?: string | null): void;
  /** How many API servers have a socket of `clientId` now (one PUBSUB NUMSUB). */
  listeners(clientId: string): Promise<number>;
  /**
   * A Hub for a worker's runner: send/sendBinary publish; listeners() answers the count last
   * fetched by listeners(clientId) above for that client (fetch it before a prompt starts).
   */
  hub(): Hub;
  /**
   * An API server's side: forwards broadcast messages to `sink` at once, and a client's messages
   * while it is watched (watch per socket opened, unwatch per socket closed: counted).
   */
  relay(sink: HubSink): Promise<Relay>;
  /** Whether the publishing connection is up now. */
  connected(): boolean;
  /** Asks every worker to stop `promptId` (undefined: every running prompt). */
  interrupt(promptId?: string): Promise<void>;
  /** A worker's side: called for every interrupt published by any process. */
  onInterrupt(listener: (promptId: string | undefined) => void): Promise<() => void>;
  close(): Promise<void>;
}

export interface Relay {
  watch(clientId: string): Promise<void>;
  unwatch(clientId: string): Promise<void>;
  close(): Promise<void>;
}

const JSON_KIND = 0;
const BINARY_KIND = 1;
const DROPPABLE = 1;

function frame(kind: number, flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + body.byteLength);
  out[0] = kind;
  out[1] = flags;
  out.set(body, 2);
  return out;
}

export function createEventBus(opts: EventBusOptions): EventBus {
  const base = `${opts.prefix ?? 'rdflow'}:${opts.name ?? 'prompts'}`;
  const broadcast = `${base}:ev`;
  const clientChannel = (id: string) => `${base}:ev:${id}`;
  const interruptChannel = `${base}:interrupt`;
  const connection = ioredisOptions(parseRedisUrl(opts.url));
  const pub = new Redis(connection);
  pub.on('error', () => undefined);
  // Subscriber connections are made on first use: a worker never subscribes to events.
  const subs: Redis[] = [];
  const subscriber = (): Redis => {
    const s = new Redis(connection);
    s.on('error', () => undefined);
    subs.push(s);
    return s;
  };
  const counts = new Map<string, number>();

  const send = (channel: string, message: Buffer, droppable: boolean): void => {
    if (droppable && pub.status !== 'ready') return;
    pub.publish(channel, message).catch(() => undefined);
  };

  const bus: EventBus = {
    publish(type, data, clientId, o = {}) {
      const body = Buffer.from(JSON.stringify({ type, data }));
      const droppable = o.droppable ?? false;
      send(
        clientId ? clientChannel(clientId) : broadcast,
        frame(JSON_KIND, droppable ? DROPPABLE : 0, body),
        droppable,
      );
    },
    publishBinary(data, clientId) {
      send(clientId ? clientChannel(clientId) : broadcast, frame(BINARY_KIND, DROPPABLE, data), true);
    },
    async listeners(clientId) {
      const reply = (await pub.call('PUBSUB', 'NUMSUB', clientChannel(clientId))) as [string, number];
      const n = Number(reply[1]);
      counts.set(clientId, n);
      return n;
    },
    hub() {
      return {
        add() {
          throw new Error("A worker holds no sockets: add them to the API server's hub.");
        },
        send: (type, data, clientId, o) => bus.publish(type, data, clientId, o),
        sendBinary: (f, clientId) => bus.publishBinary(f, clientId),
        listeners: (clientId) => (clientId ? (counts.get(clientId) ?? 0) : 1),
        stats: () => ({ clients: 0, dropped: 0, closedSlow: 0 }),
        close: () => undefined,
      };
    },
    async relay(sink) {
      const sub = subscriber();
      const watched = new Map<string, number>();
      const byChannel = new Map<string, string>();
      sub.on('messageBuffer', (channelBuf: Buffer, message: Buffer) => {
        const channel = channelBuf.toString();
        const clientId = channel === broadcast ? null : byChannel.get(channel);
        if (clientId === undefined || message.length < 2) return;
        const body = message.subarray(2);
        if (message[0] === BINARY_KIND) {
          sink.sendBinary(body, clientId);
          return;
        }
        let parsed: { type: string; data: unknown };
        try {
          parsed = JSON.parse(body.toString()) as { type: string; data: unknown };
        } catch {
          return; // Not ours (another program on the channel): nothing to forward.
        }
        sink.send(parsed.type, parsed.data, clientId, { droppable: (message[1]! & DROPPABLE) !== 0 });
      });
      await sub.subscribe(broadcast);
      return {
        async watch(clientId) {
          const n = watched.get(clientId) ?? 0;
          watched.set(clientId, n + 1);
          if (n > 0) return;
          byChannel.set(clientChannel(clientId), clientId);
          await sub.subscribe(clientChannel(clientId));
        },
        async unwatch(clientId) {
          const n = watched.get(clientId) ?? 0;
          if (n > 1) {
            watched.set(clientId, n - 1);
            return;
          }
          if (n === 0) return;
          watched.delete(clientId);
          byChannel.delete(clientChannel(clientId));
          await sub.unsubscribe(clientChannel(clientId));
        },
        async close() {
          await sub.quit().catch(() => sub.disconnect());
        },
      };
    },
    connected: () => pub.status === 'ready',
    async interrupt(promptId) {
      await pub.publish(interruptChannel, JSON.stringify({ prompt_id: promptId ?? null }));
    },
    async onInterrupt(listener) {
      const sub = subscriber();
      sub.on('message', (channel: string, message: string) => {
        if (channel !== interruptChannel) return;
        let id: unknown;
        try {
          id = (JSON.parse(message) as { prompt_id?: unknown }).prompt_id;
        } catch {
          return;
        }
        if (id === null || typeof id === 'string') listener(id ?? undefined);
      });
      await sub.subscribe(interruptChannel);
      return () => void sub.quit().catch(() => sub.disconnect());
    },
    async close() {
      await Promise.all([pub, ...subs].map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
  return bus;
}
