// The editor in a real browser against the real server, used the way a person uses it: the page
// opens on the default VidRD workflow, widget edits typed into the canvas reach the prompt the
// Queue button posts, the run shows its progress and ends with the video playing on its node, a
// broken link is drawn as an error on its node, and undo brings the link back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiPrompt } from '../../client/src/types.ts';
import {
  chromiumProblem,
  openEditorSuite,
  openSearchBox,
  repoRoot,
  typeIntoWidget,
  waitReady,
  type EditorPage,
  type EditorServer,
  type EditorSuite,
} from './harness.ts';

/** What the tests read of a litegraph node (its types are `any` under the repo's NodeNext resolution). */
interface NodeLike {
  id: number | string;
  type: string;
}

interface CanvasFile {
  nodes: { id: number; type: string; title?: string; widgets_values?: unknown[] }[];
}

const problem = chromiumProblem();
if (problem !== undefined && process.env.CI) throw new Error(`Browser tests cannot run in CI: ${problem}`);
if (problem !== undefined) console.warn(`Skipping the browser tests: ${problem}`);

const workflow = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'workflows', 'vidrd-long-video.canvas.json'), 'utf8'),
) as CanvasFile;
const idOf = (type: string, title?: RegExp): number => {
  const node = workflow.nodes.find(
    (n) => n.type === type && (title === undefined || title.test(n.title ?? '')),
  );
  if (node === undefined) throw new Error(`the default workflow has no ${type} node`);
  return node.id;
};
const LOOP = idOf('LoopStart');
const SAMPLER = idOf('DDIMSampler');
const DECODE = idOf('VAEDecode');
const NOISE = idOf('NoiseInit');
const MP4 = idOf('VideoWrite', /mp4/i);

/** Statuses the side panel shows, recorded as they change. */
/** RGBA of the canvas pixel just left of a node's edge, where its outline is drawn. */
function outlinePixel(page: Page, nodeId: number): Promise<number[]> {
  return page.evaluate((id) => {
    const app = window.rdflow!;
    const node = app.graph.getNodeById(id)!;
    app.canvas.draw(true, true);
    const [x, y] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] - 5, node.pos[1] + node.size[1] / 2]);
    const dpr = window.devicePixelRatio || 1;
    const ctx = app.canvas.canvas.getContext('2d')!;
    return Array.from(ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data);
  }, nodeId);
}

async function recordStatuses(page: Page): Promise<string[]> {
  const seen: string[] = [];
  await page.exposeFunction('rdflowStatus', (text: string) => seen.push(text));
  await page.evaluate(() => {
    const el = document.getElementById('run-status')!;
    const w = window as unknown as { rdflowStatus(t: string): void };
    new MutationObserver(() => w.rdflowStatus(el.textContent ?? '')).observe(el, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  return seen;
}

/** The prompt bodies the page posts, captured on the way to the server (which still gets them). */
async function capturePrompts(page: Page): Promise<{ prompt: ApiPrompt; client_id?: string }[]> {
  const posted: { prompt: ApiPrompt; client_id?: string }[] = [];
  await page.route('**/prompt', async (route) => {
    if (route.request().method() === 'POST')
      posted.push(route.request().postDataJSON() as (typeof posted)[number]);
    await route.continue();
  });
  return posted;
}

/** Title the server's copy of the default workflow gives its LoopStart (the shipped file has none such). */
const SERVER_COPY_TITLE = 'Clips (server copy)';
const EXTRA_WORKFLOW = 'zz-extra.canvas.json';

/**
 * The server's workflows folder: the shipped files, the default one retitled so the page shows
 * which copy it opened, and one extra workflow that the build never saw.
 */
function serverWorkflows(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-browser-workflows-'));
  for (const name of fs.readdirSync(path.join(repoRoot, 'workflows'))) {
    fs.copyFileSync(path.join(repoRoot, 'workflows', name), path.join(dir, name));
  }
  const copy = structuredClone(workflow);
  copy.nodes.find((n) => n.id === LOOP)!.title = SERVER_COPY_TITLE;
  fs.writeFileSync(path.join(dir, 'vidrd-long-video.canvas.json'), JSON.stringify(copy));
  fs.copyFileSync(
    path.join(repoRoot, 'workflows', 'single-clip.canvas.json'),
    path.join(dir, EXTRA_WORKFLOW),
  );
  return dir;
}

describe.skipIf(problem !== undefined)('editor in chromium', () => {
  let suite: EditorSuite | undefined;
  let server: EditorServer;
  let browser: Browser;
  let editor: EditorPage;
  let posted: { prompt: ApiPrompt; client_id?: string }[];
  let statuses: string[];
  const frames = Number(workflow.nodes.find((n) => n.id === NOISE)?.widgets_values?.[2]);

  beforeAll(async () => {
    suite = await openEditorSuite({ workflowsDir: serverWorkflows() });
    ({ server, browser, editor } = suite);
    posted = await capturePrompts(editor.page);
    statuses = await recordStatuses(editor.page);
  });

  afterAll(async () => {
    await suite?.close();
  });

  it('opens on the default VidRD workflow without console errors', async () => {
    const nodes = await editor.page.evaluate(() =>
      window.rdflow!.graph.nodes.map((n: NodeLike) => ({ id: Number(n.id), type: n.type })),
    );
    expect(nodes.sort((a: { id: number }, b: { id: number }) => a.id - b.id)).toEqual(
      workflow.nodes.map((n) => ({ id: n.id, type: n.type })),
    );
    // The server's copy, not the one bundled into the build.
    const loopTitle = await editor.page.evaluate((id) => window.rdflow!.graph.getNodeById(id)?.title, LOOP);
    expect(loopTitle).toBe(SERVER_COPY_TITLE);
    expect(editor.errors).toEqual([]);
  });

  it('offers every server node type and refuses links between incompatible sockets', async () => {
    const info = (await (await fetch(`${server.url}/object_info`)).json()) as Record<string, unknown>;
    const result = await editor.page.evaluate(
      ([noise, sampler]) => {
        const app = window.rdflow!;
        const from = app.graph.getNodeById(noise)!;
        const to = app.graph.getNodeById(sampler)!;
        // NOISE into a CONDITIONING socket is refused; NOISE into the NOISE socket is accepted.
        const wrong = from.connect(0, to, to.findInputSlot('positive'));
        const types = app.liteGraph.registered_node_types;
        return {
          refused: wrong === null,
          types: Object.fromEntries(
            Object.entries(types).map(([name, cls]) => [
              name,
              (cls as unknown as { category: string }).category,
            ]),
          ),
        };
      },
      [NOISE, SAMPLER] as const,
    );
    expect(result.refused).toBe(true);
    const categories = Object.fromEntries(
      Object.entries(info).map(([name, entry]) => [name, (entry as { category: string }).category]),
    );
    expect(result.types).toEqual(categories);
  });

  it('sends widget edits typed into the canvas in the prompt the Queue button posts', async () => {
    const { page } = editor;
    await typeIntoWidget(page, SAMPLER, 'steps', '20');
    await typeIntoWidget(page, LOOP, 'iterations', '2');
    await typeIntoWidget(page, MP4, 'fps', '8');
    await page.click('#queue-button');
    await expect.poll(() => posted.length).toBe(1);
    const body = posted[0];
    expect(body.client_id).toBe(await page.evaluate(() => window.rdflow!.api.clientId));
    expect(body.prompt[String(SAMPLER)].inputs.steps).toBe(20);
    expect(body.prompt[String(LOOP)].inputs.iterations).toBe(2);
    expect(body.prompt[String(MP4)].inputs.fps).toBe(8);
  });

  it('shows step progress and the clip counter, previews each clip, and ends with the video playing on its node', async () => {
    const { page } = editor;
    const video = page.locator(`.media-overlay[data-node-id="${MP4}"] video`);
    await video.waitFor({ timeout: 60_000 });
    await page.waitForFunction(
      (sel) => (document.querySelector<HTMLVideoElement>(sel)?.readyState ?? 0) >= 2,
      `.media-overlay[data-node-id="${MP4}"] video`,
      { timeout: 30_000 },
    );
    await page.waitForFunction(() => window.rdflow!.state.phase !== 'running', null, { timeout: 60_000 });
    expect(await page.evaluate(() => window.rdflow!.state.phase)).toBe('success');
    // The side panel followed the run: the sampler's steps, and both clips of the loop.
    expect(statuses.some((s) => /DDIM Sampler.*step \d+ \/ 20/.test(s))).toBe(true);
    expect(statuses.some((s) => s.includes('clip 1 of 2'))).toBe(true);
    expect(statuses.some((s) => s.includes('clip 2 of 2'))).toBe(true);
    // Each decoded clip was previewed on the decoder node.
    const previewWidth = await page.evaluate(
      (id) => window.rdflow!.outputs.preview(String(id))?.naturalWidth ?? 0,
      DECODE,
    );
    expect(previewWidth).toBeGreaterThan(0);

    const media = await video.evaluate((v: HTMLVideoElement) => ({
      duration: v.duration,
      src: v.currentSrc,
    }));
    // N frames per clip × K clips at the fps typed into the node.
    expect(media.duration).toBeGreaterThan((frames * 2 - 1) / 8);
    expect(media.duration).toBeLessThan((frames * 2 + 1) / 8);
    const src = new URL(media.src);
    expect(src.pathname).toMatch(/\/view$/);
    expect(src.searchParams.get('type')).toBe('output');
    expect(
      fs.existsSync(
        path.join(
          server.outputDir,
          src.searchParams.get('subfolder') ?? '',
          src.searchParams.get('filename')!,
        ),
      ),
    ).toBe(true);
    const link = page.locator(`.media-overlay[data-node-id="${MP4}"] a.media-link`);
    expect(await link.getAttribute('href')).toBe(media.src);

    await page.evaluate(() => window.rdflow!.fitView());
    await page.waitForTimeout(500);
    fs.mkdirSync(path.join(repoRoot, 'test-results'), { recursive: true });
    await page.screenshot({ path: path.join(repoRoot, 'test-results', 'editor.png') });
    expect(editor.errors).toEqual([]);
  });

  it("restores the last graph, edits included, and the last run's video on reload", async () => {
    const { page } = editor;
    await page.reload();
    await waitReady(page);
    const steps = await page.evaluate(
      (id) =>
        window.rdflow!.graph.getNodeById(id)!.widgets!.find((w: { name: string }) => w.name === 'steps')!
          .value,
      SAMPLER,
    );
    expect(steps).toBe(20);
    // The last run's video is back on its node.
    await page.locator(`.media-overlay[data-node-id="${MP4}"] video`).waitFor({ timeout: 10_000 });
  });

  it('draws a broken link as an error on its node, and undo brings the link back', async () => {
    const { page } = editor;
    const before = posted.length;
    await page.evaluate((id) => {
      const app = window.rdflow!;
      const node = app.graph.getNodeById(id)!;
      node.disconnectInput(node.findInputSlot('positive'));
      app.commit();
    }, SAMPLER);
    await page.click('#queue-button');
    await expect.poll(() => posted.length).toBe(before + 1);
    expect(posted[before].prompt[String(SAMPLER)].inputs.positive).toBeUndefined();
    await page.waitForFunction(() => window.rdflow!.state.phase === 'invalid');
    const errors = await page.evaluate((id) => window.rdflow!.state.errorsOf(String(id)), SAMPLER);
    expect(errors.map((e) => e.extra_info?.input_name)).toContain('positive');
    expect(await page.locator('#run-status').innerText()).toMatch(/not queued/);
    // Chromium logs the refused POST itself; nothing else went to the console.
    expect(editor.errors).toEqual([expect.stringMatching(/status of 400/)]);
    editor.errors.length = 0;

    // The node is outlined in red on the canvas: read the pixel on its left edge.
    const pixel = await outlinePixel(page, SAMPLER);
    expect(pixel[0]).toBeGreaterThan(200);
    expect(pixel[1]).toBeLessThan(120);

    await page.locator('#graph-canvas').focus();
    await page.keyboard.press('Control+z');
    const linked = await page.evaluate((id) => {
      const node = window.rdflow!.graph.getNodeById(id)!;
      return node.inputs[node.findInputSlot('positive')].link;
    }, SAMPLER);
    expect(linked).not.toBeNull();
  });

  it('lists running and pending prompts, cancels the pending one and stops the running one', async () => {
    const { page } = editor;
    // Long enough to act while it runs (~30 ms a step with the demo model).
    await page.evaluate((id) => {
      const node = window.rdflow!.graph.getNodeById(id)!;
      node.widgets!.find((w: { name: string }) => w.name === 'steps')!.value = 500;
    }, SAMPLER);
    await page.click('#queue-button');
    await page.waitForFunction(
      (id) =>
        window.rdflow!.state.executing === String(id) && (window.rdflow!.state.progress?.value ?? 0) > 0,
      SAMPLER,
      { timeout: 30_000 },
    );
    // The running node is outlined in green on the canvas.
    const pixel = await outlinePixel(page, SAMPLER);
    expect(pixel[1]).toBeGreaterThan(180);
    expect(pixel[0]).toBeLessThan(120);

    await page.click('#queue-button');
    const pending = page.locator('#queue-pending .queue-item');
    await pending.waitFor({ timeout: 10_000 });
    const running = page.locator('#queue-running .queue-item');
    await running.waitFor();
    const pendingId = await pending.getAttribute('data-prompt-id');
    await pending.locator('button').click();
    await page.locator('#queue-pending .queue-empty').waitFor();
    const queue = (await (await fetch(`${server.url}/queue`)).json()) as { queue_pending: unknown[][] };
    expect(queue.queue_pending.map((item) => item[1])).not.toContain(pendingId);

    await running.locator('button').click();
    await page.waitForFunction(() => window.rdflow!.state.phase === 'interrupted', null, { timeout: 30_000 });
    await expect.poll(() => page.locator('#run-status').innerText()).toMatch(/interrupted/);
    await page.locator('#queue-running .queue-empty').waitFor();
  });

  it('names the node that failed while running and keeps the graph as it was', async () => {
    const { page } = editor;
    // A subfolder whose name a plain file already takes: only writing the video finds that out
    // (a bad value would be refused at validation instead).
    fs.mkdirSync(server.outputDir, { recursive: true });
    fs.writeFileSync(path.join(server.outputDir, 'taken'), 'a file, not a folder');
    const setPrefix = (prefix: string) =>
      page.evaluate(
        ([id, p]) => {
          const app = window.rdflow!;
          app.graph
            .getNodeById(id)!
            .widgets!.find((w: { name: string }) => w.name === 'filename_prefix')!.value = p;
          app.commit();
        },
        [MP4, prefix] as const,
      );
    await setPrefix('taken/rdflow');
    const before = await page.evaluate(() => JSON.stringify(window.rdflow!.serialize().nodes));
    await page.locator('#graph-canvas').focus();
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(() => window.rdflow!.state.phase === 'error', null, { timeout: 60_000 });
    const failure = page.locator('#run-failure');
    await expect.poll(() => failure.innerText()).toMatch(new RegExp(`#${MP4} .*Video Write`));
    expect(await failure.innerText()).toMatch(/taken/);
    expect(await page.evaluate(() => JSON.stringify(window.rdflow!.serialize().nodes))).toBe(before);
    // Put the prefix back for what follows.
    await setPrefix('rdflow');
  });

  it('saves the graph, exports the prompt, and opens workflow files from disk and by dropping them', async () => {
    const { page } = editor;
    const [save] = await Promise.all([page.waitForEvent('download'), page.click('#save-button')]);
    const saved = JSON.parse(fs.readFileSync(await save.path(), 'utf8')) as CanvasFile & { links: unknown[] };
    const ids = await page.evaluate(() => window.rdflow!.graph.nodes.map((n: NodeLike) => Number(n.id)));
    expect(saved.nodes.map((n) => n.id).sort()).toEqual(ids.sort());
    expect(saved.links.length).toBeGreaterThan(0);

    const [exported] = await Promise.all([page.waitForEvent('download'), page.click('#export-api-button')]);
    const api = JSON.parse(fs.readFileSync(await exported.path(), 'utf8')) as ApiPrompt;
    expect(api).toEqual(await page.evaluate(() => window.rdflow!.toPrompt()));

    // An API-format file, opened with the file picker: laid out on the canvas, links and values kept.
    const singleClip = path.join(repoRoot, 'workflows', 'single-clip.json');
    await page.locator('#toolbar input[type=file]').setInputFiles(singleClip);
    const expected = JSON.parse(fs.readFileSync(singleClip, 'utf8')) as ApiPrompt;
    await expect
      .poll(() => page.evaluate(() => window.rdflow!.toPrompt()))
      .toEqual(
        Object.fromEntries(
          Object.entries(expected).map(([id, n]) => [
            id,
            { ...n, _meta: { title: n._meta?.title ?? expect.any(String) } },
          ]),
        ),
      );

    // The default workflow, dropped on the canvas.
    const text = fs.readFileSync(path.join(repoRoot, 'workflows', 'vidrd-long-video.canvas.json'), 'utf8');
    await page.evaluate((content) => {
      const data = new DataTransfer();
      data.items.add(new File([content], 'vidrd-long-video.canvas.json', { type: 'application/json' }));
      document
        .getElementById('workspace')!
        .dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true }));
    }, text);
    await expect
      .poll(() => page.evaluate(() => window.rdflow!.graph.nodes.length))
      .toBe(workflow.nodes.length);
    expect(editor.errors).toEqual([]);
  });

  it("lists the server's workflows folder, files the build never saw included, and opens them", async () => {
    const { page } = editor;
    const dir = server.workflowsDir;
    const onDisk = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
    const listed = async () =>
      page.evaluate(() =>
        Array.from((document.getElementById('workflow-list') as HTMLSelectElement).options)
          .map((o) => o.value)
          .filter((v) => v !== ''),
      );
    await expect.poll(listed).toEqual(onDisk.sort());
    expect(await listed()).toContain(EXTRA_WORKFLOW);

    const extra = JSON.parse(fs.readFileSync(path.join(dir, EXTRA_WORKFLOW), 'utf8')) as CanvasFile;
    await page.selectOption('#workflow-list', EXTRA_WORKFLOW);
    await expect
      .poll(() =>
        page.evaluate(() => window.rdflow!.graph.nodes.map((n: NodeLike) => `${n.id}:${n.type}`).sort()),
      )
      .toEqual(extra.nodes.map((n) => `${n.id}:${n.type}`).sort());

    // A file added while the page is open appears the next time the list is focused.
    fs.copyFileSync(path.join(dir, 'single-clip.json'), path.join(dir, 'added-later.json'));
    await page.focus('#workflow-list');
    await expect.poll(listed).toContain('added-later.json');

    // Back to the default workflow (the server's copy), which the tests after this one expect.
    await page.selectOption('#workflow-list', 'vidrd-long-video.canvas.json');
    await expect
      .poll(() => page.evaluate((id) => window.rdflow!.graph.getNodeById(id)?.title, LOOP))
      .toBe(SERVER_COPY_TITLE);
    expect(editor.errors).toEqual([]);
  });

  it("opens the bundled default workflow on first visit when the server's copy cannot be fetched", async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    try {
      const page = await context.newPage();
      await page.route('**/workflows/vidrd-long-video.canvas.json', (route) => route.abort());
      await page.goto(server.url);
      await waitReady(page);
      const nodes = await page.evaluate(() =>
        window.rdflow!.graph.nodes.map((n: NodeLike) => `${n.id}:${n.type}`).sort(),
      );
      expect(nodes).toEqual(workflow.nodes.map((n) => `${n.id}:${n.type}`).sort());
      // The shipped file's title, not the server copy's.
      expect(await page.evaluate((id) => window.rdflow!.graph.getNodeById(id)?.title, LOOP)).not.toBe(
        SERVER_COPY_TITLE,
      );
    } finally {
      await context.close();
    }
  });

  it('bypasses (Ctrl+B) and mutes (Ctrl+M) the selected node, which changes what is posted', async () => {
    const { page } = editor;
    const fnr = idOf('FNRReverse');
    const pns = idOf('PNSNoise');
    const promptOf = () => page.evaluate(() => window.rdflow!.toPrompt());
    const before = await promptOf();
    expect(before[String(pns)].inputs.noise).toEqual([String(fnr), 0]);
    await page.evaluate((id) => {
      const app = window.rdflow!;
      app.canvas.deselectAll();
      app.canvas.selectNode(app.graph.getNodeById(id)!);
    }, fnr);
    await page.locator('#graph-canvas').focus();
    await page.keyboard.press('Control+b');
    // Bypassed: PNS reads FNR's own input (the loop's current noise) instead.
    const bypassed = await promptOf();
    expect(bypassed[String(fnr)]).toBeUndefined();
    expect(bypassed[String(pns)].inputs.noise).toEqual(before[String(fnr)].inputs.noise);
    await page.keyboard.press('Control+m');
    const muted = await promptOf();
    expect(muted[String(fnr)]).toBeUndefined();
    expect(muted[String(pns)].inputs.noise).toBeUndefined();
    await page.keyboard.press('Control+m');
    expect(await promptOf()).toEqual(before);
  });

  it('groups the selected nodes (Ctrl+G), deletes them (Delete), and undoes both', async () => {
    const { page } = editor;
    const counts = () =>
      page.evaluate(() => ({
        nodes: window.rdflow!.graph.nodes.length,
        groups: window.rdflow!.serialize().groups?.length ?? 0,
      }));
    const start = await counts();
    const prompts = [idOf('TextEncode', /positive/i), idOf('TextEncode', /negative/i)];
    await page.evaluate((ids) => {
      const app = window.rdflow!;
      app.canvas.deselectAll();
      for (const id of ids) app.canvas.selectNode(app.graph.getNodeById(id)!, true);
    }, prompts);
    await page.locator('#graph-canvas').focus();
    await page.keyboard.press('Control+g');
    expect(await counts()).toEqual({ nodes: start.nodes, groups: start.groups + 1 });
    // The deletion is recorded (and saved) as its own step while the key is still down: under load
    // the next action can arrive before anything scheduled for the key-up has run.
    await page.keyboard.down('Delete');
    const saved = await page.evaluate(
      () => (JSON.parse(localStorage.getItem('rdflow.workflow')!) as { nodes: unknown[] }).nodes.length,
    );
    expect(saved).toBe(start.nodes - 2);
    await page.keyboard.up('Delete');
    await expect.poll(counts).toEqual({ nodes: start.nodes - 2, groups: start.groups + 1 });
    await page.keyboard.press('Control+z');
    await expect.poll(counts).toEqual({ nodes: start.nodes, groups: start.groups + 1 });
    await page.keyboard.press('Control+z');
    await expect.poll(counts).toEqual(start);
    await page.keyboard.press('Control+y');
    await expect.poll(counts).toEqual({ nodes: start.nodes, groups: start.groups + 1 });
  });

  it('adds a node from the search box opened by double-clicking the canvas', async () => {
    const { page } = editor;
    const count = await page.evaluate(() => window.rdflow!.graph.nodes.length);
    const box = (await page.locator('#graph-canvas').boundingBox())!;
    // An empty spot: the graph panned far to the bottom right.
    await page.evaluate(() => window.rdflow!.canvas.ds.offset.splice(0, 2, 2000, 2000));
    const search = await openSearchBox(page, box.x + 240, box.y + 160);
    await search.fill('VAE Decode');
    await page.locator('.litesearchbox .lite-search-item').first().waitFor();
    await search.press('Enter');
    await expect.poll(() => page.evaluate(() => window.rdflow!.graph.nodes.length)).toBe(count + 1);
    expect(editor.errors).toEqual([]);
  });
});
