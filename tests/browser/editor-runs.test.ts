// The editor during and between runs, in a real browser against the real server: a prompt typed in
// the text popup is posted by Queue without leaving the field; cached badges clear when the next
// run starts (ours or another client's); a reload mid-run shows the running node, its steps, the
// clip count and an ETA; the latest output shows on opening, also of another client's prompt; the
// node search finds nodes by category and description words; the history panel lists past prompts
// with their files and loads a past prompt's graph.
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiPrompt } from '../../client/src/types.ts';
import {
  chromiumProblem,
  openEditor,
  openEditorSuite,
  openSearchBox,
  repoRoot,
  waitIdle,
  waitReady,
  widgetCentre,
  type EditorPage,
  type EditorServer,
  type EditorSuite,
} from './harness.ts';

const problem = chromiumProblem();
if (problem !== undefined && process.env.CI) throw new Error(`Browser tests cannot run in CI: ${problem}`);

// Node ids of the shipped workflow (the canvas and API files use the same ones).
const POSITIVE = 2;
const LOOP = 5;
const SAMPLER = 6;

const apiWorkflow = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'workflows', 'vidrd-long-video.json'), 'utf8'),
) as ApiPrompt;

/** Sets widgets as the page's own code would after an edit (value, then an undo step). */
async function setWidgets(page: Page, values: [number, string, unknown][]): Promise<void> {
  await page.evaluate((list) => {
    const app = window.rdflow!;
    for (const [id, name, value] of list) {
      const w = app.graph.getNodeById(id)!.widgets!.find((x: { name: string }) => x.name === name)!;
      w.value = value;
    }
    app.commit();
  }, values);
}

const status = (page: Page): Promise<string> => page.locator('#run-status').innerText();

/** Posts a prompt as another client would (another client id, no editor workflow attached). */
async function postAsOtherClient(url: string, prompt: ApiPrompt): Promise<string> {
  const res = await fetch(`${url}/prompt`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, client_id: 'another-client' }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { prompt_id: string }).prompt_id;
}

const historyCount = async (url: string): Promise<number> =>
  Object.keys((await (await fetch(`${url}/history`)).json()) as object).length;

/** Clicks Queue and waits until that prompt is in the history (done, whatever the outcome). */
async function queueAndWait(page: Page, url: string): Promise<void> {
  const before = await historyCount(url);
  await page.click('#queue-button');
  await expect.poll(() => historyCount(url), { timeout: 120_000, interval: 100 }).toBe(before + 1);
}

describe.skipIf(problem !== undefined)('editor runs in chromium', () => {
  let server: EditorServer;
  let browser: Browser;
  let editor: EditorPage;

  let suite: EditorSuite | undefined;

  beforeAll(async () => {
    suite = await openEditorSuite();
    ({ server, browser, editor } = suite);
  });

  afterAll(async () => {
    await suite?.close();
  });

  it('posts a prompt edited in the text popup when Queue is pressed without leaving the field', async () => {
    const { page } = editor;
    await setWidgets(page, [
      [LOOP, 'iterations', 1],
      [SAMPLER, 'steps', 2],
    ]);
    const posted: { prompt: ApiPrompt }[] = [];
    await page.route('**/prompt', async (route) => {
      if (route.request().method() === 'POST')
        posted.push(route.request().postDataJSON() as { prompt: ApiPrompt });
      await route.continue();
    });
    const [x, y] = await widgetCentre(page, POSITIVE, 'text');
    await page.mouse.click(x, y);
    const field = page.locator('.graphdialog textarea, .graphdialog input').first();
    await field.waitFor({ timeout: 5000 });
    await field.fill('a blue square sliding');
    // Straight to Queue: no OK, no Enter, no click elsewhere first.
    await page.click('#queue-button');
    await expect.poll(() => posted.length).toBe(1);
    expect(posted[0].prompt[String(POSITIVE)].inputs.text).toBe('a blue square sliding');
    expect(await page.locator('.graphdialog').count()).toBe(0);
    await page.unroute('**/prompt');
    await expect.poll(() => historyCount(server.url), { timeout: 60_000 }).toBe(1);
    expect(editor.errors).toEqual([]);
  });

  it('clears cached badges when the next run starts, ours or another client', async () => {
    const { page } = editor;
    // The same graph again: everything is cached.
    await queueAndWait(page, server.url);
    await expect.poll(() => page.evaluate(() => window.rdflow!.state.cached.size)).toBeGreaterThan(0);
    // Our next run (a new clip count, so it runs for a while): no badges once it has started.
    await setWidgets(page, [[LOOP, 'iterations', 30]]);
    await page.click('#queue-button');
    await expect.poll(() => status(page), { timeout: 30_000 }).toMatch(/running #/);
    expect(await page.evaluate(() => window.rdflow!.state.cached.size)).toBe(0);
    await page.evaluate(() => window.rdflow!.api.interrupt());
    await waitIdle(server.url);
    // Badges from a finished run, then a run queued by another client: they clear too.
    await setWidgets(page, [[LOOP, 'iterations', 1]]);
    await queueAndWait(page, server.url);
    await expect.poll(() => page.evaluate(() => window.rdflow!.state.cached.size)).toBeGreaterThan(0);
    const other = structuredClone(apiWorkflow);
    other[String(LOOP)].inputs.iterations = 30;
    other[String(SAMPLER)].inputs.steps = 20;
    await postAsOtherClient(server.url, other);
    await expect.poll(() => status(page), { timeout: 30_000 }).toMatch(/running/);
    expect(await page.evaluate(() => window.rdflow!.state.cached.size)).toBe(0);
    await fetch(`${server.url}/interrupt`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    await waitIdle(server.url);
  });

  it('after a reload mid-run shows the running node, its steps, the clip count and an ETA', async () => {
    const { page } = editor;
    await setWidgets(page, [
      [LOOP, 'iterations', 40],
      [SAMPLER, 'steps', 30],
    ]);
    await page.click('#queue-button');
    await expect.poll(() => status(page), { timeout: 60_000 }).toMatch(/clip [2-9]\d* of 40/);
    await page.reload();
    await waitReady(page);
    await expect
      .poll(() => status(page), { timeout: 30_000 })
      .toMatch(/^running #6 DDIM Sampler \(VidRD\) · step \d+ \/ 30 · clip \d+ of 40 · ETA \d+(m\d\ds|s)/);
    await page.evaluate(() => window.rdflow!.api.interrupt());
    await waitIdle(server.url);
    await expect.poll(() => status(page)).toMatch(/interrupted|idle|finished/);
  });

  it("shows the latest output on opening, also of another client's prompt, and updates it", async () => {
    const other = structuredClone(apiWorkflow);
    other[String(LOOP)].inputs.iterations = 1;
    other[String(SAMPLER)].inputs.steps = 2;
    other['8'].inputs.filename_prefix = 'from-another-client';
    await postAsOtherClient(server.url, other);
    await waitIdle(server.url);
    // The open page follows (the queue's status is sent to every client).
    await editor.page
      .locator('#latest-output a', { hasText: /^from-another-client_\d+\.mp4$/ })
      .waitFor({ timeout: 15_000 });
    // A page opened now shows it, playing.
    const fresh = await openEditor(browser, server.url);
    const video = fresh.page.locator('#latest-output video');
    await video.waitFor({ timeout: 15_000 });
    expect(await video.getAttribute('src')).toContain('from-another-client_');
    await fresh.page.waitForFunction(
      () => (document.querySelector<HTMLVideoElement>('#latest-output video')?.readyState ?? 0) >= 2,
    );
    expect(fresh.errors).toEqual([]);
    await fresh.page.context().close();
  });

  it('lists past prompts with their files and loads a past prompt graph', async () => {
    const { page } = editor;
    const items = page.locator('#history-list .history-item');
    await expect.poll(() => items.count()).toBeGreaterThanOrEqual(4);
    const newest = items.first();
    expect(await newest.locator('.history-file').allInnerTexts()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^from-another-client_\d+\.mp4$/)]),
    );
    expect(await newest.locator('.history-status').innerText()).toMatch(/success/);
    // The other client's prompt (API format): its graph replaces ours, with its values.
    await newest.locator('.history-load').click();
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            window
              .rdflow!.graph.getNodeById(8)!
              .widgets!.find((w: { name: string }) => w.name === 'filename_prefix')!.value as string,
        ),
      )
      .toBe('from-another-client');
    // One of ours (the editor's own workflow travels with it): the popup's prompt comes back.
    const ours = items.filter({ hasText: /rdflow_\d+\.mp4/ }).last();
    await ours.locator('.history-load').click();
    const text = await page.evaluate(
      (id) =>
        window.rdflow!.graph.getNodeById(id)!.widgets!.find((w: { name: string }) => w.name === 'text')!
          .value,
      POSITIVE,
    );
    expect(text).toBe('a blue square sliding');
    expect(editor.errors).toEqual([]);
  });

  it('names the prompt words the demo model does not know, and does not queue an empty prompt', async () => {
    const { page } = editor;
    await page.evaluate(() => window.rdflow!.openShipped('vidrd-long-video.canvas.json'));
    await setWidgets(page, [
      [LOOP, 'iterations', 1],
      [SAMPLER, 'steps', 2],
      [POSITIVE, 'text', 'a purple cat jumping'],
    ]);
    await queueAndWait(page, server.url);
    await page
      .locator('#toasts', {
        hasText:
          /#2 Positive prompt: the demo model does not know 'cat' \(such words do nothing\); it knows red, green/,
      })
      .waitFor({ timeout: 5000 });
    const before = await historyCount(server.url);
    await setWidgets(page, [[POSITIVE, 'text', '   ']]);
    expect(await page.evaluate(() => window.rdflow!.queue())).toBeUndefined();
    await page
      .locator('#toasts', { hasText: /Not queued:\s+#2 Positive prompt: .*the prompt is empty/ })
      .waitFor({ timeout: 5000 });
    expect(await page.evaluate(() => window.rdflow!.state.phase)).toBe('invalid');
    expect(await historyCount(server.url)).toBe(before);
    expect((await (await fetch(`${server.url}/queue`)).json()) as object).toEqual({
      queue_running: [],
      queue_pending: [],
    });
    await setWidgets(page, [[POSITIVE, 'text', 'a red ball']]);
    expect(editor.errors).toEqual([]);
  });

  it('finds nodes in the search box by category and description words', async () => {
    const { page } = editor;
    const box = (await page.locator('#graph-canvas').boundingBox())!;
    await page.evaluate(() => window.rdflow!.canvas.ds.offset.splice(0, 2, 2000, 2000));
    const results = async (query: string): Promise<string[]> => {
      await page.keyboard.press('Escape');
      const search = await openSearchBox(page, box.x + 240, box.y + 160);
      await search.fill(query);
      await page.locator('.litesearchbox .lite-search-item').first().waitFor({ timeout: 5000 });
      const found = await page
        .locator('.litesearchbox .lite-search-item')
        .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.type ?? ''));
      await page.keyboard.press('Escape');
      return found;
    };
    // A category word, a description word, words from both.
    expect(await results('conditioning')).toContain('TextEncode');
    expect(await results('prompt encodes')).toEqual(expect.arrayContaining(['TextEncode']));
    expect(await results('video write')).toContain('VideoWrite');
    expect(editor.errors).toEqual([]);
  });
});
