// Property-based fuzzing of /prompt, /upload/image, /history and /queue (with /interrupt) with a
// fixed seed: a few thousand generated requests as an attacker or a clumsy client sends them
// (reserved node ids, links to nowhere, path tricks in every string, UTF-8 and control characters,
// huge and negative numbers, long ids, raw garbage). Whatever comes in: never a 5xx, 4xx always in
// the API's error shape, an accepted upload lands inside its folder, the server never logs a
// failed request or an uncaught error, and it still answers afterwards.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyNodeDef } from '../../server/engine/define.ts';
import { request, startTestServer, type TestServer } from '../server/helpers.ts';
import { rawUpload, securityNodes } from './helpers.ts';

const SEED = 15;
let server: TestServer;

beforeAll(async () => {
  // Not TestCrash (it kills the process) nor TestFileWriter (a test node that does not confine its
  // file name); small loop and queue caps so accepted prompts finish quickly.
  const nodes = securityNodes().filter(
    (n: AnyNodeDef) => !['TestCrash', 'TestFileWriter', 'TestPreviews', 'TestBuffer'].includes(n.name),
  );
  server = await startTestServer({ nodes, limits: { maxIterations: 4, maxQueued: 8 } });
  fs.writeFileSync(path.join(server.root, 'secret.txt'), 'SECRET');
});
afterAll(async () => {
  await server.close();
});

/** Answers by status, reported at the end (what the generators reached). */
const statuses = new Map<number, number>();

function check(res: { status: number; body: unknown }, what: unknown): void {
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  const body = res.body as { error?: { type?: unknown; message?: unknown } } | null;
  const shaped = typeof body?.error?.type === 'string' && typeof body.error.message === 'string';
  // Checked by hand, so the label (a slice of a possibly large input) is built only on failure.
  if (res.status < 200 || res.status >= 500 || (res.status >= 400 && !shaped)) {
    expect.fail(
      `${res.status} ${JSON.stringify(res.body)?.slice(0, 200)} ← ${JSON.stringify(what)?.slice(0, 300)}`,
    );
  }
}

/** A generated GET, or POST of a JSON body, checked as above. */
async function sendAndCheck(op: { get: string } | { post: string; body: unknown }): Promise<void> {
  const res =
    'get' in op
      ? await request(`${server.url}${op.get}`)
      : await request(`${server.url}${op.post}`, {
          raw: asJson(op.body),
          headers: { 'content-type': 'application/json' },
        });
  check(res, op);
}

const tricky = fc.constantFrom(
  '..',
  '../secret.txt',
  '../../etc/passwd',
  '/etc/passwd',
  'C:\\Windows\\win.ini',
  '..\\..\\x',
  'a\u0000b',
  '%2e%2e%2f',
  'link/clip',
  'videos/clip',
  'vidéo 東京',
  '\u202e\u0007\r\n',
  '__proto__',
  'constructor',
  '.hidden',
  '.clip_00001.tmp-1-x.gif',
  'x'.repeat(300),
  '',
  ' ',
  'tiny',
);
const text = fc.oneof(tricky, fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 8 }));
const nodeId = fc.oneof(
  fc.constantFrom('1', '2', '3', '4', '__proto__', 'constructor', 'prototype', 'toString', ''),
  fc.string({ maxLength: 6 }),
);
const classType = fc.oneof(
  fc.constantFrom(
    'TestInt',
    'TestString',
    'TestAdd',
    'TestSlow',
    'TestCollect',
    'TestThrow',
    'TestChoice',
    'LoopStart',
    'LoopEnd',
    'IntMath',
    'LoadVideoModel',
    'VideoWrite',
    'TestImages',
  ),
  text,
);
const inputName = fc.oneof(
  fc.constantFrom(
    'value',
    'a',
    'b',
    'op',
    'text',
    'steps',
    'delay_ms',
    'iterations',
    'flow',
    'index',
    'images',
    'fps',
    'format',
    'filename_prefix',
    'model',
    'provider',
    'frames',
    '__proto__',
  ),
  fc.string({ maxLength: 6 }),
);
const number = fc.oneof(
  fc.integer({ min: -3, max: 12 }),
  fc.constantFrom(0, -1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 0.5, '7', ' 7', '0x10', '1e3', 'NaN'),
);
const inputValue = fc.oneof(
  number,
  text,
  fc.tuple(nodeId, fc.integer({ min: -1, max: 6 })),
  fc.constantFrom('gif', 'png', 'mp4', 'cpu', 'demo-not', true, null),
  fc.jsonValue({ maxDepth: 3 }),
);
const node = fc.record(
  {
    class_type: classType,
    inputs: fc.dictionary(inputName, inputValue, { maxKeys: 5 }),
    _meta: fc.record({ title: text }),
  },
  { requiredKeys: ['class_type', 'inputs'] },
);
const prompt = fc.dictionary(nodeId, node, { minKeys: 1, maxKeys: 5 });
const promptBody = fc.oneof(
  fc.record(
    {
      prompt,
      client_id: text,
      prompt_id: fc.oneof(text, fc.jsonValue({ maxDepth: 1 })),
      front: fc.boolean(),
      number: number,
      extra_data: fc.jsonValue({ maxDepth: 3 }),
    },
    { requiredKeys: ['prompt'] },
  ),
  fc.record({ prompt: fc.jsonValue({ maxDepth: 4 }) }),
  fc.jsonValue({ maxDepth: 4 }),
);
const rawText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('{', '{"prompt":', '[]', 'null', '{"prompt":{"1":}}', '\u0000', '{"a":1}}'),
  fc.integer({ min: 90, max: 200 }).map((n) => `{"prompt":${'['.repeat(n)}${']'.repeat(n)}}`),
  // Deep enough to overflow the stack where something recursed over it (it did: a 500).
  fc
    .constantFrom(20_000, 50_000)
    .map(
      (n) => `{"prompt":{"1":{"class_type":"TestInt","inputs":{"value":${'['.repeat(n)}${']'.repeat(n)}}}}}`,
    ),
);
/** JSON serialization that keeps own "__proto__" keys (JSON.stringify does; fc builds them safely). */
const asJson = (v: unknown) => JSON.stringify(v) ?? 'null';

describe('fuzz (seed 15)', () => {
  it('/prompt: 1,200 generated prompts and bodies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof({ weight: 5, arbitrary: promptBody.map(asJson) }, { weight: 1, arbitrary: rawText }),
        async (raw) => {
          const res = await request(`${server.url}/prompt`, {
            raw,
            headers: { 'content-type': 'application/json' },
          });
          check(res, raw);
        },
      ),
      { seed: SEED, numRuns: 1200 },
    );
  }, 120_000);

  it('/upload/image: 600 generated names, folders, types', async () => {
    const roots: Record<string, string> = {
      input: server.inputDir,
      output: server.outputDir,
      temp: path.join(server.root, 'temp'),
    };
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          text,
          fc.string({ unit: 'binary', maxLength: 20 }),
          fc.array(tricky, { maxLength: 4 }).map((a) => a.join('/')),
        ),
        fc.oneof(fc.constant(''), text),
        fc.constantFrom('input', 'output', 'temp', 'models', '', '..'),
        fc.constantFrom('true', 'false', '1', ''),
        fc.boolean(),
        async (name, subfolder, type, overwrite, star) => {
          const fields: Record<string, string> = { subfolder, overwrite };
          if (type !== '') fields.type = type;
          const res = await rawUpload(server.url, name, { fields, star });
          check(res, { name, fields });
          if (res.status === 200) {
            const b = res.body as { name: string; subfolder: string; type: string };
            const root = fs.realpathSync(roots[b.type]);
            const file = fs.realpathSync(path.join(roots[b.type], b.subfolder, b.name));
            expect(path.relative(root, file).startsWith('..')).toBe(false);
            expect(fs.readFileSync(file, 'utf8')).toBe('PNGDATA');
          }
        },
      ),
      { seed: SEED, numRuns: 600 },
    );
    expect(fs.readFileSync(path.join(server.root, 'secret.txt'), 'utf8')).toBe('SECRET');
    expect(fs.readdirSync(server.root).sort()).toEqual(['data', 'input', 'output', 'secret.txt', 'temp']);
  }, 120_000);

  // Some over LMDB's 1978-byte keys, which answered 500 before.
  const id = fc.oneof(
    text,
    fc.string({ maxLength: 400 }),
    fc.string({ unit: 'grapheme', minLength: 60, maxLength: 120 }),
    fc.constantFrom('x'.repeat(5000), '東'.repeat(700), 'y'.repeat(257)),
  );

  it('/history: 600 generated lookups, lists and deletes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          id.map((v) => ({ get: `/history/${encodeURIComponent(v)}` })),
          fc
            .oneof(text, number.map(String))
            .map((v) => ({ get: `/history?max_items=${encodeURIComponent(v)}` })),
          fc
            .record(
              {
                delete: fc.oneof(fc.array(id, { maxLength: 3 }), fc.jsonValue({ maxDepth: 2 })),
                clear: fc.boolean(),
              },
              { requiredKeys: [] },
            )
            .map((body) => ({ post: '/history', body })),
        ),
        sendAndCheck,
      ),
      { seed: SEED, numRuns: 600 },
    );
  }, 120_000);

  it('/queue and /interrupt: 600 generated deletes, clears and interrupts', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc
            .record(
              {
                delete: fc.oneof(fc.array(id, { maxLength: 3 }), fc.jsonValue({ maxDepth: 2 })),
                clear: fc.boolean(),
              },
              { requiredKeys: [] },
            )
            .map((body) => ({ post: '/queue', body })),
          fc
            .record({ prompt_id: fc.oneof(id, fc.jsonValue({ maxDepth: 2 })) }, { requiredKeys: [] })
            .map((body) => ({ post: '/interrupt', body })),
          fc.constant({ get: '/queue' }),
          fc.jsonValue({ maxDepth: 3 }).map((body) => ({ post: '/queue', body })),
        ),
        sendAndCheck,
      ),
      { seed: SEED, numRuns: 600 },
    );
  }, 120_000);

  it('left the server answering, with no failed request or uncaught error logged', async () => {
    expect((await request(`${server.url}/queue`)).status).toBe(200);
    expect((await request(`${server.url}/system_stats`)).status).toBe(200);
    expect((await request(`${server.url}/prompt`)).status).toBe(200);
    console.log(`fuzz answers by status: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    const bad = server.logs.filter((l) => /request failed|uncaught|unhandled|engine\.run threw/.test(l));
    expect(bad).toEqual([]);
  });
});
