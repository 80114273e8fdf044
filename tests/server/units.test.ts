// The server's pure pieces on their own: the persistent queue's order and durability, history
// bounds, the event → message mapping and the hub's buffer policy (limits: tests/security/limits.test.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createHub, previewFrame } from '../../server/api/hub.ts';
import { toWire } from '../../server/api/messages.ts';
import type { HistoryEntry } from '../../server/api/queue.ts';
import { openStore } from '../../server/api/store.ts';
import { allNodes } from '../../nodes/index.ts';
import { createRegistry } from '../../server/engine/index.ts';
import type { EngineEvent } from '../../server/engine/types.ts';
import {
  HistoryEntrySchema,
  ObjectInfoSchema,
  queueStatus,
  readerMessageSchema,
  serverMessageSchema,
} from '../../server/protocol/index.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-store-'));
const item = (promptId: string) => ({
  promptId,
  prompt: { '1': { class_type: 'TestInt', inputs: { value: 1 } } },
  extraData: {},
  outputs: ['1'],
});
const entry = (id: string): HistoryEntry => ({
  prompt: [0, id, {}, {}, []],
  outputs: {},
  status: { status_str: 'success', completed: true, messages: [] },
  meta: {},
});

describe('the LMDB prompt queue', () => {
  it('is FIFO, front jumps (latest front first), and survives reopening', async () => {
    const dir = tmp();
    let store = openStore(dir);
    await store.queue.enqueue(item('a'));
    await store.queue.enqueue(item('b'));
    await store.queue.enqueue(item('c'), { front: true });
    await store.queue.enqueue(item('d'), { front: true });
    expect((await store.queue.pending()).map((i) => i.promptId)).toEqual(['d', 'c', 'a', 'b']);
    expect((await store.queue.next())?.promptId).toBe('d');
    expect((await store.queue.running())?.promptId).toBe('d');
    expect(await store.queue.remaining()).toBe(4);
    await store.close();

    store = openStore(dir);
    expect((await store.queue.running())?.promptId).toBe('d');
    expect((await store.queue.pending()).map((i) => i.promptId)).toEqual(['c', 'a', 'b']);
    expect(await store.queue.delete(['a', 'zzz'])).toEqual(['a']);
    await store.queue.complete('d');
    expect(await store.queue.running()).toBeUndefined();
    const e = await store.queue.enqueue(item('e'));
    // Numbers keep growing across reopenings.
    expect(e.number).toBeGreaterThanOrEqual(4);
    expect((await store.queue.pending()).map((i) => i.promptId)).toEqual(['c', 'b', 'e']);
    await store.queue.clear();
    expect(await store.queue.next()).toBeUndefined();
    await store.close();
  });

  it('orders an explicit `number` among the others, equal numbers first come first served', async () => {
    const store = openStore(tmp());
    await store.queue.enqueue(item('a'));
    await store.queue.enqueue(item('b'));
    await store.queue.enqueue({ ...item('x'), number: 0.5 });
    await store.queue.enqueue({ ...item('y'), number: 0.5 });
    expect((await store.queue.pending()).map((i) => i.promptId)).toEqual(['a', 'x', 'y', 'b']);
    await store.close();
  });

  it('keeps history bounded, newest last, and answers max_items with the newest', async () => {
    const store = openStore(tmp(), { historyLimit: 5 });
    for (let i = 0; i < 8; i++) await store.history.put(`p${i}`, entry(`p${i}`));
    expect((await store.history.list()).map(([id]) => id)).toEqual(['p3', 'p4', 'p5', 'p6', 'p7']);
    expect((await store.history.list(2)).map(([id]) => id)).toEqual(['p6', 'p7']);
    expect(await store.history.get('p0')).toBeUndefined();
    expect((await store.history.get('p5'))?.prompt[1]).toBe('p5');
    await store.history.delete(['p5']);
    expect(await store.history.get('p5')).toBeUndefined();
    expect(HistoryEntrySchema.parse(await store.history.get('p6'))).toEqual(entry('p6'));
    await store.history.clear();
    expect(await store.history.list()).toEqual([]);
    await store.close();
  });
});

/** Node 3 failed after node 1 ran. */
const nodeFailed: EngineEvent = {
  type: 'execution_error',
  promptId: 'p',
  nodeId: '3',
  nodeType: 'X',
  executed: ['1'],
  exceptionMessage: 'm',
  exceptionType: 'Error',
  traceback: ['at x'],
  currentInputs: { a: 1 },
  currentOutputs: {},
};

describe('engine events on the wire', () => {
  it('uses snake_case fields and forwards the loop position', () => {
    expect(toWire(nodeFailed)).toMatchObject({
      kind: 'json',
      type: 'execution_error',
      data: { prompt_id: 'p', node_id: '3', node_type: 'X', exception_message: 'm', exception_type: 'Error' },
    });
    expect(
      toWire({ type: 'progress', promptId: 'p', node: '5', value: 2, max: 50, iteration: 1, iterations: 6 }),
    ).toMatchObject({
      data: { value: 2, max: 50, node: '5', prompt_id: 'p', iteration: 1, iterations: 6 },
      droppable: true,
    });
    expect(
      toWire({ type: 'loop_iteration', promptId: 'p', node: '7', iteration: 2, iterations: 6 }),
    ).toMatchObject({
      type: 'iteration',
      data: { node: '7', iteration: 2, iterations: 6, prompt_id: 'p' },
    });
    expect(
      toWire({ type: 'execution_interrupted', promptId: 'p', nodeId: '2', nodeType: 'X', executed: [] }),
    ).toMatchObject({
      toAll: true,
    });
  });

  it('every event becomes a protocol message with exactly its fields, which the editor can read', () => {
    const events: EngineEvent[] = [
      { type: 'execution_start', promptId: 'p', timestamp: 1 },
      { type: 'execution_cached', promptId: 'p', nodes: ['1'], timestamp: 2 },
      { type: 'executing', promptId: 'p', node: '2', displayNode: '2' },
      { type: 'progress', promptId: 'p', node: '2', value: 1, max: 4 },
      { type: 'progress', promptId: 'p', node: '2', value: 1, max: 4, iteration: 0, iterations: 3 },
      { type: 'loop_iteration', promptId: 'p', node: '5', iteration: 1, iterations: 3 },
      {
        type: 'executed',
        promptId: 'p',
        node: '8',
        displayNode: '8',
        output: { images: [{ filename: 'a' }] },
      },
      { type: 'execution_success', promptId: 'p', timestamp: 3 },
      nodeFailed,
      { type: 'execution_interrupted', promptId: 'p', nodeId: '2', nodeType: 'X', executed: [] },
    ];
    for (const e of events) {
      const w = toWire(e);
      if (w.kind !== 'json') throw new Error(`${e.type} is not JSON`);
      const message = JSON.parse(JSON.stringify({ type: w.type, data: w.data })) as unknown;
      expect(serverMessageSchema.parse(message), e.type).toStrictEqual(message);
      expect(readerMessageSchema.safeParse(message).success, e.type).toBe(true);
    }
    // Outside a loop, progress carries no loop fields at all.
    const w = toWire(events[3]);
    expect(w.kind === 'json' && Object.keys(w.data)).toEqual(['value', 'max', 'prompt_id', 'node']);
  });

  it('status carries the queue length, and the sid only for the socket it greets', () => {
    expect(queueStatus(2)).toEqual({
      type: 'status',
      data: { status: { exec_info: { queue_remaining: 2 } } },
    });
    expect(queueStatus(0, 'c').data).toEqual({ status: { exec_info: { queue_remaining: 0 } }, sid: 'c' });
    expect(serverMessageSchema.parse(queueStatus(0, 'c'))).toEqual(queueStatus(0, 'c'));
  });

  it('the editor reads a message with only the fields it acts on, and refuses one without them', () => {
    expect(readerMessageSchema.safeParse({ type: 'execution_start', data: { prompt_id: 'p' } }).success).toBe(
      true,
    );
    expect(readerMessageSchema.safeParse({ type: 'executing', data: { prompt_id: 'p' } }).success).toBe(
      false,
    );
    expect(readerMessageSchema.safeParse({ type: 'crystools.monitor', data: {} }).success).toBe(false);
  });

  it("every shipped node type's /object_info entry fits the protocol the editor reads", () => {
    const dir = tmp();
    const paths = { output: dir, input: dir, temp: dir, models: path.join(dir, 'models') };
    const info = createRegistry(allNodes).objectInfo({ paths });
    expect(Object.keys(ObjectInfoSchema.parse(info))).toEqual(allNodes.map((n) => n.name));
  });

  it('frames previews as ComfyUI does', () => {
    const f = previewFrame('jpeg', Uint8Array.from([9, 8]));
    expect([...f]).toEqual([0, 0, 0, 1, 0, 0, 0, 1, 9, 8]);
  });
});

/** A stand-in socket whose buffered amount the test sets. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  sent: unknown[] = [];
  terminated = false;
  send(data: unknown) {
    this.sent.push(data);
  }
  terminate() {
    this.terminated = true;
    this.readyState = 3;
    this.emit('close');
  }
  ping() {}
}

describe('the hub', () => {
  it('drops droppable messages above the soft limit and closes a socket above the hard limit', () => {
    const hub = createHub({ softLimitBytes: 100, hardLimitBytes: 1000 });
    const slow = new FakeSocket();
    const ok = new FakeSocket();
    hub.add(slow as unknown as WebSocket, 'a');
    hub.add(ok as unknown as WebSocket, 'b');
    slow.bufferedAmount = 500;
    hub.sendBinary(Uint8Array.from([1]), null);
    hub.send('progress', {}, null, { droppable: true });
    hub.send('executing', {}, null);
    expect(slow.sent).toHaveLength(1);
    expect(ok.sent).toHaveLength(3);
    slow.bufferedAmount = 5000;
    hub.send('executing', {}, null);
    expect(slow.terminated).toBe(true);
    expect(ok.sent).toHaveLength(4);
    expect(hub.stats()).toEqual({ clients: 1, dropped: 2, closedSlow: 1 });
    // Per-client messages reach only that client's sockets.
    hub.send('executed', {}, 'b');
    hub.send('executed', {}, 'nobody');
    expect(ok.sent).toHaveLength(5);
    hub.close();
  });
});
