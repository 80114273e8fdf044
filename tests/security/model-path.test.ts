// Issue 15, model path escape: over HTTP, LoadVideoModel takes a model name from the models folder
// (as /object_info lists it), checked after following links; absolute paths, `..` and links that
// lead out are validation errors that name the model and never show a filesystem path. The CLI's
// node still takes a path the user types.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVideoModelNode, loadVideoModelNodeForServer } from '../../nodes/load-video-model.ts';
import { isDone, connect, request, startTestServer, type TestServer } from '../server/helpers.ts';
import { makeTestModel } from '../helpers/models.ts';
import { securityNodes } from './helpers.ts';

let server: TestServer;
let models: string;
let outside: string;

beforeAll(async () => {
  server = await startTestServer({ nodes: securityNodes() });
  models = path.join(server.root, 'models');
  await makeTestModel(path.join(models, 'tiny'));
  // A complete model folder outside the models folder, and links to it and to /etc from inside.
  outside = path.join(server.root, 'elsewhere', 'stolen');
  fs.mkdirSync(path.dirname(outside), { recursive: true });
  fs.cpSync(path.join(models, 'tiny'), outside, { recursive: true });
  fs.symlinkSync(outside, path.join(models, 'linked-out'));
  fs.symlinkSync('/etc', path.join(models, 'etc'));
  fs.symlinkSync(path.join(models, 'tiny'), path.join(models, 'alias'));
}, 120_000);
afterAll(async () => {
  await server.close();
});

function modelPrompt(model: string): Record<string, unknown> {
  return {
    '1': { class_type: 'LoadVideoModel', inputs: { model, provider: 'cpu' } },
    '2': { class_type: 'TestCollect', inputs: { value: ['1', 3] } },
  };
}

type Rejection = {
  error: { type: string; message: string };
  node_errors: Record<string, { errors: { message: string; extra_info: { input_name?: string } }[] }>;
};

describe('LoadVideoModel over HTTP', () => {
  it('lists only model folders that stay inside the models folder', async () => {
    const info = (await request(`${server.url}/object_info/LoadVideoModel`)).body as {
      LoadVideoModel: { input: { required: { model: [string[]] } } };
    };
    const options = info.LoadVideoModel.input.required.model[0];
    expect(options).toEqual(expect.arrayContaining(['demo', 'tiny', 'alias']));
    expect(options).not.toContain('linked-out');
    expect(options).not.toContain('etc');
    const listed = (await request(`${server.url}/models/video_models`)).body as string[];
    expect(listed).toEqual(['alias', 'tiny']);
  });

  const attacks = () => [
    path.join(models, 'tiny'),
    outside,
    '/etc',
    '/',
    '../elsewhere/stolen',
    '..',
    'tiny/..',
    'tiny/../../elsewhere/stolen',
    'tiny/',
    './tiny',
    'linked-out',
    'etc',
    'C:\\Windows',
    '..\\elsewhere\\stolen',
    '%2e%2e/elsewhere/stolen',
    '',
    'tiny\0',
  ];

  it('refuses absolute paths, .., links out and odd names, naming the model and no path', async () => {
    for (const model of attacks()) {
      const res = await request(`${server.url}/prompt`, { body: { prompt: modelPrompt(model) } });
      expect(res.status, model).toBe(400);
      const body = res.body as Rejection;
      const errors = body.node_errors['1']?.errors ?? [];
      expect(errors.length, model).toBeGreaterThan(0);
      expect(errors[0].extra_info.input_name, model).toBe('model');
      // Nothing of the server's filesystem in the answer, beyond what the client sent itself.
      const text = JSON.stringify(body).split(JSON.stringify(model).slice(1, -1)).join('');
      expect(text, model).not.toContain(server.root);
      expect(text, model).not.toContain(models);
    }
    expect((await request(`${server.url}/queue`)).body).toEqual({ queue_running: [], queue_pending: [] });
  });

  it('refuses a link out planted after the listing, at validation, with the model named', async () => {
    fs.symlinkSync(outside, path.join(models, 'late'));
    const issues = await loadVideoModelNodeForServer.validate?.(
      { model: 'late', provider: 'cpu' },
      { paths: { models, output: server.outputDir, input: server.inputDir, temp: server.root } },
    );
    expect(issues).toEqual([
      { input: 'model', message: 'model "late" links outside the models folder; it is not accepted' },
    ]);
    fs.rmSync(path.join(models, 'late'));
  });

  it('accepts a model name from the list (also through a link that stays inside) and runs it', async () => {
    const ws = await connect(server.url, 'models');
    try {
      for (const model of ['tiny', 'alias']) {
        const res = await request(`${server.url}/prompt`, {
          body: { prompt: modelPrompt(model), client_id: 'models' },
        });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const id = (res.body as { prompt_id: string }).prompt_id;
        await ws.waitFor(isDone(id), 60_000);
        const h = (await request(`${server.url}/history/${id}`)).body as Record<
          string,
          { status: { status_str: string } }
        >;
        expect(h[id].status.status_str).toBe('success');
      }
    } finally {
      ws.close();
    }
  }, 120_000);

  it('reports a broken model folder by name and relative file, not by path', async () => {
    fs.cpSync(path.join(models, 'tiny'), path.join(models, 'broken'), { recursive: true });
    fs.rmSync(path.join(models, 'broken', 'scheduler'), { recursive: true });
    const res = await request(`${server.url}/prompt`, { body: { prompt: modelPrompt('broken') } });
    expect(res.status).toBe(400);
    const text = JSON.stringify(res.body);
    expect(text).toContain('model \\"broken\\"');
    expect(text).toContain('scheduler/scheduler_config.json');
    expect(text).not.toContain(server.root);
  });
});

describe('LoadVideoModel in the CLI', () => {
  it('still accepts an absolute path the user types', async () => {
    const env = { paths: { models, output: server.outputDir, input: server.inputDir, temp: server.root } };
    expect(await loadVideoModelNode.validate?.({ model: outside, provider: 'cpu' }, env)).toEqual([]);
    expect(
      await loadVideoModelNodeForServer.validate?.({ model: outside, provider: 'cpu' }, env),
    ).not.toEqual([]);
  });
});
