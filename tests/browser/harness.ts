// What the browser tests need around the page: Debian's chromium (or a reason to skip), the built
// editor, a real server on a free loopback port over temp folders with the demo model, and a page
// that records console errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { startServer, type RunningServer } from '../../server/api/index.ts';
import { ensureClientBuilt } from '../../server/cli.ts';
import { ensureDemoModel } from '../../server/runtime/demo/index.ts';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-gpu'];

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumProblem(): string | undefined {
  return fs.existsSync(CHROMIUM) ? undefined : `no chromium at ${CHROMIUM} (apt-get install chromium)`;
}

export interface EditorServer extends RunningServer {
  root: string;
  outputDir: string;
  /** The folder GET /workflows lists. */
  workflowsDir: string;
  logs: string[];
}

export async function startEditorServer(opts: { workflowsDir?: string } = {}): Promise<EditorServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-browser-'));
  const outputDir = path.join(root, 'output');
  const modelsDir = path.join(root, 'models');
  // Generated before the server starts, so the first run does not include building the model.
  await ensureDemoModel(modelsDir);
  const logs: string[] = [];
  const workflowsDir = opts.workflowsDir ?? path.join(repoRoot, 'workflows');
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    outputDir,
    modelsDir,
    dataDir: path.join(root, 'data'),
    clientDir: ensureClientBuilt(),
    workflowsDir,
    log: (m) => logs.push(m),
  });
  return { ...server, root, outputDir, workflowsDir, logs };
}

export interface EditorPage {
  page: Page;
  /** Console errors and uncaught page errors, in order. */
  errors: string[];
}

export async function openEditor(browser: Browser, url: string): Promise<EditorPage> {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await waitReady(page);
  return { page, errors };
}

/** A suite's server, headless chromium and one editor page on it; close() ends all three. */
export interface EditorSuite {
  server: EditorServer;
  browser: Browser;
  editor: EditorPage;
  close(): Promise<void>;
}

export async function openEditorSuite(opts: { workflowsDir?: string } = {}): Promise<EditorSuite> {
  const server = await startEditorServer(opts);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const editor = await openEditor(browser, server.url);
  return {
    server,
    browser,
    editor,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/**
 * Opens litegraph's node search box by double-clicking the canvas at (x, y), and returns its input.
 * litegraph counts two clicks as a double-click only if it handles them within 300 ms of each
 * other, which a page busy drawing (a loaded CI machine) can miss: then it double-clicks again.
 */
export async function openSearchBox(page: Page, x: number, y: number): Promise<Locator> {
  const search = page.locator('.litesearchbox input');
  for (let attempt = 1; ; attempt++) {
    await page.mouse.move(x, y);
    await page.mouse.dblclick(x, y);
    try {
      await search.waitFor({ timeout: 3000 });
      return search;
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
}

/** Waits until the server has nothing running or pending. */
export async function waitIdle(url: string): Promise<void> {
  await expect
    .poll(
      async () => {
        const q = (await (await fetch(`${url}/queue`)).json()) as {
          queue_running: unknown[];
          queue_pending: unknown[];
        };
        return q.queue_running.length + q.queue_pending.length;
      },
      { timeout: 120_000, interval: 100 },
    )
    .toBe(0);
}

export async function waitReady(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.ready !== undefined, null, { timeout: 30_000 });
  const ready = await page.evaluate(() => document.body.dataset.ready);
  if (ready !== 'true')
    throw new Error(`the editor did not start: ${await page.locator('#toasts').innerText()}`);
}

/** Screen position of a point given in graph coordinates, after centring on a node. */
export async function widgetCentre(page: Page, nodeId: number, widget: string): Promise<[number, number]> {
  return page.evaluate(
    ([id, name]) => {
      const app = window.rdflow!;
      const node = app.graph.getNodeById(id)!;
      app.canvas.centerOnNode(node);
      app.canvas.draw(true, true);
      const w = node.widgets!.find((x: { name: string }) => x.name === name)!;
      const [x, y] = app.canvas.ds.convertOffsetToCanvas([
        node.pos[0] + node.size[0] / 2,
        node.pos[1] + w.y + 10,
      ]);
      const r = app.canvas.canvas.getBoundingClientRect();
      return [r.left + x, r.top + y] as [number, number];
    },
    [nodeId, widget] as const,
  );
}

/** Edits a number or text widget as a person does: click it, type the value, Enter. */
export async function typeIntoWidget(
  page: Page,
  nodeId: number,
  widget: string,
  value: string,
): Promise<void> {
  const [x, y] = await widgetCentre(page, nodeId, widget);
  await page.mouse.click(x, y);
  const input = page.locator('.graphdialog input');
  await input.waitFor({ timeout: 5000 });
  await input.fill(value);
  await input.press('Enter');
  // The edit is recorded on key/pointer up; wait until the widget shows it.
  await page.waitForFunction(
    ([id, name, v]) =>
      String(
        window.rdflow!.graph.getNodeById(id)!.widgets!.find((x: { name: string }) => x.name === name)!.value,
      ) === v,
    [nodeId, widget, value] as const,
  );
}
