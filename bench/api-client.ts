// A minimal client of the rdflow server (ComfyUI protocol, spec api.md) for the server benchmarks:
// one WebSocket for events and pings, POST /prompt, POST /interrupt, waiting for a prompt to end.
import WebSocket from 'ws';
import type { ApiPrompt } from '../server/engine/types.ts';

interface WsMessage {
  type: string;
  data: { prompt_id?: string; node?: string | null };
}

export interface ApiClient {
  /** Queues a prompt; resolves to its prompt_id. */
  queue(prompt: ApiPrompt): Promise<string>;
  /** Resolves when `executing {node: null}` arrives for the prompt (it ended, however). */
  done(promptId: string): Promise<void>;
  /** Resolves on the first `progress` message of the prompt (a UNet step has finished, more follow). */
  progress(promptId: string): Promise<void>;
  interrupt(): Promise<void>;
  /** Round trip of one WebSocket protocol ping (answered by the server's `ws` on its event loop), ms. */
  ping(): Promise<number>;
  close(): void;
}

export async function connect(url: string): Promise<ApiClient> {
  const clientId = `bench-${process.pid}`;
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const ended = new Set<string>();
  const progressed = new Set<string>();
  const waiters: (() => void)[] = [];
  ws.on('message', (raw, isBinary) => {
    if (isBinary) return;
    const m = JSON.parse(String(raw)) as WsMessage;
    const id = m.data?.prompt_id;
    if (!id) return;
    if (m.type === 'executing' && m.data.node === null) ended.add(id);
    if (m.type === 'progress') progressed.add(id);
    for (const w of waiters.splice(0)) w();
  });
  const until = (test: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => (test() ? resolve() : waiters.push(check));
      check();
    });
  const post = async (route: string, body: unknown) => {
    const res = await fetch(`${url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`POST ${route}: ${res.status} ${JSON.stringify(json).slice(0, 1000)}`);
    return json;
  };
  return {
    async queue(prompt) {
      const r = await post('/prompt', { prompt, client_id: clientId });
      return String(r.prompt_id);
    },
    done: (id) => until(() => ended.has(id)),
    progress: (id) => until(() => progressed.has(id) || ended.has(id)),
    async interrupt() {
      await post('/interrupt', {});
    },
    ping: () =>
      new Promise<number>((resolve) => {
        const t = performance.now();
        ws.once('pong', () => resolve(performance.now() - t));
        ws.ping();
      }),
    close: () => ws.close(),
  };
}
