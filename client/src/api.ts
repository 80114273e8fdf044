// HTTP and WebSocket client for the server protocol (api.md). Every route is requested under
// `api/` relative to the page, so the editor works whether it is served at `/` or under a prefix.
import { isMessageType, readerMessageSchema, type WorkflowEntry } from '../../server/protocol/index.ts';
import type {
  ApiPrompt,
  FileRef,
  HistoryEntry,
  NodeErrors,
  ObjectInfo,
  PreviewImage,
  PromptErrorBody,
  QueueState,
  ServerMessage,
} from './types.ts';

/** One entry of GET /workflows. */
export type WorkflowListEntry = WorkflowEntry;

/** The server refused a prompt (400): its message and the per-node errors to draw. */
export class PromptRejectedError extends Error {
  readonly nodeErrors: NodeErrors;
  readonly errorType: string;
  constructor(body: PromptErrorBody) {
    const err = body.error;
    const message =
      typeof err === 'string'
        ? err
        : [err.message, err.details].filter((s) => s !== undefined && s !== '').join(': ');
    super(message || 'The server refused the prompt');
    this.name = 'PromptRejectedError';
    this.errorType = typeof err === 'string' ? 'error' : err.type;
    this.nodeErrors = body.node_errors ?? {};
  }
}

export interface QueuedPrompt {
  prompt_id: string;
  number: number;
}

export interface SocketHandlers {
  onMessage(message: ServerMessage): void;
  onPreview(image: PreviewImage): void;
  onStatusChange?(connected: boolean): void;
}

export interface Api {
  readonly clientId: string;
  objectInfo(): Promise<ObjectInfo>;
  queuePrompt(prompt: ApiPrompt, extraData?: Record<string, unknown>): Promise<QueuedPrompt>;
  getQueue(): Promise<QueueState>;
  deleteFromQueue(promptIds: string[]): Promise<void>;
  interrupt(promptId?: string): Promise<void>;
  /** The most recent history entry, if any. */
  lastHistory(): Promise<HistoryEntry | undefined>;
  /** The last `maxItems` history entries by prompt id, oldest first (the server's order). */
  history(maxItems: number): Promise<Record<string, HistoryEntry>>;
  viewUrl(file: FileRef): string;
  /** The workflow files in the server's workflows folder. */
  listWorkflows(): Promise<WorkflowListEntry[]>;
  /** One of them, parsed (canvas or API format). */
  getWorkflow(name: string): Promise<unknown>;
  connect(handlers: SocketHandlers): () => void;
}

/** Decodes a binary WebSocket frame: 4-byte BE event type (1 = preview), 4-byte format (1 JPEG, 2 PNG), bytes. */
export function parsePreviewFrame(buffer: ArrayBuffer): PreviewImage | undefined {
  if (buffer.byteLength < 8) return undefined;
  const view = new DataView(buffer);
  if (view.getUint32(0) !== 1) return undefined;
  const format = view.getUint32(4);
  const mime = format === 2 ? 'image/png' : format === 1 ? 'image/jpeg' : undefined;
  if (mime === undefined) return undefined;
  return { mime, blob: new Blob([buffer.slice(8)], { type: mime }) };
}

/**
 * A WebSocket message checked against the protocol; undefined for one the editor does not know
 * (other servers' extensions) or cannot read (a known type without the fields it acts on, logged).
 */
export function readMessage(msg: unknown): ServerMessage | undefined {
  const parsed = readerMessageSchema.safeParse(msg);
  if (parsed.success) return parsed.data;
  const type = (msg as { type?: unknown } | null)?.type;
  if (isMessageType(type))
    console.warn(`ignored a ${type} message that does not fit the protocol`, parsed.error.issues);
  return undefined;
}

function newClientId(): string {
  const stored = sessionStorage.getItem('rdflow.clientId');
  if (stored !== null) return stored;
  const id =
    typeof crypto.randomUUID === 'function'
      ? crypto.randomUUID().replaceAll('-', '')
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(
          '',
        );
  sessionStorage.setItem('rdflow.clientId', id);
  return id;
}

async function readJson(res: Response, what: string): Promise<unknown> {
  const text = await res.text();
  try {
    return text === '' ? {} : (JSON.parse(text) as unknown);
  } catch {
    throw new Error(`${what}: the server answered ${res.status} with a body that is not JSON`);
  }
}

export function createApi(base: URL = new URL('.', window.location.href)): Api {
  const clientId = newClientId();
  const url = (route: string): string => new URL(`api/${route}`, base).href;

  async function request(route: string, init?: RequestInit): Promise<unknown> {
    const res = await fetch(url(route), init);
    const body = await readJson(res, `${init?.method ?? 'GET'} /${route}`);
    if (!res.ok) {
      const err = (body as { error?: unknown }).error;
      const message =
        typeof err === 'string' ? err : ((err as { message?: string } | undefined)?.message ?? '');
      throw new Error(
        `${init?.method ?? 'GET'} /${route} failed (${res.status})${message ? `: ${message}` : ''}`,
      );
    }
    return body;
  }

  const postJson = (route: string, body: unknown): Promise<unknown> =>
    request(route, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  return {
    clientId,
    objectInfo: async () => (await request('object_info')) as ObjectInfo,
    async queuePrompt(prompt, extraData = {}) {
      const res = await fetch(url('prompt'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt, client_id: clientId, extra_data: extraData }),
      });
      const body = (await readJson(res, 'POST /prompt')) as Partial<QueuedPrompt> & Partial<PromptErrorBody>;
      if (!res.ok || body.error !== undefined) throw new PromptRejectedError(body as PromptErrorBody);
      return { prompt_id: String(body.prompt_id), number: Number(body.number) };
    },
    getQueue: async () => (await request('queue')) as QueueState,
    async deleteFromQueue(promptIds) {
      await postJson('queue', { delete: promptIds });
    },
    async interrupt(promptId) {
      await postJson('interrupt', promptId === undefined ? {} : { prompt_id: promptId });
    },
    history: async (maxItems) =>
      (await request(`history?max_items=${maxItems}`)) as Record<string, HistoryEntry>,
    async lastHistory() {
      const all = (await request('history?max_items=1')) as Record<string, HistoryEntry>;
      return Object.values(all).at(-1);
    },
    viewUrl(file) {
      const q = new URLSearchParams({
        filename: file.filename,
        subfolder: file.subfolder ?? '',
        type: file.type,
      });
      return url(`view?${q.toString()}`);
    },
    listWorkflows: async () => (await request('workflows')) as WorkflowListEntry[],
    getWorkflow: (name) => request(`workflows/${encodeURIComponent(name)}`),
    connect(handlers) {
      let socket: WebSocket | undefined;
      let closed = false;
      let retry: ReturnType<typeof setTimeout> | undefined;
      const open = (): void => {
        const wsUrl = new URL(`ws?clientId=${encodeURIComponent(clientId)}`, base);
        wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
        socket = new WebSocket(wsUrl);
        socket.binaryType = 'arraybuffer';
        socket.onopen = () => handlers.onStatusChange?.(true);
        socket.onmessage = (ev: MessageEvent<unknown>) => {
          if (ev.data instanceof ArrayBuffer) {
            const image = parsePreviewFrame(ev.data);
            if (image !== undefined) handlers.onPreview(image);
            return;
          }
          if (typeof ev.data !== 'string') return;
          let msg: unknown;
          try {
            msg = JSON.parse(ev.data);
          } catch {
            return;
          }
          const message = readMessage(msg);
          if (message !== undefined) handlers.onMessage(message);
        };
        socket.onclose = () => {
          handlers.onStatusChange?.(false);
          // The server restarts during development; reconnect quietly.
          if (!closed) retry = setTimeout(open, 1000);
        };
      };
      open();
      return () => {
        closed = true;
        if (retry !== undefined) clearTimeout(retry);
        socket?.close();
      };
    },
  };
}
