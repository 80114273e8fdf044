// Shared by the server tests: a real server on a free loopback port over temp folders, a JSON
// HTTP helper, and a WebSocket client that records every message it receives.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { WebSocket } from 'ws';
import { startServer, type RunningServer, type ServerOptions } from '../../server/api/index.ts';
import { serverMessageSchema } from '../../server/protocol/index.ts';
import { serverTestNodes } from './fixtures/nodes.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');

export interface TestServer extends RunningServer {
  root: string;
  outputDir: string;
  inputDir: string;
  dataDir: string;
  logs: string[];
}

export async function startTestServer(opts: ServerOptions & { root?: string } = {}): Promise<TestServer> {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-server-'));
  const outputDir = path.join(root, 'output');
  const inputDir = path.join(root, 'input');
  const dataDir = path.join(root, 'data');
  const logs: string[] = [];
  const server = await startServer({
    port: 0,
    outputDir,
    inputDir,
    tempDir: path.join(root, 'temp'),
    modelsDir: path.join(root, 'models'),
    dataDir,
    nodes: serverTestNodes(),
    log: (m) => logs.push(m),
    ...opts,
  });
  return { ...server, root, outputDir, inputDir, dataDir, logs };
}

export interface JsonResponse {
  status: number;
  body: unknown;
  headers: Headers;
}

export async function request(
  url: string,
  init: {
    method?: string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    /** Gives up (rejects) after this long; default: waits as long as the server takes. */
    timeoutMs?: number;
  } = {},
): Promise<JsonResponse> {
  const hasBody = init.body !== undefined || init.raw !== undefined;
  const res = await fetch(url, {
    method: init.method ?? (hasBody ? 'POST' : 'GET'),
    headers: { ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
    ...(init.timeoutMs !== undefined && { signal: AbortSignal.timeout(init.timeoutMs) }),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, headers: res.headers };
}

export type Message = { type: string; data: Record<string, unknown> };

export interface WsClient {
  ws: WebSocket;
  messages: Message[];
  binary: Buffer[];
  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor(pred: (m: Message) => boolean, timeoutMs?: number): Promise<Message>;
  close(): void;
}

export function wsUrl(httpUrl: string, clientId: string): string {
  return `${httpUrl.replace(/^http/, 'ws')}/ws?clientId=${encodeURIComponent(clientId)}`;
}

/**
 * Every message a test receives is one of the protocol's, with no field the protocol does not
 * name: a message that is not fails the test run (thrown where the socket delivers it).
 */
function checkProtocol(m: unknown): void {
  const parsed = serverMessageSchema.safeParse(m);
  if (!parsed.success) {
    throw new Error(`WebSocket message outside the protocol: ${JSON.stringify(m)}: ${parsed.error.message}`);
  }
  if (!isDeepStrictEqual(parsed.data, m)) {
    throw new Error(`WebSocket message with fields the protocol does not name: ${JSON.stringify(m)}`);
  }
}

export async function connect(
  httpUrl: string,
  clientId: string,
  options: { headers?: Record<string, string> } = {},
): Promise<WsClient> {
  const ws = new WebSocket(wsUrl(httpUrl, clientId), { headers: options.headers });
  const messages: Message[] = [];
  const binary: Buffer[] = [];
  const waiters: { pred: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data)
      ? data
      : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
    if (isBinary) {
      binary.push(buf);
      return;
    }
    const m = JSON.parse(buf.toString('utf8')) as Message;
    checkProtocol(m);
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  // The server's first message is `status` with our sid; wait for it so nothing is missed.
  await new Promise<void>((resolve) => {
    const check = () => (messages.some((m) => m.type === 'status') ? resolve() : setTimeout(check, 5));
    check();
  });
  return {
    ws,
    messages,
    binary,
    waitFor(pred, timeoutMs = 20_000) {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise<Message>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('timed out waiting for a WebSocket message')),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
    close: () => ws.close(),
  };
}

export const isDone = (promptId: string) => (m: Message) =>
  m.type === 'executing' && m.data.node === null && m.data.prompt_id === promptId;

/** A prompt whose TestFileWriter output node writes `${prefix}.txt` with the value of a slow node. */
export function slowPrompt(
  value: number,
  opts: { steps?: number; delayMs?: number; prefix?: string } = {},
): Record<string, unknown> {
  return {
    '1': { class_type: 'TestInt', inputs: { value } },
    '2': {
      class_type: 'TestSlow',
      inputs: { value: ['1', 0], steps: opts.steps ?? 3, delay_ms: opts.delayMs ?? 5 },
    },
    '3': {
      class_type: 'TestFileWriter',
      inputs: { value: ['2', 0], filename_prefix: opts.prefix ?? `out_${value}` },
    },
  };
}

/** Polls `fn` until it returns a value other than undefined. */
export async function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Raw HTTP GET with the path sent byte for byte (fetch would normalise `..` and `%2e`). */
export function rawGet(
  port: number,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    sock.on('error', reject);
    sock.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    const all = { Host: `127.0.0.1:${port}`, ...headers, Connection: 'close' };
    const lines = Object.entries(all)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    sock.write(`GET ${target} HTTP/1.1\r\n${lines}\r\n`);
  });
}

export interface SpawnedServer {
  child: ChildProcess;
  url: string;
  port: number;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Resolves when the process has exited (by itself or killed). */
  exited: Promise<number | null>;
}

/** A server over ROOT's folders in its own process (tests/server/fixtures/serve.ts; flags after ROOT). */
export function spawnServerProcess(root: string, ...flags: string[]): Promise<SpawnedServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('tests', 'server', 'fixtures', 'serve.ts'), root, ...flags],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) {
        const port = Number(m[1]);
        resolve({ child, url: `http://127.0.0.1:${port}`, port, stderr: () => err, exited });
      }
    });
    void exited.then((code) => reject(new Error(`server exited (${code}) before it was ready: ${err}`)));
  });
}
