// Shared by the resume tests: a folder with the small test model and the shipped long-video
// workflow shrunk onto it, the CLI in-process or as a child process, and decoded frames to compare.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../../server/cli.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { ffmpegPath } from '../../server/runtime/video/index.ts';
import { makeTestModel } from '../helpers/models.ts';
import { readWorkflow, repoRoot, shrink } from '../pipeline/workflow.ts';
import { captureOutput } from '../helpers/cli-output.ts';

const run = promisify(execFile);

export async function makeWorkspace(clips = 5): Promise<{ dir: string; prompt: ApiPrompt }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-resume-'));
  await makeTestModel(path.join(dir, 'models', 'tiny'));
  const prompt = shrink(readWorkflow('vidrd-long-video.json'), { model: 'tiny', steps: 4, size: 64, clips });
  writeWorkflow(dir, 'wf.json', prompt);
  return { dir, prompt };
}

export function writeWorkflow(dir: string, name: string, prompt: unknown): void {
  fs.writeFileSync(path.join(dir, name), JSON.stringify(prompt));
}

/** `rdflow ARGS` in this process (shipped nodes); `interruptOn` aborts like Ctrl-C when stdout shows it. */
export async function cli(
  dir: string,
  args: string[],
  interruptOn?: string,
): Promise<{ code: number; out: string; err: string }> {
  const ac = new AbortController();
  const stdout = captureOutput({
    onText: (s) => {
      if (interruptOn !== undefined && s.includes(interruptOn)) ac.abort();
    },
  });
  const stderr = captureOutput();
  const code = await runCli(args, { cwd: dir, stdout, stderr, signal: ac.signal });
  return { code, out: stdout.text(), err: stderr.text() };
}

/**
 * `rdflow ARGS` as a child process, sent `signal` as soon as its output shows `when`; resolves
 * with its exit code (null when killed) and whether the signal was sent.
 */
export function childCli(
  dir: string,
  args: string[],
  when: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; sent: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'rdflow.js'), ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let sent = false;
    const watch = (chunk: Buffer) => {
      out += chunk.toString();
      if (!sent && out.includes(when)) {
        sent = true;
        child.kill(signal);
      }
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, sent, out }));
  });
}

/** Every frame of a video as packed RGB, decoded by ffmpeg. */
export async function decodeFrames(file: string): Promise<Buffer> {
  const { stdout } = await run(
    ffmpegPath(),
    ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    {
      encoding: 'buffer',
      maxBuffer: 1 << 28,
    },
  );
  return stdout;
}

/** The files of an output folder, visible and hidden. */
export function listOutput(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** The newest `PREFIX_NNNNN.EXT` of an output folder (a resumed run may follow a finished file). */
export function newest(dir: string, ext: string): string {
  const names = listOutput(dir)
    .filter((n) => /^[^.].*_\d{5}\./.test(n) && n.endsWith(`.${ext}`))
    .sort((a, b) => fs.statSync(path.join(dir, a)).mtimeMs - fs.statSync(path.join(dir, b)).mtimeMs);
  if (names.length === 0) throw new Error(`no .${ext} in ${dir}: ${listOutput(dir).join(', ')}`);
  return path.join(dir, names[names.length - 1]);
}
