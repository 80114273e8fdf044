// Issue 15, output path escape: a filename_prefix whose subfolder is a link out of the output
// folder, or becomes one while the clips are written, creates no folder and no file outside; and
// an output folder that cannot be written fails VideoWrite by name (not "Error in node  (?)").
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  isDone,
  request,
  startTestServer,
  type TestServer,
  type WsClient,
} from '../server/helpers.ts';
import { imageHooks, securityNodes, videoPrompt } from './helpers.ts';

let server: TestServer;
let ws: WsClient;
let outside: string;

beforeAll(async () => {
  server = await startTestServer({ nodes: securityNodes() });
  ws = await connect(server.url, 'out');
  outside = path.join(server.root, 'outside');
  fs.mkdirSync(outside);
});
afterAll(async () => {
  ws.close();
  await server.close();
});

/** Every file and folder under `dir`, relative, sorted. */
function tree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

async function run(prompt: Record<string, unknown>) {
  const res = await request(`${server.url}/prompt`, { body: { prompt, client_id: 'out' } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const id = (res.body as { prompt_id: string }).prompt_id;
  await ws.waitFor(isDone(id), 30_000);
  const h = (await request(`${server.url}/history/${id}`)).body as Record<
    string,
    {
      status: { status_str: string; messages: [string, Record<string, unknown>][] };
      outputs: Record<string, { images?: { filename: string; subfolder: string }[] }>;
    }
  >;
  const entry = h[id];
  const error = entry.status.messages.find(([t]) => t === 'execution_error')?.[1];
  return { entry, error };
}

describe('filename_prefix and links', () => {
  it('writes a legitimate subfolder prefix', async () => {
    const { entry } = await run(videoPrompt('videos/clip'));
    expect(entry.status.status_str).toBe('success');
    expect(entry.outputs['9'].images).toEqual([
      expect.objectContaining({ filename: 'clip_00001.gif', subfolder: 'videos' }),
    ]);
    expect(fs.existsSync(path.join(server.outputDir, 'videos', 'clip_00001.gif'))).toBe(true);
  });

  it('refuses a subfolder that is a link out, creating nothing outside (also deeper folders)', async () => {
    fs.symlinkSync(outside, path.join(server.outputDir, 'link'));
    // `mkdir -p` through the link would have made outside/deeper/still before any check.
    for (const prefix of ['link/clip', 'link/deeper/still/clip']) {
      const { entry, error } = await run(videoPrompt(prefix));
      expect(entry.status.status_str, prefix).toBe('error');
      expect(error?.node_type, prefix).toBe('VideoWrite');
      expect(String(error?.exception_message), prefix).toMatch(/outside the output folder/);
    }
    expect(tree(outside)).toEqual([]);
  });

  it('refuses a prefix with .. at validation', async () => {
    const res = await request(`${server.url}/prompt`, {
      body: { prompt: videoPrompt('videos/../../outside/clip') },
    });
    expect(res.status).toBe(400);
    expect(tree(outside)).toEqual([]);
  });

  it('does not write through a subfolder swapped for a link while the clips are written', async () => {
    const sub = path.join(server.outputDir, 'swapped');
    imageHooks.set('swap', (index) => {
      if (index !== 1) return;
      // The attacker renames the real folder away and puts a link out in its place.
      fs.renameSync(sub, `${sub}-moved`);
      fs.symlinkSync(outside, sub);
    });
    try {
      const { entry, error } = await run(videoPrompt('swapped/clip', { iterations: 3, hook: 'swap' }));
      expect(entry.status.status_str).toBe('error');
      expect(error?.node_type).toBe('VideoWrite');
      expect(error?.node_id).toBe('9');
      expect(String(error?.exception_message)).toMatch(/outside the output folder/);
    } finally {
      imageHooks.delete('swap');
    }
    expect(tree(outside)).toEqual([]);
    // The temp file stayed where it was made, inside the output folder, and is not listed as output.
    expect(tree(`${sub}-moved`).every((f) => f.startsWith('.'))).toBe(true);
  });
});

describe('an output folder that cannot be written', () => {
  it('fails VideoWrite by name, saying the output folder is not writable', async () => {
    const s = await startTestServer({ nodes: securityNodes() });
    const client = await connect(s.url, 'ro');
    try {
      // Replaced by a file after the start: nothing can be created in it.
      fs.rmSync(s.outputDir, { recursive: true });
      fs.writeFileSync(s.outputDir, 'not a folder');
      const res = await request(`${s.url}/prompt`, {
        body: { prompt: videoPrompt('clip'), client_id: 'ro' },
      });
      expect(res.status).toBe(200);
      const id = (res.body as { prompt_id: string }).prompt_id;
      const err = await client.waitFor((m) => m.type === 'execution_error' && m.data.prompt_id === id);
      expect(err.data.node_id).toBe('9');
      expect(err.data.node_type).toBe('VideoWrite');
      expect(String(err.data.exception_message)).toMatch(/output folder is not writable/);
      await client.waitFor(isDone(id));
      expect((await request(`${s.url}/queue`)).status).toBe(200);
    } finally {
      client.close();
      await s.close();
    }
  });
});
