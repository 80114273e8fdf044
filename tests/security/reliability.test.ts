// Issue 15, nothing left behind and nothing lost: what a server killed with -9 leaves (video temp
// files, a half-received upload, spill-cache folders) is swept at the next start; /view never
// serves a temporary or partial file; a prompt running at the crash is queued again once, and a
// prompt under which the server dies twice is marked failed instead of crash-looping.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CRASHED_AGAIN_MESSAGE } from '../../server/api/index.ts';
import { rawGet, request, slowPrompt, startTestServer, until } from '../server/helpers.ts';
import { securityNodes, spawnServer, videoPrompt, type SpawnedServer } from './helpers.ts';

const spawned: SpawnedServer[] = [];
afterEach(() => {
  for (const s of spawned.splice(0)) if (s.child.exitCode === null) s.child.kill('SIGKILL');
});

async function start(root: string, ...flags: string[]): Promise<SpawnedServer> {
  const s = await spawnServer(root, ...flags);
  spawned.push(s);
  return s;
}

async function kill9(s: SpawnedServer): Promise<void> {
  s.child.kill('SIGKILL');
  await s.exited;
}

/** Files (not folders) under `dir`, relative, sorted. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.lstatSync(path.join(dir, f)).isFile())
    .sort();
}

/** Starts an upload and stops sending halfway: the server holds a `.partial` file for it. */
function halfUpload(port: number): net.Socket {
  const b = '----half';
  const head =
    `--${b}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n` +
    'Content-Type: image/png\r\n\r\n';
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  sock.write(
    `POST /upload/image HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      `Content-Type: multipart/form-data; boundary=${b}\r\nContent-Length: 10000000\r\n\r\n${head}`,
  );
  sock.write(Buffer.alloc(256 * 1024, 7));
  return sock;
}

describe('kill -9 leftovers', () => {
  it('are never served while they exist and are swept at the next start', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-sweep-'));
    const first = await start(root, '--no-requeue');
    // A long video run: its temp file sits in output/k while clips arrive.
    const res = await request(`${first.url}/prompt`, {
      body: { prompt: videoPrompt('k/clip', { iterations: 200, delayMs: 20 }) },
    });
    expect(res.status).toBe(200);
    const out = path.join(root, 'output');
    const temp = await until(async () => files(out).find((f) => f.startsWith(`k${path.sep}.clip_`)));
    const sock = halfUpload(first.port);
    const partial = await until(async () =>
      files(path.join(root, 'input')).find((f) => f.endsWith('.partial')),
    );
    // While they exist, /view refuses them under their own names and any spelling of them.
    const name = path.basename(temp);
    for (const target of [
      `/view?filename=${encodeURIComponent(name)}&subfolder=k`,
      `/view?filename=${encodeURIComponent(partial)}&type=input`,
      `/api/view?filename=${encodeURIComponent(partial)}&type=input&subfolder=`,
    ]) {
      const r = await rawGet(first.port, target);
      expect(r.status, target).toBe(403);
    }
    // A stale spill folder as a killed engine leaves it.
    fs.mkdirSync(path.join(root, 'temp', 'rdflow-spill-dead'), { recursive: true });
    fs.writeFileSync(path.join(root, 'temp', 'rdflow-spill-dead', '0.v8'), Buffer.alloc(4096));
    expect(
      (await rawGet(first.port, '/view?type=temp&subfolder=rdflow-spill-dead&filename=0.v8')).status,
    ).toBe(403);
    await kill9(first);
    sock.destroy();
    expect(files(out)).toContain(temp);
    expect(files(path.join(root, 'input'))).toContain(partial);

    const second = await start(root, '--no-requeue');
    expect(files(out).filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
    expect(files(path.join(root, 'input'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'temp')).filter((f) => f.startsWith('rdflow-spill-'))).toEqual([]);
    expect(second.stderr()).toMatch(/removed \d+ temporary file\(s\) \(\d+ bytes\) left by a stopped run/);
    await kill9(second);
  }, 60_000);

  it('keeps temp files of a writer that is still alive (another process)', async () => {
    const s = await startTestServer({ nodes: securityNodes() });
    const live = path.join(s.outputDir, `.clip_00001.tmp-${process.pid}-abcd.gif`);
    const dead = path.join(s.outputDir, '.clip_00002.tmp-999999999-abcd.gif');
    await s.close();
    fs.writeFileSync(live, 'x');
    fs.writeFileSync(dead, 'x');
    const again = await startTestServer({ root: s.root, nodes: securityNodes() });
    try {
      expect(fs.existsSync(live)).toBe(true);
      expect(fs.existsSync(dead)).toBe(false);
      expect((await rawGet(again.port, `/view?filename=${path.basename(live)}`)).status).toBe(403);
    } finally {
      await again.close();
    }
  });
});

describe('a prompt that crashes the server', () => {
  it('is queued again once, then marked failed; the prompts behind it run', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-poison-'));
    // Slow before the crash, so the prompt behind it is queued first.
    const poison = {
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestSlow', inputs: { value: ['1', 0], steps: 10, delay_ms: 50 } },
      '3': { class_type: 'TestCrash', inputs: { value: ['2', 0] } },
    };
    let s = await start(root);
    const bad = await request(`${s.url}/prompt`, { body: { prompt: poison } });
    const good = await request(`${s.url}/prompt`, { body: { prompt: slowPrompt(7, { prefix: 'after' }) } });
    const badId = (bad.body as { prompt_id: string }).prompt_id;
    const goodId = (good.body as { prompt_id: string }).prompt_id;
    // First crash: the prompt kills the server by itself.
    await s.exited;
    s = await start(root);
    expect(s.stderr()).toMatch(/queued again first \(restart 1 of 1\)/);
    // It runs again first and kills this one too.
    await s.exited;
    expect(fs.existsSync(path.join(root, 'output', 'after.txt'))).toBe(false);
    // Third start: it is not run again.
    s = await start(root);
    const h = await until(async () => {
      const all = (await request(`${s.url}/history`)).body as Record<
        string,
        { status: { status_str: string; messages: [string, { exception_message?: string }][] } }
      >;
      return all[badId] && all[goodId] ? all : undefined;
    }, 30_000);
    expect(h[badId].status.status_str).toBe('error');
    expect(h[badId].status.messages[0][1].exception_message).toBe(CRASHED_AGAIN_MESSAGE);
    expect(h[goodId].status.status_str).toBe('success');
    expect(fs.readFileSync(path.join(root, 'output', 'after.txt'), 'utf8').trim()).toBe('7');
    expect(s.child.exitCode).toBeNull();
    await kill9(s);
  }, 60_000);
});
