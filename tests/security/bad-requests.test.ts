// Issue 15, bad requests get a 4xx, never a 500: deeply nested JSON, node ids that are properties
// of every object, ids longer than the store's keys, upload names too long or with control
// characters or separators (UTF-8 names are kept), and the CLI's unwritable --out.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../../server/api/routes.ts';
import { runCli } from '../../server/cli.ts';
import { createTestNodes } from '../helpers/engine-nodes.ts';
import { rawGet, request, slowPrompt, startTestServer, type TestServer } from '../server/helpers.ts';
import { rawUpload, securityNodes } from './helpers.ts';
import { captureOutput } from '../helpers/cli-output.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ nodes: securityNodes() });
});
afterAll(async () => {
  await server.close();
});

function expect4xx(res: { status: number; body: unknown }, what: string): void {
  expect(
    res.status,
    `${what} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
  ).toBeGreaterThanOrEqual(400);
  expect(res.status, what).toBeLessThan(500);
  const body = res.body as { error?: { type?: unknown; message?: unknown } };
  expect(typeof body.error?.message, what).toBe('string');
}

const nest = (n: number, leaf = '1') => '['.repeat(n) + leaf + ']'.repeat(n);
const nestObj = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

describe('deeply nested JSON', () => {
  it('answers 400 wherever the nesting is, from 101 to 10^6 levels, and keeps serving', async () => {
    for (const depth of [101, 10_000, 1_000_000]) {
      const bodies: [string, string][] = [
        ['/prompt', nest(depth)],
        ['/prompt', `{"prompt":{"1":{"class_type":"TestCollect","inputs":{"value":${nest(depth)}}}}}`],
        [
          '/prompt',
          `{"prompt":{"1":{"class_type":"VideoWrite","inputs":{"filename_prefix":${nestObj(depth)}}}}}`,
        ],
        [
          '/prompt',
          `{"prompt":{"1":{"class_type":"TestInt","inputs":{"value":1}}},"extra_data":${nestObj(depth)}}`,
        ],
        ['/queue', `{"delete":${nest(depth, '"x"')}}`],
        ['/history', `{"delete":${nest(depth, '"x"')}}`],
        ['/interrupt', `{"prompt_id":${nestObj(depth)}}`],
        ['/free', nestObj(depth)],
      ];
      for (const [route, raw] of bodies) {
        const res = await request(`${server.url}${route}`, {
          raw,
          headers: { 'content-type': 'application/json' },
        });
        expect4xx(res, `${route} depth ${depth}`);
        expect(res.status).toBe(400);
      }
    }
    expect(server.logs.filter((l) => l.includes('request failed'))).toEqual([]);
    // A workflow of ordinary depth still passes the guard.
    const ok = await request(`${server.url}/prompt`, { body: { prompt: slowPrompt(1, { steps: 1 }) } });
    expect(ok.status).toBe(200);
  });
});

describe('the nesting scan', () => {
  const deep = (raw: string) => jsonNestsDeeperThan(Buffer.from(raw), MAX_JSON_DEPTH);

  it('counts brackets outside strings only, escapes included', () => {
    expect(deep(nest(100))).toBe(false);
    expect(deep(nest(101))).toBe(true);
    expect(deep(nestObj(101))).toBe(true);
    // A prompt text full of brackets is a string, not nesting.
    expect(deep(JSON.stringify({ prompt: { text: '['.repeat(500) + '{'.repeat(500) } }))).toBe(false);
    expect(deep(JSON.stringify({ t: `\\"${'['.repeat(300)}` }))).toBe(false);
    expect(deep(`["\\"", ${nest(101)}]`)).toBe(true);
  });

  it('lets a prompt with a bracket-heavy text through the server', async () => {
    const prompt = {
      '1': { class_type: 'TestString', inputs: { text: `${'['.repeat(300)} a "quoted" \\ text` } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    };
    expect((await request(`${server.url}/prompt`, { body: { prompt } })).status).toBe(200);
  });
});

describe('node ids that are properties of every object', () => {
  it('are a validation error naming the id, not a TypeError', async () => {
    for (const id of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']) {
      // Raw JSON: JSON.stringify of an object literal would not carry an own "__proto__" key.
      const raw =
        `{"prompt":{"${id}":{"class_type":"TestInt","inputs":{"value":1}},` +
        `"2":{"class_type":"TestCollect","inputs":{"value":["${id}",0]}}}}`;
      const res = await request(`${server.url}/prompt`, {
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status, id).toBe(400);
      const message = (res.body as { error: { message: string } }).error.message;
      expect(message, id).toContain(`node id "${id}" is reserved`);
      expect(message, id).not.toMatch(/Cannot read|undefined|TypeError/);
    }
  });
});

describe('ids longer than any prompt id', () => {
  const long = 'x'.repeat(3000);
  const wide = '東'.repeat(1000); // 3000 bytes in UTF-8

  it('answer 400 on /history/{id}, /queue and /history delete, /interrupt', async () => {
    for (const id of [long, wide, 'y'.repeat(257)]) {
      const enc = encodeURIComponent(id);
      expect4xx(await request(`${server.url}/history/${enc}`), 'GET /history/{id}');
      expect4xx(await request(`${server.url}/api/history/${enc}`), 'GET /api/history/{id}');
      expect4xx(await request(`${server.url}/queue`, { body: { delete: [id] } }), 'POST /queue delete');
      expect4xx(
        await request(`${server.url}/history`, { body: { delete: ['ok', id] } }),
        'POST /history delete',
      );
      expect4xx(await request(`${server.url}/interrupt`, { body: { prompt_id: id } }), 'POST /interrupt');
    }
    // At the limit still an ordinary lookup.
    expect(await request(`${server.url}/history/${'z'.repeat(256)}`)).toMatchObject({
      status: 200,
      body: {},
    });
    // Beyond what Node takes in a request line (16 KiB of headers): 431/400, still not a 5xx.
    const huge = await rawGet(server.port, `/history/${'q'.repeat(20_000)}`);
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);
    expect(server.logs.filter((l) => l.includes('request failed'))).toEqual([]);
  });
});

describe('upload names', () => {
  it('keeps UTF-8 names as sent, plain and as RFC 5987 filename*', async () => {
    const name = 'vidéo 東京.png';
    const plain = await rawUpload(server.url, name);
    expect(plain).toEqual({ status: 200, body: { name, subfolder: '', type: 'input' } });
    expect(fs.readFileSync(path.join(server.inputDir, name), 'utf8')).toBe('PNGDATA');
    const star = await rawUpload(server.url, name, { star: true });
    expect(star.body.name).toBe('vidéo 東京 (1).png');
    const viewed = await fetch(`${server.url}/view?type=input&filename=${encodeURIComponent(name)}`);
    expect(viewed.status).toBe(200);
    expect(await viewed.text()).toBe('PNGDATA');
    // 255 bytes exactly is allowed (3-byte characters: 84 × 3 + ".png" = 256, so 83 × 3 + 4 = 253).
    const max = `${'東'.repeat(83)}x.png`;
    expect(Buffer.byteLength(max)).toBe(254);
    expect((await rawUpload(server.url, max, { star: true })).status).toBe(200);
  });

  it('refuses names over 255 bytes, with control characters or separators, and hidden names', async () => {
    const cases: [string, boolean][] = [
      [`${'a'.repeat(252)}.png`, false],
      [`${'é'.repeat(130)}.png`, true],
      ['a\u0001b.png', true],
      ['a\tb.png', false],
      ['a\nb.png', true],
      ['a\u007fb.png', true],
      ['sub/evil.png', false],
      ['..\\evil.png', false],
      ['.hidden.png', false],
      ['..', false],
      ['', false],
    ];
    for (const [name, star] of cases) {
      const res = await rawUpload(server.url, name, { star });
      expect([400, 403], `${JSON.stringify(name)} → ${res.status}`).toContain(res.status);
    }
    // A name that grows past 255 bytes by numbering (" (1)") is refused too.
    const edge = `${'b'.repeat(251)}.png`;
    expect((await rawUpload(server.url, edge)).status).toBe(200);
    expect((await rawUpload(server.url, edge)).status).toBe(400);
    const left = fs.readdirSync(server.inputDir);
    expect(left.filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(left.some((f) => f.includes('evil') || f.startsWith('.hidden'))).toBe(false);
    expect(fs.readdirSync(server.root).sort()).toEqual(['data', 'input', 'output', 'temp']);
  });

  it('refuses a subfolder segment over 255 bytes with 400', async () => {
    const res = await rawUpload(server.url, 'ok.png', { fields: { subfolder: 's'.repeat(300) } });
    expect(res.status).toBe(400);
  });
});

describe('rdflow run with an output folder that cannot be written', () => {
  it('fails at once with exit 2, naming the folder', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-out-'));
    fs.writeFileSync(path.join(cwd, 'wf.json'), JSON.stringify(slowPrompt(1, { steps: 1 })));
    fs.writeFileSync(path.join(cwd, 'a-file'), '');
    for (const out of ['/proc/x', '/proc/x/y', path.join(cwd, 'a-file'), path.join(cwd, 'a-file', 'sub')]) {
      const { nodes, log } = createTestNodes();
      const stderr = captureOutput();
      const code = await runCli(['run', 'wf.json', '--out', out], {
        nodes,
        stdout: captureOutput(),
        stderr,
        cwd,
      });
      expect(code, out).toBe(2);
      expect(stderr.text(), out).toContain(out);
      expect(log.runs, out).toEqual([]);
    }
  });
});
