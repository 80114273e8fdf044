// The inference worker: owns the onnxruntime sessions, because session.run() blocks the thread it
// runs on. Handles one message at a time in arrival order; feeds arrive in shared memory and are
// copied into buffers this thread reuses, results go back with their buffers transferred.
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { ValueSpec } from './io.ts';
import type { OpenResult, Request, Response, WireData, WireTensor } from './protocol.ts';

if (!parentPort) throw new Error('server/runtime/worker.ts must run in a worker thread');
const port = parentPort;

const sessions = new Map<string, ort.InferenceSession>();

function specs(meta: readonly ort.InferenceSession.ValueMetadata[]): ValueSpec[] {
  return meta.map((m) =>
    m.isTensor
      ? {
          name: m.name,
          type: m.type,
          // An unnamed dynamic axis reads as a non-positive number or an empty name: call it '?'.
          shape: m.shape.map((d) => (typeof d === 'number' ? (d > 0 ? d : '?') : d || '?')),
        }
      : { name: m.name, type: 'non-tensor', shape: null },
  );
}

async function open(
  key: string,
  file: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<OpenResult> {
  let s = sessions.get(key);
  if (!s) {
    // Opened by path: onnxruntime finds external weight files relative to the model file.
    s = await ort.InferenceSession.create(file, options);
    sessions.set(key, s);
  }
  return { inputs: specs(s.inputMetadata), outputs: specs(s.outputMetadata) };
}

/**
 * Plain buffers the staged feeds are copied into for onnxruntime (which takes no shared memory),
 * by type and length, reused by every call: this thread makes no garbage per call, which it would
 * keep until one of its rare collections (see FeedStaging in sessions.ts).
 */
const feedBuffers = new Map<string, WireData[]>();

function unshared(data: WireData, taken: Array<[string, WireData]>): WireData {
  if (!(data.buffer instanceof SharedArrayBuffer)) return data;
  const key = `${data.constructor.name}:${data.length}`;
  const own =
    feedBuffers.get(key)?.pop() ?? new (data.constructor as new (n: number) => WireData)(data.length);
  own.set(data as never);
  taken.push([key, own]);
  return own;
}

function ownBuffer(data: WireData): WireData {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}

async function run(
  key: string,
  feeds: Record<string, WireTensor>,
  fetches: readonly string[],
): Promise<Record<string, WireTensor>> {
  const s = sessions.get(key);
  if (!s) throw new Error(`session ${key} is not open`);
  const inputs: Record<string, ort.Tensor> = {};
  const taken: Array<[string, WireData]> = [];
  let out: ort.InferenceSession.ReturnType;
  try {
    for (const [name, t] of Object.entries(feeds)) {
      inputs[name] = new ort.Tensor(t.type, unshared(t.data, taken), t.dims);
    }
    out = await s.run(inputs, [...fetches]);
  } finally {
    for (const [key, b] of taken) {
      let list = feedBuffers.get(key);
      if (!list) feedBuffers.set(key, (list = []));
      list.push(b);
    }
  }
  const result: Record<string, WireTensor> = {};
  for (const name of fetches) {
    const t = out[name];
    result[name] = {
      type: t.type as WireTensor['type'],
      dims: [...t.dims],
      data: ownBuffer(t.data as WireData),
    };
  }
  return result;
}

async function handle(req: Request): Promise<Response> {
  try {
    switch (req.op) {
      case 'open':
        return {
          id: req.id,
          ok: true,
          result: await open(req.key, req.file, { ...req.options } as ort.InferenceSession.SessionOptions),
        };
      case 'run':
        return { id: req.id, ok: true, result: await run(req.key, req.feeds, req.fetches) };
      case 'close': {
        const s = sessions.get(req.key);
        sessions.delete(req.key);
        await s?.release();
        return { id: req.id, ok: true, result: null };
      }
      case 'release':
      case 'shutdown': {
        const all = [...sessions.values()];
        sessions.clear();
        await Promise.all(all.map((s) => s.release()));
        return { id: req.id, ok: true, result: null };
      }
    }
  } catch (e) {
    return { id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

// One request at a time, in order: a close or release never lands while a run is in progress.
let queue: Promise<void> = Promise.resolve();
/** Set when shutdown arrives (not when its turn comes): calls queued behind it are not run. */
let stopping = false;

function reply(req: Request, res: Response): void {
  const transfer: ArrayBuffer[] = [];
  if (res.ok && req.op === 'run' && res.result) {
    for (const t of Object.values(res.result as Record<string, WireTensor>))
      transfer.push(t.data.buffer as ArrayBuffer);
  }
  port.postMessage(res, transfer);
}

port.on('message', (req: Request) => {
  if (req.op === 'shutdown') stopping = true;
  queue = queue.then(async () => {
    if (req.op === 'shutdown') {
      await handle({ id: req.id, op: 'release' });
      // Terminating a thread while onnxruntime runs in it aborts the process; ending it from
      // inside, between calls, is safe: with the port closed the thread's event loop empties.
      port.close();
      return;
    }
    reply(req, stopping ? { id: req.id, ok: false, error: 'runtime closed' } : await handle(req));
  });
});
