// Limits are checked on values, not only on literals — over real HTTP to a real server, as an
// attacker or a clumsy user would send them: a size computed by IntMath, a loop count computed the
// same way, a size that grows with the loop index (known only while running), M over the clip's
// frames, a clip the model cannot take, a file name over 255 bytes, and INT inputs spelled oddly.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { serverTestNodes } from '../server/fixtures/nodes.ts';
import { request, startTestServer, until, type TestServer } from '../server/helpers.ts';

interface NodeErrorBody {
  error: { type: string; message: string; details: string };
  node_errors: Record<
    string,
    {
      class_type: string;
      errors: {
        type: string;
        message: string;
        extra_info: { input_name?: string; received_value?: unknown; linked_node?: unknown };
      }[];
    }
  >;
}

type History = Record<
  string,
  { status: { status_str: string; messages: [string, Record<string, unknown>][] } }
>;

// The test nodes already include the real loop nodes and IntMath.
const testNodes = serverTestNodes();
const nodes = [...testNodes, ...allNodes.filter((n) => !testNodes.some((t) => t.name === n.name))];
const shipped = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'workflows', 'vidrd-long-video.json'), 'utf8'),
) as Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** The shipped long-video workflow with some inputs changed: "node.input" → value. */
function workflow(set: Record<string, unknown>) {
  const wf = structuredClone(shipped);
  for (const [key, value] of Object.entries(set)) {
    const [id, name] = key.split('.');
    wf[id].inputs[name] = value;
  }
  return wf;
}

async function refused(server: TestServer, prompt: unknown): Promise<NodeErrorBody> {
  const res = await request(`${server.url}/prompt`, { body: { prompt } });
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  return res.body as NodeErrorBody;
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ nodes });
});
afterAll(async () => {
  await server?.close();
});

describe('values computed before the run', () => {
  it('refuses IntMath feeding frames 1024 and width 2048, naming node, input, value and limit; nothing is queued', async () => {
    const body = await refused(server, {
      '1': { class_type: 'IntMath', inputs: { a: 512, b: 2, op: 'multiply' } },
      '2': { class_type: 'IntMath', inputs: { a: 1024, b: 2, op: 'multiply' } },
      '3': {
        class_type: 'NoiseInit',
        inputs: { seed: 0, frames: ['1', 0], width: ['2', 0], height: 2048, batch_size: 1 },
      },
      '4': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    expect(body.error.type).toBe('prompt_outputs_failed_validation');
    expect(Object.keys(body.node_errors)).toEqual(['3']);
    expect(body.node_errors['3'].class_type).toBe('NoiseInit');
    const [e] = body.node_errors['3'].errors;
    expect(e.extra_info).toMatchObject({ input_name: 'frames', received_value: 1024 });
    expect(e.message).toContain("Input 'frames' = 1024");
    expect(e.message).toContain('1024 frames × 2048×2048 × batch 1');
    expect(e.message).toContain(`the server limit is ${2 ** 28} pixel-frames (allowed: at most ${2 ** 28})`);
    expect(body.error.details).toContain('node 3 (NoiseInit)');
    const queue = (await request(`${server.url}/queue`)).body as { queue_pending: unknown[] };
    expect(queue.queue_pending).toEqual([]);
  });

  it('checks a computed value against the input range, naming the node it came from', async () => {
    const body = await refused(server, {
      '1': { class_type: 'IntMath', inputs: { a: 1000, b: 1000, op: 'add' } },
      '3': {
        class_type: 'NoiseInit',
        inputs: { seed: 0, frames: ['1', 0], width: 64, height: 64, batch_size: 1 },
      },
      '4': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    expect(body.node_errors['3'].errors).toMatchObject([
      {
        type: 'value_bigger_than_max',
        extra_info: { input_name: 'frames', received_value: 2000, linked_node: ['1', 0] },
      },
    ]);
    expect(body.node_errors['3'].errors[0].message).toMatch(/computed from node 1.*allowed: 1 to 1024/);
  });

  it('applies the configured loop cap to an iteration count computed by IntMath', async () => {
    const s = await startTestServer({ nodes, limits: { maxIterations: 50 } });
    try {
      const body = await refused(s, {
        '1': { class_type: 'IntMath', inputs: { a: 10, b: 6, op: 'multiply' } },
        '2': { class_type: 'LoopStart', inputs: { iterations: ['1', 0] } },
        '3': { class_type: 'TestCollect', inputs: { value: ['2', 1] } },
        '4': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
      });
      expect(body.node_errors['2'].errors[0].extra_info).toMatchObject({
        input_name: 'iterations',
        received_value: 60,
      });
      expect(body.node_errors['2'].errors[0].message).toMatch(
        /60 loop iterations exceed the server limit of 50/,
      );
    } finally {
      await s.close();
    }
  });
});

describe('values known only while running', () => {
  it('stops the node before it allocates when a size derived from the loop index passes the limit', async () => {
    const pixels = 64 * 64 * 50;
    const s = await startTestServer({ nodes, limits: { maxClipPixels: pixels } });
    try {
      // frames = 100 × index + 8: 8 in iteration 0, 108 in iteration 1.
      const prompt = {
        '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
        '2': { class_type: 'IntMath', inputs: { a: ['1', 1], b: 100, op: 'multiply' } },
        '3': { class_type: 'IntMath', inputs: { a: ['2', 0], b: 8, op: 'add' } },
        '4': {
          class_type: 'NoiseInit',
          inputs: { seed: 0, frames: ['3', 0], width: 64, height: 64, batch_size: 1 },
        },
        '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
        '6': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
      };
      const res = await request(`${s.url}/prompt`, { body: { prompt } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const id = (res.body as { prompt_id: string }).prompt_id;
      const entry = await until(async () => {
        const h = (await request(`${s.url}/history/${id}`)).body as History;
        return h[id];
      });
      expect(entry.status.status_str).toBe('error');
      const error = entry.status.messages.find(([type]) => type === 'execution_error')?.[1];
      expect(error).toMatchObject({ node_id: '4', node_type: 'NoiseInit' });
      const message = String(error?.exception_message);
      expect(message).toContain("Input 'frames' = 108");
      expect(message).toContain('108 frames × 64×64 × batch 1');
      expect(message).toContain(`allowed: at most ${pixels}`);
    } finally {
      await s.close();
    }
  });
});

describe('checks that used to happen mid-run happen at validation', () => {
  it('refuses reference_frames over the frames of the noise', async () => {
    const body = await refused(server, {
      '1': { class_type: 'NoiseInit', inputs: { seed: 0, frames: 8, width: 64, height: 64, batch_size: 1 } },
      '2': { class_type: 'FNRReverse', inputs: { noise: ['1', 0] } },
      '3': {
        class_type: 'PNSNoise',
        inputs: { noise: ['2', 0], alpha: 4, reference_frames: 12, seed: 0, clip_index: 1 },
      },
      '4': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    expect(body.node_errors['3'].errors).toMatchObject([
      {
        type: 'custom_validation_failed',
        extra_info: { input_name: 'reference_frames', received_value: 12 },
      },
    ]);
    expect(body.node_errors['3'].errors[0].message).toMatch(
      /12 exceeds the 8 frames of the noise \(allowed: 0 to 8\)/,
    );
  });

  it('refuses, in the shipped workflow, M over the frames carried into the loop and a clip the model cannot take', async () => {
    // The demo model's UNet is exported for clips of 8 frames of 256×256.
    const body = await refused(
      server,
      workflow({ '4.frames': 16, '4.width': 512, '6.reference_frames': 20 }),
    );
    const messages = body.node_errors['6'].errors.map((e) => e.message);
    expect(body.node_errors['6'].class_type).toBe('DDIMSampler');
    expect(messages).toEqual([
      expect.stringMatching(/reference_frames': 20 exceeds the 16 frames of the noise/),
      // The model family's limits (the demo family), else the fixed dims of the UNet's ONNX input.
      expect.stringMatching(/model takes clips of exactly 8 frames.* but the clip has 16/),
      expect.stringMatching(/model takes 256 × 256 pixels.* but the clip is 512 × 256/),
    ]);
    expect(Object.keys(body.node_errors)).toEqual(['6']);
  });

  it('counts the frames of every clip of the loop against the server total', async () => {
    const s = await startTestServer({ nodes, limits: { maxTotalFrames: 7999 } });
    try {
      const body = await refused(s, workflow({ '5.iterations': 1000 }));
      expect(Object.keys(body.node_errors)).toEqual(['7']);
      expect(body.node_errors['7'].errors[0].message).toMatch(
        /8 frames per clip × 1000 clips = 8000 frames exceed the server limit of 7999 frames per prompt/,
      );
    } finally {
      await s.close();
    }
  });

  it('refuses a file name over 255 bytes (counting UTF-8 bytes and what the writer adds)', async () => {
    const long = await refused(server, workflow({ '8.filename_prefix': 'é'.repeat(110) }));
    expect(long.node_errors['8'].errors).toMatchObject([
      { type: 'custom_validation_failed', extra_info: { input_name: 'filename_prefix' } },
    ]);
    expect(long.node_errors['8'].errors[0].message).toMatch(/is 220 bytes in UTF-8; .*at most 215/);
    const folder = await refused(server, workflow({ '9.filename_prefix': `${'d'.repeat(256)}/clip` }));
    expect(folder.node_errors['9'].errors[0].message).toMatch(/folder name .* is 256 bytes/);
    expect(long.node_errors['9']).toBeUndefined();
  });
});

describe('integers are integers (ComfyUI int(): " 7" yes; "0x10", "1e3", "7.0", 7.5 no)', () => {
  const post = (value: string) =>
    request(`${server.url}/prompt`, {
      raw:
        `{"prompt": {"1": {"class_type": "TestInt", "inputs": {"value": ${value}}},` +
        ` "2": {"class_type": "TestCollect", "inputs": {"value": ["1", 0]}}}}`,
      headers: { 'content-type': 'application/json' },
    });

  it.each(['1e3', '7.0', '" 7"', '"-3"', '"+7"'])('accepts %s', async (value) => {
    const res = await post(value);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it.each(['7.5', '"0x10"', '"1e3"', '"7.0"', '"1_000"', '""', 'true'])('refuses %s', async (value) => {
    const res = await post(value);
    expect(res.status).toBe(400);
    expect((res.body as NodeErrorBody).node_errors['1'].errors[0]).toMatchObject({
      type: 'invalid_input_type',
      extra_info: { input_name: 'value' },
    });
  });

  it('runs 1e3 as the integer 1000', async () => {
    const res = await post('1e3');
    const id = (res.body as { prompt_id: string }).prompt_id;
    const entry = await until(async () => {
      const h = (await request(`${server.url}/history/${id}`)).body as Record<
        string,
        { status: { status_str: string }; outputs: Record<string, { values: unknown[] }> }
      >;
      return h[id]?.status.status_str === 'success' ? h[id] : undefined;
    });
    expect(entry.outputs['2'].values).toEqual([1000]);
  });
});
