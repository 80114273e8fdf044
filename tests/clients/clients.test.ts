// The ComfyUI client libraries people install from npm, unchanged, against the real server (every
// node rdflow ships, a small generated model): the shipped long-video workflow with 1 and with 3
// clips through each library's main call returns exactly the videos written to disk, once each, and
// a prompt that fails reaches each library's failure path. What each library waits for (read from
// its code in node_modules):
// - @saintno/comfyui-sdk CallWrapper: `executed` per mapped output node (it finishes when each has
//   sent one; a second would end it early), `execution_success` / `execution_error`, history.
// - @stable-canvas/comfyui-client enqueue: the first `executed` of the prompt is its result;
//   invoke: every `executed`, then the queue; enqueue_polling: the queue, then /history.
// - comfy-ui-client getImages: `executing {node: null}`, then /history outputs' `images`.
import fs from 'node:fs';
import path from 'node:path';
import { CallWrapper, ComfyApi, PromptBuilder } from '@saintno/comfyui-sdk';
import { Client, Workflow, type WorkflowOutput } from '@stable-canvas/comfyui-client';
import { ComfyUIClient } from 'comfy-ui-client';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import type { ApiPrompt } from '../../server/protocol/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import { makeTestModel } from '../helpers/models.ts';
import { idsOf, readWorkflow, shrink } from '../pipeline/workflow.ts';
import { connect, isDone, request, startTestServer, type TestServer } from '../server/helpers.ts';

let server: TestServer;
let host: string;

beforeAll(async () => {
  server = await startTestServer({ nodes: allNodes });
  host = server.url.replace(/^http:\/\//, '');
  await makeTestModel(path.join(server.root, 'models', 'tiny'));
  // A file where the failing prompt wants its output folder: VideoWrite fails when it opens.
  fs.mkdirSync(server.outputDir, { recursive: true });
  fs.writeFileSync(path.join(server.outputDir, 'blocked'), 'not a folder');
}, 60_000);
afterAll(async () => {
  await server.close();
  await getRuntime().release();
});

/** The shipped workflow, small: 64×64, 4 frames, 2 steps, its videos under `prefix/`. */
function workflow(clips: number, prefix: string): ApiPrompt {
  return shrink(readWorkflow('vidrd-long-video.json'), {
    model: 'tiny',
    steps: 2,
    size: 64,
    frames: 4,
    clips,
    prefix,
  });
}

/** A prompt that passes validation and fails when VideoWrite opens its file (its folder is a file). */
function failing(): ApiPrompt {
  const prompt = workflow(2, 'unused');
  for (const id of idsOf(prompt, 'VideoWrite')) prompt[id].inputs.filename_prefix = 'blocked/video';
  return prompt;
}

/** `subfolder/filename` of every file written under output/prefix, sorted. */
function written(prefix: string): string[] {
  const dir = path.join(server.outputDir, prefix);
  return fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .map((f) => `${prefix}/${f}`)
    .sort();
}

type FileRef = { filename: string; subfolder: string; type: string };

function refName(r: FileRef): string {
  expect(r.type).toBe('output');
  return r.subfolder === '' ? r.filename : `${r.subfolder}/${r.filename}`;
}

/** Files named by /view URLs (what stable-canvas resolves `images` to). */
function viewUrlNames(urls: string[]): string[] {
  return urls
    .map((u) => {
      const q = new URL(u).searchParams;
      return refName({ filename: q.get('filename')!, subfolder: q.get('subfolder')!, type: q.get('type')! });
    })
    .sort();
}

const CLIPS = [1, 3];

describe('the message flow ComfyUI clients rely on', () => {
  it('3 clips: one executed per video node after its file is complete, matching /history; clips in their own messages', async () => {
    const ws = await connect(server.url, 'flow');
    const prompt = workflow(3, 'flow');
    const videoNodes = idsOf(prompt, 'VideoWrite');
    const res = await request(`${server.url}/prompt`, { body: { prompt, client_id: 'flow' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { prompt_id } = res.body as { prompt_id: string };
    const sizesAtExecuted: number[] = [];
    ws.ws.on('message', (raw, binary) => {
      if (binary) return;
      const m = JSON.parse(String(raw)) as { type: string; data: { output?: { images?: FileRef[] } } };
      if (m.type !== 'executed') return;
      for (const f of m.data.output?.images ?? []) {
        sizesAtExecuted.push(fs.statSync(path.join(server.outputDir, f.subfolder, f.filename)).size);
      }
    });
    await ws.waitFor(isDone(prompt_id), 120_000);
    const mine = ws.messages.filter((m) => m.data.prompt_id === prompt_id);
    const types = mine.map((m) => m.type);

    const executed = mine.filter((m) => m.type === 'executed');
    expect(executed.map((m) => m.data.node).sort()).toEqual([...videoNodes].sort());
    for (const m of executed) {
      const output = m.data.output as { images: FileRef[]; animated: boolean[] };
      expect(Object.keys(output).sort()).toEqual(['animated', 'images']);
      expect(output.animated).toEqual([true]);
      expect(output.images).toHaveLength(1);
      expect(Object.keys(output.images[0])).toEqual(
        expect.arrayContaining(['filename', 'subfolder', 'type']),
      );
    }
    // Each file was complete (final name, bytes written) when its executed was sent.
    expect(sizesAtExecuted).toHaveLength(2);
    for (const size of sizesAtExecuted) expect(size).toBeGreaterThan(0);
    expect(
      executed.flatMap((m) => (m.data.output as { images: FileRef[] }).images.map(refName)).sort(),
    ).toEqual(written('flow'));

    // Per-clip progress: its own message, one per clip and video node, all before the executed.
    const clips = mine.filter((m) => m.type === 'clip_written');
    expect(clips.length).toBe(videoNodes.length * 2);
    expect(types.lastIndexOf('clip_written')).toBeLessThan(types.indexOf('executed'));

    expect(types.filter((t) => t === 'execution_cached')).toHaveLength(1);
    expect(types.filter((t) => t === 'execution_start')).toHaveLength(1);
    // execution_success last, then executing null.
    expect(types.slice(-2)).toEqual(['execution_success', 'executing']);

    const entry = (
      (await request(`${server.url}/history/${prompt_id}`)).body as Record<
        string,
        { outputs: Record<string, unknown>; status: { status_str: string } }
      >
    )[prompt_id];
    expect(entry.status.status_str).toBe('success');
    expect(entry.outputs).toEqual(Object.fromEntries(executed.map((m) => [m.data.node, m.data.output])));

    // The same prompt again: everything is cached, execution_cached names every node once.
    const again = await request(`${server.url}/prompt`, { body: { prompt, client_id: 'flow' } });
    const id2 = (again.body as { prompt_id: string }).prompt_id;
    await ws.waitFor(isDone(id2), 120_000);
    const second = ws.messages.filter((m) => m.data.prompt_id === id2);
    const cached = second.filter((m) => m.type === 'execution_cached');
    expect(cached).toHaveLength(1);
    const ids = cached[0].data.nodes as string[];
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(['1', '2', '3']));
    expect(
      second
        .filter((m) => m.type === 'executed')
        .map((m) => m.data.node)
        .sort(),
    ).toEqual([...videoNodes].sort());
    expect(second.map((m) => m.type).slice(-2)).toEqual(['execution_success', 'executing']);
    ws.close();
  }, 120_000);
});

describe('@saintno/comfyui-sdk', () => {
  let api: ComfyApi;
  beforeAll(async () => {
    api = new ComfyApi(server.url, 'saintno');
    const connected = new Promise((resolve) => api.addEventListener('connected', resolve, { once: true }));
    api.init(5, 200);
    await api.waitForReady();
    await connected;
  }, 30_000);
  afterAll(() => api.destroy());

  const call = (prompt: ApiPrompt) => {
    const [mp4, gif] = idsOf(prompt, 'VideoWrite');
    const builder = new PromptBuilder(prompt as never, [], ['mp4', 'gif'])
      .setOutputNode('mp4', mp4 as never)
      .setOutputNode('gif', gif as never);
    const finished: unknown[] = [];
    const failed: Error[] = [];
    const outputs: string[] = [];
    const run = new CallWrapper(api, builder)
      .onOutput((key) => outputs.push(String(key)))
      .onFinished((data) => finished.push(data))
      .onFailed((err) => failed.push(err))
      .run();
    return { run, finished, failed, outputs };
  };

  for (const clips of CLIPS) {
    it(`CallWrapper: ${clips} clip(s) finish with exactly the written videos`, async () => {
      const prefix = `saintno-${clips}`;
      const c = call(workflow(clips, prefix));
      const result = (await c.run) as Record<string, { images: FileRef[]; animated: boolean[] }> | false;
      expect(c.failed).toEqual([]);
      expect(result).not.toBe(false);
      expect(c.finished).toHaveLength(1);
      // One output per node, not one per clip.
      expect(c.outputs.sort()).toEqual(['gif', 'mp4']);
      const r = result as Record<'mp4' | 'gif', { images: FileRef[]; animated: boolean[] }>;
      expect(r.mp4.animated).toEqual([true]);
      expect(r.gif.animated).toEqual([true]);
      const names = [...r.mp4.images, ...r.gif.images].map(refName).sort();
      expect(names).toEqual(written(prefix));
      expect(names).toHaveLength(2);
    }, 120_000);
  }

  it('CallWrapper: a failing prompt reaches onFailed, not onFinished', async () => {
    const c = call(failing());
    expect(await c.run).toBe(false);
    expect(c.finished).toEqual([]);
    expect(c.failed).toHaveLength(1);
    // Which error depends on timing, as against ComfyUI: CallWrapper listens for execution_error
    // only after a /history round trip; a prompt that fails sooner is found gone from the queue
    // without a completed history entry ("went missing"). Either way it is the failure path.
    const err = c.failed[0];
    if (err.cause !== undefined) {
      expect((err.cause as { node_type?: string }).node_type).toBe('VideoWrite');
    } else {
      expect(err.message).toMatch(/went missing/);
    }
  }, 120_000);
});

describe('@stable-canvas/comfyui-client', () => {
  let client: Client;
  beforeAll(async () => {
    // Node 20 has fetch but no WebSocket global: the library takes one in its config.
    client = new Client({ api_host: host, clientId: 'stable-canvas', WebSocket });
    client.connect();
    await new Promise<void>((resolve) => {
      if (client.socket?.readyState === WebSocket.OPEN) resolve();
      else client.on('connected' as never, () => resolve());
      const t = setInterval(() => {
        if (client.socket?.readyState === WebSocket.OPEN) {
          clearInterval(t);
          resolve();
        }
      }, 20);
    });
  }, 30_000);
  afterAll(() => client.close());

  /** The /view URLs of a result; `buff` entries are live previews the library collects too. */
  const files = (out: WorkflowOutput) =>
    viewUrlNames(out.images.filter((i) => i.type === 'url').map((i) => String(i.data)));

  /** The workflow built through the library's own Workflow API (ids 1, 2, … as in the file). */
  const asWorkflow = (prompt: ApiPrompt) => {
    const wf = new Workflow();
    const ids = Object.keys(prompt).sort((a, b) => Number(a) - Number(b));
    ids.forEach((id, i) => expect(id).toBe(String(i + 1)));
    for (const id of ids) wf.node(prompt[id].class_type, prompt[id].inputs);
    expect(wf.workflow().prompt).toEqual(
      Object.fromEntries(
        ids.map((id) => [id, { class_type: prompt[id].class_type, inputs: prompt[id].inputs }]),
      ),
    );
    return wf;
  };

  for (const clips of CLIPS) {
    it(`enqueue, enqueue_polling and invoke: ${clips} clip(s) return exactly the written videos`, async () => {
      const a = await client.enqueue(workflow(clips, `sc-enqueue-${clips}`));
      // enqueue takes the first `executed` as the result: it holds a finished video.
      const first = files(a);
      expect(first).toHaveLength(1);
      expect(written(`sc-enqueue-${clips}`)).toContain(first[0]);

      const b = await client.enqueue_polling(workflow(clips, `sc-polling-${clips}`), { polling_ms: 50 });
      expect(files(b)).toEqual(written(`sc-polling-${clips}`));
      expect(files(b)).toHaveLength(2);

      const c = await asWorkflow(workflow(clips, `sc-invoke-${clips}`)).invoke(client);
      expect(files(c)).toEqual(written(`sc-invoke-${clips}`));
      expect(files(c)).toHaveLength(2);
    }, 180_000);
  }

  it('a failing prompt rejects enqueue, enqueue_polling and invoke', async () => {
    await expect(client.enqueue(failing())).rejects.toThrow(/VideoWrite|blocked/);
    await expect(client.enqueue_polling(failing(), { polling_ms: 50 })).rejects.toThrow(
      /execution failed with status: error/,
    );
    await expect(asWorkflow(failing()).invoke(client)).rejects.toThrow();
  }, 180_000);
});

describe('comfy-ui-client', () => {
  let client: ComfyUIClient;
  beforeAll(async () => {
    client = new ComfyUIClient(host, 'comfy-ui-client');
    await client.connect();
  });
  afterAll(() => client.disconnect());

  for (const clips of CLIPS) {
    it(`getImages: ${clips} clip(s) return exactly the written videos`, async () => {
      const prefix = `cuc-${clips}`;
      const got = await client.getImages(workflow(clips, prefix) as never);
      const images = Object.values(got).flat();
      expect(images.map((i) => refName(i.image as FileRef)).sort()).toEqual(written(prefix));
      expect(images).toHaveLength(2);
      for (const i of images) expect(i.blob.size).toBeGreaterThan(0);
    }, 120_000);
  }

  it('a prompt the server refuses rejects getImages; one that fails running returns no images', async () => {
    const bad = workflow(1, 'cuc-bad');
    for (const id of idsOf(bad, 'LoadVideoModel')) bad[id].inputs.model = 'no-such-model';
    await expect(client.getImages(bad as never)).rejects.toThrow(/no-such-model/);
    // The library has no failure path for a run that fails: it finds nothing in /history outputs.
    expect(await client.getImages(failing() as never)).toEqual({});
  }, 120_000);
});
