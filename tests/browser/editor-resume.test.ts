// Resume and Extend from the editor's queue panel, in a real browser against the real server: a run
// interrupted after some clips shows Resume, which continues it from its last finished clip; a
// finished run shows Extend, which queues the same workflow with N more clips, continued from the
// finished run's checkpoint instead of starting again.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumProblem,
  openEditorSuite,
  waitIdle,
  type EditorPage,
  type EditorServer,
  type EditorSuite,
} from './harness.ts';

const problem = chromiumProblem();
if (problem !== undefined && process.env.CI) throw new Error(`Browser tests cannot run in CI: ${problem}`);

// Node ids of the shipped workflow.
const LOOP = 5;
const SAMPLER = 6;

interface HistoryEntry {
  prompt: [number, string, Record<string, { inputs: Record<string, unknown> }>, unknown, unknown];
  status: { status_str: string; completed: boolean };
  outputs: Record<string, { images?: { filename: string }[] }>;
}

async function history(url: string): Promise<[string, HistoryEntry][]> {
  return Object.entries((await (await fetch(`${url}/history`)).json()) as Record<string, HistoryEntry>);
}

const status = (page: Page): Promise<string> => page.locator('#run-status').innerText();

describe.skipIf(problem !== undefined)('resume and extend from the editor', () => {
  let suite: EditorSuite;
  let server: EditorServer;
  let editor: EditorPage;

  beforeAll(async () => {
    suite = await openEditorSuite();
    ({ server, editor } = suite);
  });

  afterAll(async () => {
    await suite?.close();
  });

  it('Resume continues an interrupted run from its last clip; Extend adds clips to a finished one', async () => {
    const { page } = editor;
    await page.evaluate(
      ([loop, sampler]) => {
        const app = window.rdflow!;
        const set = (id: number, name: string, value: number) => {
          app.graph.getNodeById(id)!.widgets!.find((w: { name: string }) => w.name === name)!.value = value;
        };
        set(loop, 'iterations', 8);
        set(sampler, 'steps', 20);
        app.commit();
      },
      [LOOP, SAMPLER],
    );
    await page.click('#queue-button');
    await expect.poll(() => status(page), { timeout: 60_000 }).toMatch(/clip [3-7] of 8/);
    await page.evaluate(() => window.rdflow!.api.interrupt());
    await waitIdle(server.url);

    // Interrupted: Resume is offered, Extend is not.
    await page.locator('#resume-run').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await page.locator('#extend-run').isVisible()).toBe(false);
    const before = (await history(server.url)).length;
    await page.click('#resume-run');
    await expect.poll(async () => (await history(server.url)).length, { timeout: 120_000 }).toBe(before + 1);
    await waitIdle(server.url);
    const [, resumed] = (await history(server.url)).at(-1)!;
    expect(resumed.status).toMatchObject({ status_str: 'success', completed: true });
    // The shipped workflow writes an MP4 and a GIF, once each.
    const files = Object.values(resumed.outputs)
      .flatMap((o) => o.images ?? [])
      .map((f) => f.filename);
    expect(files).toHaveLength(2);
    expect(files.some((f) => f.endsWith('.mp4')) && files.some((f) => f.endsWith('.gif'))).toBe(true);
    // It went on from a finished clip, not from the start.
    expect(server.logs.some((l) => /continues from clip [1-7]\/8/.test(l))).toBe(true);

    // Finished: Extend is offered; two more clips continue from the 8 clips saved.
    await page.locator('#extend-run').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await page.locator('#resume-run').isVisible()).toBe(false);
    await page.fill('#extend-clips', '2');
    await page.click('#extend-run');
    await expect.poll(async () => (await history(server.url)).length, { timeout: 120_000 }).toBe(before + 2);
    const [, extended] = (await history(server.url)).at(-1)!;
    expect(extended.status).toMatchObject({ status_str: 'success', completed: true });
    expect(extended.prompt[2][String(LOOP)].inputs.iterations).toBe(10);
    expect(server.logs.some((l) => /continues from clip 8\/\d+/.test(l))).toBe(true);
    expect(editor.errors).toEqual([]);
  });
});
