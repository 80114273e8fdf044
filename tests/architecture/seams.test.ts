// The seams of docs/architecture.md, through a real server: the queue and history are whatever
// startServer is given (and stay open after it), and the model runtime reaches nodes only through
// their RunContext (services.models), as the server lends it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../server/api/store.ts';
import { startServer } from '../../server/api/index.ts';
import { defineNode, input, type AnyNodeDef } from '../../server/engine/define.ts';
import type { ModelRuntime, VideoModel } from '../../server/runtime/index.ts';
import { request, startTestServer, until } from '../server/helpers.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-seams-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A runtime that records what it is asked to load, and loads nothing. */
function recordingRuntime(): ModelRuntime & { loaded: string[] } {
  const loaded: string[] = [];
  return {
    loaded,
    warnings: [],
    loadModel(dir) {
      loaded.push(dir);
      return Promise.resolve({ name: path.basename(dir) } as VideoModel);
    },
    stats: () => ({ sessionsCreated: 0, sessionsOpen: 0 }),
    release: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** An output node that loads `model` through the runtime its context lends. */
const probeNode = defineNode({
  name: 'SeamProbe',
  displayName: 'Seam Probe',
  category: 'testing',
  description: 'Loads a model through ctx.services.models.',
  inputs: { required: { model: input.string({ default: 'm' }) } },
  outputs: [],
  outputNode: true,
  async run({ model }, ctx) {
    const loaded = await ctx.services.models!.loadModel(path.join(ctx.paths.models, model));
    return { outputs: [], ui: { models: [loaded.name] } };
  },
}) as AnyNodeDef;

describe('startServer', () => {
  it('runs on the queue, history and runtime it is given, and leaves the queue and history open', async () => {
    const store = openStore(path.join(root, 'data'));
    const runtime = recordingRuntime();
    const server = await startTestServer({
      root,
      nodes: [probeNode],
      runtime,
      queue: store.queue,
      history: store.history,
    });
    try {
      const posted = await request(`${server.url}/prompt`, {
        body: { prompt: { '1': { class_type: 'SeamProbe', inputs: { model: 'tiny' } } } },
      });
      expect(posted.status).toBe(200);
      const promptId = (posted.body as { prompt_id: string }).prompt_id;
      const entry = await until(() => store.history.get(promptId));
      expect(entry.status.status_str).toBe('success');
      expect(entry.outputs['1']).toEqual({ models: ['tiny'] });
      expect(runtime.loaded).toEqual([path.join(root, 'models', 'tiny')]);
    } finally {
      await server.close();
    }
    // The server is gone; the store its caller opened is still the caller's to use and close.
    expect(await store.queue.remaining()).toBe(0);
    expect((await store.history.list()).length).toBe(1);
    await store.close();
  });

  it('refuses a queue without a history', async () => {
    const store = openStore(path.join(root, 'half'));
    try {
      await expect(
        startServer({ port: 0, outputDir: path.join(root, 'o'), queue: store.queue }),
      ).rejects.toThrow('pass both queue and history, or neither');
    } finally {
      await store.close();
    }
  });
});
