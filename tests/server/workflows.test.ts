// GET /workflows lists the workflow files of the server's folder and GET /workflows/:name serves
// one of them; nothing outside that folder (or below it) can be reached through either.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultWorkflowsDir } from '../../server/api/workflows.ts';
import { rawGet, request, startTestServer, type TestServer } from './helpers.ts';

const SECRET = 'TOP-SECRET-workflow-do-not-serve';
const canvas = { last_node_id: 0, last_link_id: 0, nodes: [], links: [], extra: { title: 'My canvas' } };
const api = { '1': { class_type: 'IntMath', inputs: { a: 1, b: 2, op: 'add' } } };

let server: TestServer;
let dir: string;

beforeAll(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-workflows-'));
  dir = path.join(root, 'flows');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'b-canvas.json'), JSON.stringify(canvas));
  fs.writeFileSync(path.join(dir, 'a-api.json'), JSON.stringify(api));
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a workflow');
  fs.writeFileSync(path.join(dir, 'broken.json'), '{ not json');
  fs.writeFileSync(path.join(dir, 'sub', 'nested.json'), JSON.stringify(api));
  fs.writeFileSync(path.join(root, 'secret.json'), JSON.stringify({ s: { class_type: SECRET, inputs: {} } }));
  fs.symlinkSync(path.join(root, 'secret.json'), path.join(dir, 'escape.json'));
  server = await startTestServer({ root, workflowsDir: dir });
});
afterAll(async () => {
  await server.close();
});

describe('GET /workflows', () => {
  it('lists the folder’s JSON workflows with their format, at its path and under /api', async () => {
    for (const prefix of ['', '/api']) {
      const res = await request(`${server.url}${prefix}/workflows`);
      expect(res.status).toBe(200);
      // Not JSON, not a workflow, in a subfolder, or a link out: not offered.
      expect(res.body).toEqual([
        { name: 'a-api.json', format: 'api' },
        { name: 'b-canvas.json', format: 'canvas', title: 'My canvas' },
      ]);
    }
  });

  it('serves a listed workflow byte for byte', async () => {
    for (const prefix of ['', '/api']) {
      const res = await request(`${server.url}${prefix}/workflows/b-canvas.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(res.body).toEqual(canvas);
    }
  });

  it('answers 404 for an unknown workflow', async () => {
    const res = await request(`${server.url}/workflows/missing.json`);
    expect(res.status).toBe(404);
  });

  it('never serves a file outside the folder or below it', async () => {
    const variants = [
      '/workflows/..%2Fsecret.json',
      '/workflows/%2E%2E%2Fsecret.json',
      '/workflows/..%5Csecret.json',
      '/workflows/%252e%252e%252fsecret.json',
      '/workflows/..%252fsecret.json',
      '/workflows/../secret.json',
      '/workflows/sub%2Fnested.json',
      '/workflows/sub/nested.json',
      '/workflows/escape.json',
      '/workflows/secret.json%00.json',
      '/workflows/secret.json%00',
      '/workflows/notes.txt',
      `/workflows/${encodeURIComponent(path.join(server.root, 'secret.json'))}`,
      '/workflows/.',
      '/workflows/..',
      '/api/workflows/..%2Fsecret.json',
      '/api/workflows/escape.json',
    ];
    for (const v of variants) {
      const res = await rawGet(server.port, v);
      expect(res.body, v).not.toContain(SECRET);
      expect([400, 404], `${v} → ${res.status}`).toContain(res.status);
    }
    // Still serving the legitimate file.
    expect(JSON.parse((await rawGet(server.port, '/workflows/a-api.json')).body)).toEqual(api);
  });
});

describe('default folder', () => {
  it('is the repo’s workflows/ (not the cwd’s), with the shipped default workflow', async () => {
    const s = await startTestServer();
    try {
      const res = await request(`${s.url}/workflows`);
      const names = (res.body as { name: string }[]).map((w) => w.name);
      expect(names).toEqual(
        fs
          .readdirSync(defaultWorkflowsDir)
          .filter((n) => n.endsWith('.json'))
          .sort(),
      );
      expect(names).toContain('vidrd-long-video.canvas.json');
      const one = await request(`${s.url}/workflows/vidrd-long-video.canvas.json`);
      expect((one.body as { nodes: unknown[] }).nodes.length).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });
});
