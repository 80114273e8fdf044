// The protocol of api.md, driven over real HTTP and WebSocket against a server on a free loopback
// port: message order, history and /view, caching, validation errors, queue order, interrupt.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileRefSchema,
  HistorySchema,
  ObjectInfoSchema,
  QueueStateSchema,
} from '../../server/protocol/index.ts';
import {
  connect,
  isDone,
  request,
  slowPrompt,
  startTestServer,
  until,
  type Message,
  type TestServer,
} from './helpers.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

type PromptReply = { prompt_id: string; number: number; node_errors: Record<string, unknown> };

async function queuePrompt(prompt: unknown, extra: Record<string, unknown> = {}): Promise<PromptReply> {
  const res = await request(`${server.url}/prompt`, { body: { prompt, ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as PromptReply;
}

const forPrompt = (messages: Message[], id: string) => messages.filter((m) => m.data.prompt_id === id);

describe('a prompt through /prompt, the WebSocket and /history', () => {
  it('emits execution_start, executing, progress, executed, execution_success, then executing null', async () => {
    const ws = await connect(server.url, 'order-client');
    const { prompt_id, number, node_errors } = await queuePrompt(slowPrompt(7, { prefix: 'order' }), {
      client_id: 'order-client',
    });
    expect(typeof number).toBe('number');
    expect(node_errors).toEqual({});
    await ws.waitFor(isDone(prompt_id));
    const types = forPrompt(ws.messages, prompt_id).map((m) => m.type);
    const first = (t: string) => types.indexOf(t);
    expect(first('execution_start')).toBe(0);
    expect(first('execution_start')).toBeLessThan(first('executing'));
    expect(first('executing')).toBeLessThan(first('progress'));
    expect(first('progress')).toBeLessThan(first('executed'));
    expect(first('executed')).toBeLessThan(first('execution_success'));
    expect(types.at(-1)).toBe('executing');
    expect(forPrompt(ws.messages, prompt_id).at(-1)?.data).toEqual({
      node: null,
      display_node: null,
      prompt_id,
    });

    const progress = forPrompt(ws.messages, prompt_id).filter((m) => m.type === 'progress');
    expect(progress.map((m) => m.data.value)).toEqual([1, 2, 3]);
    expect(progress[0].data).toMatchObject({ max: 3, node: '2', prompt_id });
    const executed = forPrompt(ws.messages, prompt_id).find((m) => m.type === 'executed')!;
    expect(executed.data).toMatchObject({ node: '3', display_node: '3', prompt_id });

    // History is written before `executing null`, so it is there the moment the client sees it.
    const hist = await request(`${server.url}/history/${prompt_id}`);
    const entry = HistorySchema.parse(hist.body)[prompt_id];
    expect(entry.status.status_str).toBe('success');
    expect(entry.status.completed).toBe(true);
    expect(entry.status.messages.map(([t]) => t)).toContain('execution_success');
    expect(entry.prompt[1]).toBe(prompt_id);
    expect(entry.prompt[4]).toEqual(['3']);
    const image = FileRefSchema.parse(entry.outputs['3'].images[0]);
    expect(image).toEqual({ filename: 'order.txt', subfolder: '', type: 'output' });

    const file = await fetch(
      `${server.url}/view?filename=${encodeURIComponent(image.filename)}&subfolder=${image.subfolder}&type=${image.type}`,
    );
    expect(file.status).toBe(200);
    expect((await file.text()).trim()).toBe('7');
    ws.close();
  });

  it('reports the same prompt again as cached (execution_cached lists the nodes)', async () => {
    const ws = await connect(server.url, 'cache-client');
    const prompt = slowPrompt(11, { prefix: 'cached' });
    const a = await queuePrompt(prompt, { client_id: 'cache-client' });
    await ws.waitFor(isDone(a.prompt_id));
    const b = await queuePrompt(prompt, { client_id: 'cache-client' });
    await ws.waitFor(isDone(b.prompt_id));
    const cached = forPrompt(ws.messages, b.prompt_id).find((m) => m.type === 'execution_cached')!;
    expect(cached.data.nodes).toEqual(expect.arrayContaining(['1', '2']));
    // Nothing of the cached nodes ran again: no progress from the slow node.
    expect(forPrompt(ws.messages, b.prompt_id).some((m) => m.type === 'progress')).toBe(false);
    expect(forPrompt(ws.messages, b.prompt_id).map((m) => m.type)).toContain('execution_success');
    ws.close();
  });

  it('serves every route under /api too', async () => {
    const a = await request(`${server.url}/api/object_info/TestInt`);
    const b = await request(`${server.url}/object_info/TestInt`);
    expect(a.status).toBe(200);
    expect(a.body).toEqual(b.body);
    // Every node type fits the protocol the editor reads /object_info with.
    expect(Object.keys(ObjectInfoSchema.parse((await request(`${server.url}/object_info`)).body))).toContain(
      'TestInt',
    );
    const info = ObjectInfoSchema.parse(a.body).TestInt;
    expect(info.input.required?.value[0]).toBe('INT');
    expect((await request(`${server.url}/api/prompt`)).body).toEqual({ exec_info: { queue_remaining: 0 } });
    const ws = await connect(server.url.replace(/$/, '/api'), 'api-ws');
    expect(ws.messages[0]).toEqual({
      type: 'status',
      data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'api-ws' },
    });
    ws.close();
  });
});

describe('validation errors', () => {
  it('answers a bad prompt with 400, the error shape and node_errors naming node and input', async () => {
    const bad = slowPrompt(1);
    (bad['2'] as { inputs: Record<string, unknown> }).inputs.steps = 0;
    const res = await request(`${server.url}/prompt`, { body: { prompt: bad } });
    expect(res.status).toBe(400);
    const body = res.body as {
      error: { type: string; message: string; details: string; extra_info: object };
      node_errors: Record<
        string,
        { errors: { type: string; extra_info: { input_name?: string } }[]; class_type: string }
      >;
    };
    expect(body.error.type).toBe('prompt_outputs_failed_validation');
    expect(typeof body.error.message).toBe('string');
    expect(body.node_errors['2'].class_type).toBe('TestSlow');
    expect(body.node_errors['2'].errors[0].type).toBe('value_smaller_than_min');
    expect(body.node_errors['2'].errors[0].extra_info.input_name).toBe('steps');
  });

  it('answers a body without a prompt with no_prompt', async () => {
    const res = await request(`${server.url}/prompt`, { body: { client_id: 'x' } });
    expect(res.status).toBe(400);
    expect((res.body as { error: { type: string } }).error.type).toBe('no_prompt');
  });

  it('rejects a prompt whose clip could not fit in memory, with a clear message', async () => {
    const huge = {
      '1': { class_type: 'TestSize', inputs: { width: 4096, height: 4096, frames: 1024, batch_size: 8 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    };
    const res = await request(`${server.url}/prompt`, { body: { prompt: huge } });
    expect(res.status).toBe(400);
    const body = res.body as {
      error: { details: string };
      node_errors: Record<string, { errors: { message: string }[] }>;
    };
    expect(body.node_errors['1'].errors[0].message).toMatch(/1024 frames × 4096×4096 × batch 8/);
    expect(body.error.details).toMatch(/GiB/);
  });
});

describe('formats and queue order', () => {
  it('accepts the canvas (litegraph) format', async () => {
    const canvas = {
      last_node_id: 2,
      last_link_id: 1,
      nodes: [
        {
          id: 1,
          type: 'TestInt',
          pos: [0, 0],
          size: [200, 80],
          mode: 0,
          inputs: [],
          outputs: [{ name: 'INT', type: 'INT', links: [1] }],
          widgets_values: [42],
        },
        {
          id: 2,
          type: 'TestCollect',
          pos: [300, 0],
          size: [200, 80],
          mode: 0,
          inputs: [{ name: 'value', type: '*', link: 1 }],
          outputs: [],
          widgets_values: [''],
        },
      ],
      links: [[1, 1, 0, 2, 0, 'INT']],
      groups: [],
      config: {},
      extra: {},
      version: 0.4,
    };
    const ws = await connect(server.url, 'canvas-client');
    const { prompt_id } = await queuePrompt(canvas, { client_id: 'canvas-client' });
    await ws.waitFor(isDone(prompt_id));
    const executed = forPrompt(ws.messages, prompt_id).find((m) => m.type === 'executed')!;
    expect(executed.data.output).toEqual({ values: [42] });
    ws.close();
  });

  it('runs FIFO, `front: true` jumps the queue, GET /queue lists running and pending', async () => {
    const ws = await connect(server.url, 'order2');
    const blocker = await queuePrompt(slowPrompt(100, { steps: 10, delayMs: 20, prefix: 'blocker' }), {
      client_id: 'order2',
    });
    await ws.waitFor((m) => m.type === 'execution_start' && m.data.prompt_id === blocker.prompt_id);
    const a = await queuePrompt(slowPrompt(101), { client_id: 'order2' });
    const b = await queuePrompt(slowPrompt(102), { client_id: 'order2' });
    const c = await queuePrompt(slowPrompt(103), { client_id: 'order2', front: true });
    const q = QueueStateSchema.parse((await request(`${server.url}/queue`)).body);
    expect(q.queue_running.map((t) => t[1])).toEqual([blocker.prompt_id]);
    expect(q.queue_pending.map((t) => t[1])).toEqual([c.prompt_id, a.prompt_id, b.prompt_id]);
    await ws.waitFor(isDone(b.prompt_id));
    const starts = ws.messages.filter((m) => m.type === 'execution_start').map((m) => m.data.prompt_id);
    const ours = starts.filter((id) => [a, b, c].some((p) => p.prompt_id === id));
    expect(ours).toEqual([c.prompt_id, a.prompt_id, b.prompt_id]);
    ws.close();
  });

  it('POST /queue {delete} removes a pending prompt; replies {} as JSON', async () => {
    const ws = await connect(server.url, 'del');
    const blocker = await queuePrompt(slowPrompt(200, { steps: 10, delayMs: 20, prefix: 'blk2' }), {
      client_id: 'del',
    });
    const victim = await queuePrompt(slowPrompt(201), { client_id: 'del' });
    const res = await request(`${server.url}/queue`, { body: { delete: [victim.prompt_id] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    await ws.waitFor(isDone(blocker.prompt_id));
    expect(ws.messages.some((m) => m.data.prompt_id === victim.prompt_id)).toBe(false);
    expect((await request(`${server.url}/history/${victim.prompt_id}`)).body).toEqual({});
    ws.close();
  });
});

describe('interrupt', () => {
  it('stops the running prompt: execution_interrupted to all, executing null, history records it', async () => {
    const owner = await connect(server.url, 'int-owner');
    const other = await connect(server.url, 'int-other');
    const { prompt_id } = await queuePrompt(slowPrompt(300, { steps: 500, delayMs: 10, prefix: 'int' }), {
      client_id: 'int-owner',
    });
    await owner.waitFor((m) => m.type === 'progress' && m.data.prompt_id === prompt_id);
    // Naming another prompt interrupts nothing.
    expect((await request(`${server.url}/interrupt`, { body: { prompt_id: 'not-this-one' } })).body).toEqual(
      {},
    );
    const res = await request(`${server.url}/interrupt`, { body: { prompt_id } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    const interrupted = await owner.waitFor((m) => m.type === 'execution_interrupted');
    expect(interrupted.data).toMatchObject({ prompt_id, node_id: '2', node_type: 'TestSlow' });
    await other.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === prompt_id);
    await owner.waitFor(isDone(prompt_id));
    const progress = forPrompt(owner.messages, prompt_id).filter((m) => m.type === 'progress');
    expect(progress.length).toBeLessThan(500);
    const entry = (
      (await request(`${server.url}/history/${prompt_id}`)).body as Record<
        string,
        { status: { status_str: string; completed: boolean } }
      >
    )[prompt_id];
    expect(entry.status).toMatchObject({ status_str: 'error', completed: false });
    owner.close();
    other.close();
  });

  it('tells a client that reconnects mid-run which node its prompt executes', async () => {
    const ws = await connect(server.url, 'reconnect');
    const { prompt_id } = await queuePrompt(slowPrompt(302, { steps: 500, delayMs: 10, prefix: 'rc' }), {
      client_id: 'reconnect',
    });
    await ws.waitFor((m) => m.type === 'progress' && m.data.prompt_id === prompt_id);
    ws.close();
    const again = await connect(server.url, 'reconnect');
    const executing = await again.waitFor((m) => m.type === 'executing');
    expect(executing.data).toEqual({ node: '2', display_node: '2', prompt_id });
    await request(`${server.url}/interrupt`, { body: { prompt_id } });
    await again.waitFor(isDone(prompt_id));
    again.close();
  });

  it('POST /interrupt without a body interrupts whatever runs', async () => {
    const ws = await connect(server.url, 'int2');
    const { prompt_id } = await queuePrompt(slowPrompt(301, { steps: 500, delayMs: 10, prefix: 'int2' }), {
      client_id: 'int2',
    });
    await ws.waitFor((m) => m.type === 'progress' && m.data.prompt_id === prompt_id);
    const res = await fetch(`${server.url}/interrupt`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    await ws.waitFor(isDone(prompt_id));
    expect(forPrompt(ws.messages, prompt_id).map((m) => m.type)).toContain('execution_interrupted');
    ws.close();
  });
});

describe('errors and previews', () => {
  it('a failing node ends with execution_error (snake_case fields) and executing null', async () => {
    const ws = await connect(server.url, 'err');
    const prompt = {
      '1': { class_type: 'TestThrow', inputs: { message: 'the node broke' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    };
    const { prompt_id } = await queuePrompt(prompt, { client_id: 'err' });
    await ws.waitFor(isDone(prompt_id));
    const err = forPrompt(ws.messages, prompt_id).find((m) => m.type === 'execution_error')!;
    expect(err.data).toMatchObject({
      prompt_id,
      node_id: '1',
      node_type: 'TestThrow',
      exception_message: 'the node broke',
    });
    expect(Object.keys(err.data)).toEqual(
      expect.arrayContaining([
        'executed',
        'exception_type',
        'traceback',
        'current_inputs',
        'current_outputs',
      ]),
    );
    const entry = (
      (await request(`${server.url}/history/${prompt_id}`)).body as Record<
        string,
        { status: { status_str: string } }
      >
    )[prompt_id];
    expect(entry.status.status_str).toBe('error');
    ws.close();
  });

  it('sends previews as binary frames: type 1, format 2 (PNG), then the bytes', async () => {
    const ws = await connect(server.url, 'prev');
    const prompt = {
      '1': { class_type: 'TestInt', inputs: { value: 5 } },
      '2': { class_type: 'TestPreviews', inputs: { value: ['1', 0], count: 3, bytes: 100, delay_ms: 0 } },
    };
    const { prompt_id } = await queuePrompt(prompt, { client_id: 'prev' });
    await ws.waitFor(isDone(prompt_id));
    expect(ws.binary).toHaveLength(3);
    for (const [i, frame] of ws.binary.entries()) {
      expect(frame.readUInt32BE(0)).toBe(1);
      expect(frame.readUInt32BE(4)).toBe(2);
      expect(frame.length).toBe(8 + 100);
      expect([...frame.subarray(8, 12)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
      expect(frame[frame.length - 1]).toBe(i);
    }
    ws.close();
  });
});

describe('other endpoints', () => {
  it('answers system_stats, embeddings, extensions, models, free and history queries truthfully', async () => {
    const stats = (await request(`${server.url}/system_stats`)).body as {
      system: { os: string; node_version: string; ram_total: number };
      devices: { type: string }[];
    };
    expect(stats.system.os).toBe(process.platform);
    expect(stats.system.node_version).toBe(process.version);
    expect(stats.system.ram_total).toBeGreaterThan(0);
    expect(stats.devices[0].type).toBe('cpu');
    expect((await request(`${server.url}/embeddings`)).body).toEqual([]);
    expect((await request(`${server.url}/extensions`)).body).toEqual([]);
    expect((await request(`${server.url}/models`)).body).toEqual(['video_models']);
    fs.mkdirSync(path.join(server.root, 'models', 'tiny'), { recursive: true });
    fs.writeFileSync(path.join(server.root, 'models', 'tiny', 'model_index.json'), '{}');
    expect((await request(`${server.url}/models/video_models`)).body).toEqual(['tiny']);

    const all = (await request(`${server.url}/history`)).body as Record<string, unknown>;
    const ids = Object.keys(all);
    expect(ids.length).toBeGreaterThan(2);
    const last2 = (await request(`${server.url}/history?max_items=2`)).body as Record<string, unknown>;
    expect(Object.keys(last2)).toEqual(ids.slice(-2));
    const del = await request(`${server.url}/history`, { body: { delete: [ids[0]] } });
    expect(del.body).toEqual({});
    expect((await request(`${server.url}/history/${ids[0]}`)).body).toEqual({});
  });

  it('POST /free {free_memory} clears the engine cache, so the same prompt runs again', async () => {
    const ws = await connect(server.url, 'free');
    const prompt = slowPrompt(500, { prefix: 'free' });
    const a = await queuePrompt(prompt, { client_id: 'free' });
    await ws.waitFor(isDone(a.prompt_id));
    const free = await request(`${server.url}/free`, { body: { unload_models: true, free_memory: true } });
    expect(free.status).toBe(200);
    expect(free.body).toEqual({});
    const b = await queuePrompt(prompt, { client_id: 'free' });
    await ws.waitFor(isDone(b.prompt_id));
    const cached = forPrompt(ws.messages, b.prompt_id).find((m) => m.type === 'execution_cached')!;
    expect(cached.data.nodes).toEqual([]);
    expect(forPrompt(ws.messages, b.prompt_id).some((m) => m.type === 'progress')).toBe(true);
    ws.close();
  });

  it('serves a page at / saying how to build the editor when it is not built', async () => {
    const s = await startTestServer({ clientDir: `${server.root}/no-client` });
    try {
      const res = await fetch(`${s.url}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('npm run build:client');
    } finally {
      await s.close();
    }
  });
});

describe('many clients', () => {
  it('20 WebSocket clients all receive every event of a prompt queued without client_id', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(server.url, `many-${i}`)));
    const { prompt_id } = await queuePrompt(slowPrompt(400, { prefix: 'many' }));
    await Promise.all(clients.map((c) => c.waitFor(isDone(prompt_id))));
    const seen = clients.map((c) => JSON.stringify(forPrompt(c.messages, prompt_id)));
    expect(forPrompt(clients[0].messages, prompt_id).length).toBeGreaterThan(5);
    for (const s of seen) expect(s).toBe(seen[0]);
    for (const c of clients) c.close();
  });

  it('100 prompts queued by 10 concurrent clients all complete, in queue order, none lost', async () => {
    const clients = await Promise.all(
      Array.from({ length: 10 }, (_, i) => connect(server.url, `burst-${i}`)),
    );
    const replies = await Promise.all(
      clients.map(async (_c, ci) => {
        const mine: PromptReply[] = [];
        for (let k = 0; k < 10; k++) {
          const prompt = {
            '1': { class_type: 'TestInt', inputs: { value: ci * 10 + k } },
            '2': { class_type: 'TestCollect', inputs: { value: ['1', 0], label: `burst ${ci}/${k}` } },
          };
          mine.push(await queuePrompt(prompt, { client_id: `burst-${ci}` }));
        }
        return mine;
      }),
    );
    await Promise.all(
      clients.map((c, ci) => Promise.all(replies[ci].map((r) => c.waitFor(isDone(r.prompt_id))))),
    );
    const all = replies.flat();
    expect(new Set(all.map((r) => r.prompt_id)).size).toBe(100);
    const history = (await request(`${server.url}/history`)).body as Record<
      string,
      { prompt: [number, string]; status: { status_str: string } }
    >;
    const done = Object.values(history).filter((e) => all.some((r) => r.prompt_id === e.prompt[1]));
    expect(done).toHaveLength(100);
    expect(done.every((e) => e.status.status_str === 'success')).toBe(true);
    // History is in completion order; completion follows the numbers the queue handed out.
    const numbers = done.map((e) => e.prompt[0]);
    expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
    // Each client's prompts ran in the order it queued them, and it got their results.
    for (const [ci, c] of clients.entries()) {
      const order = c.messages.filter((m) => m.type === 'execution_start').map((m) => m.data.prompt_id);
      expect(order).toEqual(replies[ci].map((r) => r.prompt_id));
      const values = c.messages
        .filter((m) => m.type === 'executed')
        .map((m) => (m.data.output as { values: number[] }).values[0]);
      expect(values).toEqual(Array.from({ length: 10 }, (_, k) => ci * 10 + k));
    }
    await until(
      async () =>
        ((await request(`${server.url}/prompt`)).body as { exec_info: { queue_remaining: number } }).exec_info
          .queue_remaining === 0 || undefined,
    );
    for (const c of clients) c.close();
  });
});
