// Issue 15, auth: with a token configured, no letter case, trailing slash, encoding or dot trick
// reaches an API route without it (routing and the access check see the same, case-sensitive
// path, and the check runs before routing); only the editor's page and assets are public; and
// /system_stats never returns the command line or the token.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { isPublicPath } from '../../server/api/security.ts';
import { rawGet, request, startTestServer, wsUrl, type TestServer } from '../server/helpers.ts';
import { securityNodes } from './helpers.ts';

const TOKEN = 'issue-15-auth-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };
let server: TestServer;
let clientDir: string;

beforeAll(async () => {
  clientDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-client-'));
  fs.writeFileSync(path.join(clientDir, 'index.html'), '<!doctype html><title>editor</title>');
  fs.mkdirSync(path.join(clientDir, 'assets'));
  fs.writeFileSync(path.join(clientDir, 'assets', 'app.js'), 'console.log("editor")');
  fs.writeFileSync(path.join(clientDir, 'notes.txt'), 'not an asset');
  server = await startTestServer({ authToken: TOKEN, clientDir, nodes: securityNodes() });
  // Something to leak: a finished output and a history entry.
  fs.writeFileSync(path.join(server.outputDir, 'private.txt'), 'PRIVATE-OUTPUT');
});
afterAll(async () => {
  await server.close();
});

describe('the token is checked before routing, whatever the letter case', () => {
  const gets = [
    '/Queue',
    '/QUEUE',
    '/HISTORY',
    '/History',
    '/View?filename=private.txt',
    '/VIEW?filename=private.txt',
    '/Api/view?filename=private.txt',
    '/API/view?filename=private.txt',
    '/api/View?filename=private.txt',
    '/System_stats',
    '/SYSTEM_STATS',
    '/api/System_stats',
    '/Object_info',
    '/Prompt',
    '/Models/video_models',
    '/Workflows',
    '/queue/',
    '/history/',
    '/%71ueue',
    '/%51ueue',
    '//queue',
    '/api//queue',
    '/./queue',
    '/assets/../queue',
    '/assets/%2e%2e/queue',
    '/assets/..%2fqueue',
    '/Assets/app.js',
    '/notes.txt',
    '/no-such-route',
    '/queue',
    '/api/queue',
    '/view?filename=private.txt',
    '/system_stats',
  ];

  it(`answers 401 to ${gets.length} GET spellings of API paths without a token, leaking nothing`, async () => {
    for (const target of gets) {
      const res = await rawGet(server.port, target);
      expect(res.status, target).toBe(401);
      expect(res.body, target).not.toContain('PRIVATE-OUTPUT');
      expect(res.body, target).not.toContain('queue_running');
      expect(res.body, target).not.toContain('ram_total');
    }
  });

  it('answers 401 to POSTs at any letter case without a token, and runs nothing', async () => {
    const prompt = { '1': { class_type: 'TestInt', inputs: { value: 1 } } };
    for (const p of [
      '/Prompt',
      '/PROMPT',
      '/api/Prompt',
      '/Interrupt',
      '/Queue',
      '/History',
      '/Free',
      '/prompt',
    ]) {
      const res = await request(`${server.url}${p}`, { body: { prompt, clear: true } });
      expect(res.status, p).toBe(401);
    }
    const form = new FormData();
    form.append('image', new Blob([Buffer.from('x')]), 'sneaky.png');
    for (const p of ['/Upload/image', '/upload/Image', '/API/upload/image']) {
      const res = await fetch(`${server.url}${p}`, { method: 'POST', body: form });
      expect(res.status, p).toBe(401);
    }
    expect(fs.existsSync(path.join(server.inputDir, 'sneaky.png'))).toBe(false);
  });

  it('refuses WebSocket upgrades at any spelling without a token', async () => {
    for (const p of ['/ws', '/WS', '/Ws', '/api/ws', '/API/ws', '/api/WS']) {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(wsUrl(server.url, 'x').replace('/ws?', `${p}?`));
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => resolve(-1));
      });
      expect([400, 401], p).toContain(status);
    }
  });

  it('with the token, routes are case-sensitive and strict: /Queue is 404, /queue is 200', async () => {
    expect((await rawGet(server.port, '/queue', AUTH)).status).toBe(200);
    expect((await rawGet(server.port, '/api/queue', AUTH)).status).toBe(200);
    for (const p of ['/Queue', '/HISTORY', '/Api/view', '/System_stats', '/queue/', '/%71ueue']) {
      const res = await rawGet(server.port, p, AUTH);
      expect(res.status, p).toBe(404);
    }
  });

  it("serves only the editor's page and assets without a token", async () => {
    expect(await rawGet(server.port, '/')).toMatchObject({
      status: 200,
      body: expect.stringContaining('editor'),
    });
    expect((await rawGet(server.port, '/index.html')).status).toBe(200);
    expect(await rawGet(server.port, '/assets/app.js')).toMatchObject({ status: 200 });
    // A file of the client folder that is not an asset, and a HEAD/POST on public paths.
    expect((await rawGet(server.port, '/notes.txt')).status).toBe(401);
    expect((await request(`${server.url}/`, { body: {} })).status).toBe(401);
    expect(isPublicPath('HEAD', '/assets/app.js')).toBe(true);
    expect(isPublicPath('GET', '/assets/x/../../queue')).toBe(false);
    expect(isPublicPath('GET', '/assets\\..\\queue')).toBe(false);
    expect(isPublicPath('DELETE', '/')).toBe(false);
    expect(isPublicPath('GET', '/Index.html')).toBe(false);
  });
});

describe('/system_stats', () => {
  it("has ComfyUI's fields and no argv, token or other secret", async () => {
    const saved = process.env.RDFLOW_AUTH_TOKEN;
    const res = await request(`${server.url}/system_stats`, { headers: AUTH });
    expect(res.status).toBe(200);
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain('argv');
    for (const arg of process.argv.slice(1)) expect(text).not.toContain(arg);
    if (saved) expect(text).not.toContain(saved);
    const body = res.body as { system: Record<string, unknown>; devices: Record<string, unknown>[] };
    expect(Object.keys(body.system).sort()).toEqual(
      [
        'comfyui_version',
        'cpu_count',
        'embedded_python',
        'node_version',
        'os',
        'python_version',
        'ram_free',
        'ram_total',
        'rdflow_version',
      ].sort(),
    );
    expect(body.system).toMatchObject({
      os: process.platform,
      embedded_python: false,
      python_version: `node ${process.version}`,
    });
    expect(body.system.ram_total).toBeGreaterThan(0);
    expect(Object.keys(body.devices[0]).sort()).toEqual(
      ['index', 'name', 'torch_vram_free', 'torch_vram_total', 'type', 'vram_free', 'vram_total'].sort(),
    );
  });
});
