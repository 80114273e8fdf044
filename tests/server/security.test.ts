// Safe by default: files never leave their folders, other sites cannot drive the server, a token
// guards anything beyond loopback, bodies are bounded and malformed input is a 4xx.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startServer } from '../../server/api/index.ts';
import { checkAccess, isCrossOrigin, listenProblem, presentedToken } from '../../server/api/security.ts';
import { unsafeFragment } from '../../server/api/paths.ts';
import { connect, rawGet, request, startTestServer, wsUrl, type TestServer } from './helpers.ts';

const SECRET = 'TOP-SECRET-CONTENT-do-not-serve';
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  // A secret beside the output dir, and links inside it that point out.
  fs.writeFileSync(path.join(server.root, 'secret.txt'), SECRET);
  fs.mkdirSync(path.join(server.outputDir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(server.outputDir, 'sub', 'ok.txt'), 'fine');
  fs.writeFileSync(path.join(server.outputDir, 'top.txt'), 'top');
  fs.symlinkSync(path.join(server.root, 'secret.txt'), path.join(server.outputDir, 'link.txt'));
  fs.symlinkSync(server.root, path.join(server.outputDir, 'rootlink'));
});
afterAll(async () => {
  await server.close();
});

describe('path traversal', () => {
  const variants = [
    '/view?filename=..%2Fsecret.txt',
    '/view?filename=../secret.txt',
    '/view?filename=secret.txt&subfolder=..',
    '/view?filename=secret.txt&subfolder=../',
    '/view?filename=secret.txt&subfolder=sub/../..',
    '/view?filename=secret.txt&subfolder=%2E%2E',
    '/view?filename=%2E%2E%2Fsecret.txt',
    '/view?filename=..%5Csecret.txt',
    '/view?filename=secret.txt&subfolder=..%5C',
    '/view?filename=%252e%252e%252fsecret.txt',
    '/view?filename=secret.txt&subfolder=%252e%252e',
    '/view?filename=..%252fsecret.txt',
    '/view?filename=ENCODED_ABS',
    '/view?filename=secret.txt&subfolder=ENCODED_ROOT',
    '/view?filename=link.txt',
    '/view?filename=secret.txt&subfolder=rootlink',
    '/view?filename=top.txt%00.png',
    '/view?filename=secret.txt%00&subfolder=..',
    '/view?filename=secret.txt&subfolder=sub%2F..%2F..',
    '/view?filename=....//secret.txt',
    '/view?filename=secret.txt&subfolder=..&type=input',
    '/view?filename=secret.txt&subfolder=..&type=temp',
    '/view?filename=secret.txt&type=..',
    '/view?filename=C:%5Csecret.txt',
    '/view?filename=secret.txt&subfolder=%2F',
    '/view/../secret.txt',
    '/api/view?filename=..%2Fsecret.txt',
    '/api/view?filename=secret.txt&subfolder=rootlink',
    '/view?filename=secret.txt&filename=..%2Fsecret.txt',
    '/..%2Fsecret.txt',
    '/%2e%2e/secret.txt',
  ];

  it(`never serves a file outside its folder (${variants.length} variants)`, async () => {
    expect(variants.length).toBeGreaterThanOrEqual(20);
    const abs = encodeURIComponent(path.join(server.root, 'secret.txt'));
    for (const v of variants) {
      const target = v.replace('ENCODED_ABS', abs).replace('ENCODED_ROOT', encodeURIComponent(server.root));
      const res = await rawGet(server.port, target);
      expect(res.body, target).not.toContain(SECRET);
      expect([400, 403, 404], `${target} → ${res.status}`).toContain(res.status);
    }
    // Still serving, and the legitimate files are reachable.
    expect((await rawGet(server.port, '/view?filename=ok.txt&subfolder=sub')).body).toBe('fine');
    expect((await rawGet(server.port, '/view?filename=top.txt')).body).toBe('top');
  });

  it('never escapes for generated names built from traversal pieces (property)', async () => {
    const piece = fc.constantFrom(
      '..',
      '.',
      '/',
      '\\',
      '%2f',
      '%2F',
      '%5c',
      '%2e',
      '%252e',
      '%00',
      '%2e%2e',
      'sub',
      'rootlink',
      'link.txt',
      'secret.txt',
      'ok.txt',
      '',
    );
    const part = fc.array(piece, { maxLength: 6 }).map((a) => a.join(''));
    const legit = new Set(['fine', 'top']);
    await fc.assert(
      fc.asyncProperty(
        part,
        part,
        fc.constantFrom('output', 'input', 'temp'),
        async (filename, subfolder, type) => {
          const res = await rawGet(
            server.port,
            `/view?filename=${filename}&subfolder=${subfolder}&type=${type}`,
          );
          expect(res.body).not.toContain(SECRET);
          if (res.status === 200) expect(legit.has(res.body)).toBe(true);
          else expect([400, 403, 404]).toContain(res.status);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 20_000 },
    );
  });

  it('refuses unsafe name fragments before touching the disk', () => {
    for (const bad of [
      '..',
      '../x',
      'a/../../b',
      '/etc/passwd',
      'a\\b',
      'a\0b',
      '%2e%2e',
      'x%2fy',
      'C:x',
      '.',
    ]) {
      expect(unsafeFragment(bad, { allowSlash: true }), bad).toBeDefined();
    }
    expect(unsafeFragment('a/b', { allowSlash: false })).toBeDefined();
    expect(unsafeFragment('clips/run 1', { allowSlash: true })).toBeUndefined();
    expect(unsafeFragment('video (1).mp4', { allowSlash: false })).toBeUndefined();
  });

  it('confines /upload/image to its folder and renames instead of overwriting', async () => {
    const upload = async (name: string, fields: Record<string, string> = {}) => {
      const form = new FormData();
      form.append('image', new Blob([Buffer.from('PNGDATA')], { type: 'image/png' }), name);
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      const res = await fetch(`${server.url}/upload/image`, { method: 'POST', body: form });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const first = await upload('pic.png');
    expect(first).toEqual({ status: 200, body: { name: 'pic.png', subfolder: '', type: 'input' } });
    expect(fs.readFileSync(path.join(server.inputDir, 'pic.png'), 'utf8')).toBe('PNGDATA');
    const viewed = await fetch(`${server.url}/view?filename=pic.png&type=input`);
    expect(viewed.status).toBe(200);
    expect(await viewed.text()).toBe('PNGDATA');
    expect((await upload('pic.png')).body.name).toBe('pic (1).png');
    expect((await upload('pic.png', { overwrite: 'true' })).body.name).toBe('pic.png');
    // Fields after the file (as ComfyUI's frontend sends them) still apply.
    expect((await upload('p.png', { subfolder: 'pasted' })).body).toEqual({
      name: 'p.png',
      subfolder: 'pasted',
      type: 'input',
    });
    expect(fs.existsSync(path.join(server.inputDir, 'pasted', 'p.png'))).toBe(true);

    for (const [name, fields] of [
      ['../evil.png', {}],
      ['evil.png', { subfolder: '../..' }],
      ['evil.png', { subfolder: '/tmp' }],
      ['evil.png', { subfolder: 'a%2f..%2f..' }],
      ['..\\evil.png', {}],
      ['evil.png', { type: 'models' }],
    ] as const) {
      const res = await upload(name, fields);
      expect([400, 403], `${name} ${JSON.stringify(fields)}`).toContain(res.status);
      expect(res.body.error).toBeDefined();
    }
    expect(fs.existsSync(path.join(server.root, 'evil.png'))).toBe(false);
    expect(fs.readdirSync(server.inputDir).some((f) => f.endsWith('.partial'))).toBe(false);
    const noFile = await fetch(`${server.url}/upload/image`, { method: 'POST', body: new FormData() });
    expect(noFile.status).toBe(400);
  });
});

describe('Origin', () => {
  it('refuses HTTP requests whose Origin is another site, allows same-origin and no Origin', async () => {
    const evil = await request(`${server.url}/prompt`, { headers: { origin: 'http://evil.example' } });
    expect(evil.status).toBe(403);
    expect((evil.body as { error: { message: string } }).error.message).toMatch(/Origin/);
    const post = await request(`${server.url}/interrupt`, {
      body: {},
      headers: { origin: 'http://evil.example' },
    });
    expect(post.status).toBe(403);
    const otherPort = await request(`${server.url}/prompt`, { headers: { origin: 'http://127.0.0.1:1' } });
    expect(otherPort.status).toBe(403);
    const same = await request(`${server.url}/prompt`, { headers: { origin: server.url } });
    expect(same.status).toBe(200);
    expect((await request(`${server.url}/prompt`)).status).toBe(200);
  });

  it('refuses WebSocket upgrades whose Origin is another site', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(wsUrl(server.url, 'evil'), { headers: { origin: 'http://evil.example' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(403);
    const ok = await connect(server.url, 'same', { headers: { origin: server.url } });
    expect(ok.messages[0]).toMatchObject({ type: 'status', data: { sid: 'same' } });
    ok.close();
  });

  it('refuses a DNS-rebound Host on a loopback server without a token', async () => {
    const res = await rawGet(server.port, '/prompt', { Host: 'evil.example:80' });
    expect(res.status).toBe(403);
  });

  it('decides cross-origin by host and port', () => {
    expect(isCrossOrigin(undefined, 'a:1')).toBe(false);
    expect(isCrossOrigin('http://a:1', 'a:1')).toBe(false);
    expect(isCrossOrigin('http://a', 'a:80')).toBe(false);
    expect(isCrossOrigin('http://a:2', 'a:1')).toBe(true);
    expect(isCrossOrigin('null', 'a:1')).toBe(true);
    expect(isCrossOrigin('http://b:1', 'a:1')).toBe(true);
  });
});

describe('auth token', () => {
  const token = 'a-long-enough-test-token';

  it('refuses to listen beyond loopback without a token', async () => {
    expect(listenProblem('0.0.0.0', undefined)).toMatch(/auth token/);
    expect(listenProblem('192.168.1.5', 'short')).toMatch(/at least 16/);
    expect(listenProblem('0.0.0.0', token)).toBeUndefined();
    expect(listenProblem('127.0.0.1', undefined)).toBeUndefined();
    expect(listenProblem('::1', undefined)).toBeUndefined();
    expect(listenProblem('localhost', undefined)).toBeUndefined();
    const saved = process.env.RDFLOW_AUTH_TOKEN;
    delete process.env.RDFLOW_AUTH_TOKEN;
    try {
      await expect(
        startServer({ host: '0.0.0.0', port: 0, outputDir: path.join(server.root, 'o2') }),
      ).rejects.toThrow(/auth token/);
    } finally {
      if (saved !== undefined) process.env.RDFLOW_AUTH_TOKEN = saved;
    }
  });

  it('reads the token from the Bearer header, ?token= or the cookie', () => {
    expect(presentedToken({ authorization: 'Bearer abc' })).toBe('abc');
    expect(presentedToken({ url: '/prompt?token=xyz' })).toBe('xyz');
    expect(presentedToken({ cookie: 'a=1; rdflow_token=t%20k' })).toBe('t k');
    expect(checkAccess({ token, loopback: false }, { host: 'h:1' })).toMatchObject({
      ok: false,
      status: 401,
    });
    expect(
      checkAccess({ token, loopback: false }, { host: 'h:1', authorization: `Bearer ${token}` }).ok,
    ).toBe(true);
  });

  it('enforces a configured token on HTTP and the WebSocket of a real server', async () => {
    const s = await startTestServer({ authToken: token });
    try {
      expect((await request(`${s.url}/prompt`)).status).toBe(401);
      expect(
        (await request(`${s.url}/prompt`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } }))
          .status,
      ).toBe(401);
      expect(
        (await request(`${s.url}/prompt`, { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(200);
      const viaQuery = await request(`${s.url}/api/prompt?token=${token}`);
      expect(viaQuery.status).toBe(200);
      const cookie = viaQuery.headers.get('set-cookie') ?? '';
      expect(cookie).toMatch(/rdflow_token=.*HttpOnly.*SameSite=Strict/i);
      expect((await request(`${s.url}/prompt`, { headers: { cookie: cookie.split(';')[0] } })).status).toBe(
        200,
      );

      const refused = await new Promise<number>((resolve) => {
        const ws = new WebSocket(wsUrl(s.url, 'x'));
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => undefined);
      });
      expect(refused).toBe(401);
      const ok = await connect(s.url, 'x', { headers: { authorization: `Bearer ${token}` } });
      expect(ok.messages[0].type).toBe('status');
      ok.close();
    } finally {
      await s.close();
    }
  });
});

describe('bodies', () => {
  it('answers malformed JSON with 400 and the error shape', async () => {
    for (const raw of ['{', '{"prompt": ', 'not json', '{"prompt": {"1": }}', '\u0000']) {
      const res = await request(`${server.url}/prompt`, {
        raw,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status, raw).toBe(400);
      const body = res.body as {
        error: { type: string; message: string; details: string; extra_info: object };
        node_errors: object;
      };
      expect(body.error.type).toBeTypeOf('string');
      expect(body.error.message).toBeTypeOf('string');
      expect(body.node_errors).toEqual({});
    }
  });

  it('parses JSON whatever the Content-Type (Python urllib sends form-encoded)', async () => {
    const res = await request(`${server.url}/prompt`, {
      raw: JSON.stringify({ prompt: {} }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(400);
    expect((res.body as { error: { type: string } }).error.type).toBe('prompt_no_outputs');
  });

  it('answers an oversized body with 413 and the error shape', async () => {
    const raw = JSON.stringify({
      prompt: { '1': { class_type: 'TestString', inputs: { text: 'x'.repeat(11 * 1024 * 1024) } } },
    });
    const res = await request(`${server.url}/prompt`, {
      raw,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect((res.body as { error: { type: string } }).error.type).toBe('request_too_large');
    expect((await request(`${server.url}/prompt`)).status).toBe(200);
  });

  it('refuses prompts beyond the queue cap with 429 and the error shape', async () => {
    const s = await startTestServer({ limits: { maxQueued: 2 } });
    try {
      const slow = (v: number) => ({
        '1': { class_type: 'TestInt', inputs: { value: v } },
        '2': { class_type: 'TestSlow', inputs: { value: ['1', 0], steps: 100, delay_ms: 10 } },
        '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
      });
      expect((await request(`${s.url}/prompt`, { body: { prompt: slow(1) } })).status).toBe(200);
      expect((await request(`${s.url}/prompt`, { body: { prompt: slow(2) } })).status).toBe(200);
      const full = await request(`${s.url}/prompt`, { body: { prompt: slow(3) } });
      expect(full.status).toBe(429);
      expect((full.body as { error: { type: string } }).error.type).toBe('queue_full');
      await request(`${s.url}/queue`, { body: { clear: true } });
      await request(`${s.url}/interrupt`, { body: {} });
    } finally {
      await s.close();
    }
  });

  it('rejects loop iterations over the configured cap', async () => {
    const s = await startTestServer({ limits: { maxIterations: 50 } });
    try {
      const prompt = {
        '1': { class_type: 'LoopStart', inputs: { iterations: 51 } },
        '2': { class_type: 'TestCollect', inputs: { value: ['1', 1] } },
        '3': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
      };
      const res = await request(`${s.url}/prompt`, { body: { prompt } });
      expect(res.status).toBe(400);
      const errs = (
        res.body as {
          node_errors: Record<string, { errors: { message: string; extra_info: { input_name: string } }[] }>;
        }
      ).node_errors['1'].errors;
      expect(errs[0].extra_info.input_name).toBe('iterations');
      expect(errs[0].message).toMatch(/51 loop iterations exceed the server limit of 50/);
    } finally {
      await s.close();
    }
  });
});
