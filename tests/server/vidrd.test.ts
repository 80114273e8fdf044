// The shipped long-video workflow through the server, as a ComfyUI client would drive it: queued
// over HTTP, followed over the WebSocket (clip iterations, progress naming the clip, previews as
// each clip is decoded), its video listed in history as an animated `images` output and fetched
// through /view. A small generated model keeps it to seconds.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import { makeTestModel } from '../helpers/models.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';
import { connect, isDone, request, startTestServer, type TestServer } from './helpers.ts';

let server: TestServer;
const CLIPS = 2;

beforeAll(async () => {
  server = await startTestServer({ nodes: allNodes });
  await makeTestModel(path.join(server.root, 'models', 'tiny'));
});
afterAll(async () => {
  await server.close();
  await getRuntime().release();
});

type Image = { filename: string; subfolder: string; type: string };

describe('vidrd-long-video.json through the server', () => {
  it('streams clip iterations and previews, and serves the video from history', async () => {
    const prompt = shrink(readWorkflow('vidrd-long-video.json'), {
      model: 'tiny',
      steps: 3,
      size: 64,
      frames: 4,
      clips: CLIPS,
      prefix: 'srv',
    });
    const ws = await connect(server.url, 'vidrd');
    const res = await request(`${server.url}/prompt`, { body: { prompt, client_id: 'vidrd' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { prompt_id } = res.body as { prompt_id: string };
    const done = await ws.waitFor(isDone(prompt_id), 120_000);
    expect(done.data.node).toBeNull();
    const mine = ws.messages.filter((m) => m.data.prompt_id === prompt_id);
    expect(mine.map((m) => m.type)).toContain('execution_success');

    const iterations = mine.filter((m) => m.type === 'iteration');
    expect(iterations.map((m) => m.data.iteration)).toEqual(Array.from({ length: CLIPS }, (_, i) => i));
    expect(iterations.every((m) => m.data.iterations === CLIPS)).toBe(true);
    const clipProgress = mine.filter((m) => m.type === 'progress' && m.data.iterations === CLIPS);
    expect(new Set(clipProgress.map((m) => m.data.iteration))).toEqual(new Set([0, 1]));
    // At least one preview per clip, as a binary frame with a known format.
    expect(ws.binary.length).toBeGreaterThanOrEqual(CLIPS);
    for (const f of ws.binary) {
      expect(f.readUInt32BE(0)).toBe(1);
      expect([1, 2]).toContain(f.readUInt32BE(4));
    }

    const entry = (
      (await request(`${server.url}/history/${prompt_id}`)).body as Record<
        string,
        {
          outputs: Record<string, { images?: Image[]; animated?: boolean[] }>;
          status: { status_str: string };
        }
      >
    )[prompt_id];
    expect(entry.status.status_str).toBe('success');
    const videos = Object.values(entry.outputs).filter((o) => o.animated?.[0] === true);
    expect(videos.length).toBeGreaterThan(0);
    for (const out of videos) {
      const image = out.images![0];
      expect(image.type).toBe('output');
      const q = new URLSearchParams({
        filename: image.filename,
        subfolder: image.subfolder,
        type: image.type,
      });
      const file = await fetch(`${server.url}/view?${q}`);
      expect(file.status).toBe(200);
      const bytes = Buffer.from(await file.arrayBuffer());
      const onDisk = fs.readFileSync(path.join(server.outputDir, image.subfolder, image.filename));
      expect(bytes.equals(onDisk)).toBe(true);
      expect(bytes.length).toBeGreaterThan(100);
    }
    ws.close();
  }, 180_000);
});
