// Resume and extend on the command line: a 5-clip run of the shipped long-video workflow (small
// test model) stopped at several points — Ctrl-C in-process and in a child process, kill -9 inside
// a clip, between clips and while the files are encoded — then `--resume`, gives the very frames
// of an uninterrupted run; a changed workflow is refused where it changes clips already made;
// `--extend N` equals a run of K+N clips; `rdflow runs` lists, bounds and clears checkpoints.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { childCli, cli, decodeFrames, listOutput, makeWorkspace, newest, writeWorkflow } from './helpers.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';

let dir: string;
let prompt: ApiPrompt;
/** Decoded frames of the uninterrupted 5-clip run. */
const full: Record<'mp4' | 'gif', Buffer> = { mp4: Buffer.alloc(0), gif: Buffer.alloc(0) };

beforeAll(async () => {
  ({ dir, prompt } = await makeWorkspace(5));
  const r = await cli(dir, ['run', 'wf.json', '--out', 'full/out']);
  expect(r.code, r.err).toBe(0);
  full.mp4 = await decodeFrames(path.join(dir, 'full', 'out', 'rdflow_00001.mp4'));
  full.gif = await decodeFrames(path.join(dir, 'full', 'out', 'rdflow_00001.gif'));
  // 40 frames of 64×64 RGB.
  expect(full.mp4.length).toBe(40 * 64 * 64 * 3);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The finished output of `out` equals the uninterrupted run's, frame for frame, bit for bit. */
async function expectSameVideo(out: string, others: 'same' | 'any' = 'same'): Promise<void> {
  const folder = path.join(dir, out, 'out');
  for (const ext of ['mp4', 'gif'] as const) {
    const frames = await decodeFrames(newest(folder, ext));
    expect(frames.length).toBe(full[ext].length);
    expect(frames.equals(full[ext])).toBe(true);
  }
  // Nothing half-written is left under a final or a temporary name.
  for (const name of listOutput(folder)) {
    expect(name).not.toMatch(/\.tmp-/);
    if (others === 'same' && (name.endsWith('.mp4') || name.endsWith('.gif'))) {
      expect(
        (await decodeFrames(path.join(folder, name))).equals(full[name.endsWith('.mp4') ? 'mp4' : 'gif']),
      ).toBe(true);
    }
  }
}

describe('rdflow run --resume', () => {
  test('Ctrl-C inside clip 3, then --resume: the same frames as an uninterrupted run', async () => {
    const stopped = await cli(
      dir,
      ['run', 'wf.json', '--out', 'ctrlc/out'],
      'progress node 6 clip 3/5 step 2/4',
    );
    expect(stopped.code).toBe(130);
    expect(stopped.err).toContain('--resume');
    // Nothing appears under a final name before the video is complete.
    expect(listOutput(path.join(dir, 'ctrlc', 'out')).filter((n) => !n.startsWith('.'))).toEqual([]);
    const listed = await cli(dir, ['runs', '--out', 'ctrlc/out']);
    expect(listed.out).toMatch(/clip 2\/5\s+stopped/);
    const resumed = await cli(dir, ['run', 'wf.json', '--out', 'ctrlc/out', '--resume']);
    expect(resumed.code, resumed.err).toBe(0);
    // Only clips 3..5 were sampled again.
    expect(resumed.out).not.toContain('progress node 6 clip 2/5');
    expect(resumed.out).toContain('progress node 6 clip 3/5');
    await expectSameVideo('ctrlc');
  }, 60_000);

  test.each([
    ['inside a clip', 'progress node 6 clip 3/5 step 2/4', 'SIGKILL'],
    ['between clips', 'loop 5: iteration 4/5', 'SIGKILL'],
    ['while encoding the last clip', 'executing node 8 (VideoWrite) clip 5/5', 'SIGKILL'],
    ['Ctrl-C (SIGINT) in a child process', 'progress node 6 clip 2/5 step 3/4', 'SIGINT'],
  ] as const)(
    'stopped %s, then --resume: the same frames',
    async (what, when, signal) => {
      const out = `child-${what.replace(/\W+/g, '-')}`;
      const child = await childCli(dir, ['run', 'wf.json', '--out', `${out}/out`], when, signal);
      expect(child.sent, child.out).toBe(true);
      if (signal === 'SIGINT') expect(child.code).toBe(130);
      else expect(child.code).toBe(null);
      const resumed = await cli(dir, ['run', 'wf.json', '--out', `${out}/out`, '--resume']);
      expect(resumed.code, resumed.err).toBe(0);
      await expectSameVideo(out);
    },
    60_000,
  );

  test('a change to clips already made is refused, naming it; output-only changes are allowed', async () => {
    const stopped = await cli(dir, ['run', 'wf.json', '--out', 'changed/out'], 'loop 5: iteration 3/5');
    expect(stopped.code).toBe(130);
    for (const [set, named] of [
      ['6.cfg=7', "node 6 (DDIMSampler) input 'cfg': 10 → 7"],
      ['4.seed=7', "node 4 (NoiseInit) input 'seed': 42 → 7"],
      ['2.text="a dog"', "node 2 (TextEncode) input 'text'"],
    ]) {
      const refused = await cli(dir, ['run', 'wf.json', '--out', 'changed/out', '--resume', '--set', set]);
      expect(refused.code).toBe(2);
      expect(refused.err).toContain('Cannot resume');
      expect(refused.err).toContain('clip 1 would differ');
      expect(refused.err).toContain(named);
    }
    // The refusals left the checkpoint as it was.
    expect((await cli(dir, ['runs', '--out', 'changed/out'])).out).toMatch(/clip 2\/5\s+stopped/);
    // fps and file names are output-only: allowed, and the frames are the same (the GIF's fps changes
    // no pixel; an MP4's would change x264's rate control).
    const resumed = await cli(dir, [
      'run',
      'wf.json',
      '--out',
      'changed/out',
      '--resume',
      '--set',
      '9.fps=8',
      '--set',
      '8.filename_prefix=renamed',
    ]);
    expect(resumed.code, resumed.err).toBe(0);
    await expectSameVideo('changed');
  }, 60_000);

  test('--resume with nothing saved says so and exits 2', async () => {
    const r = await cli(dir, ['run', 'wf.json', '--out', 'nothing-here/out', '--resume']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('nothing to resume');
  });
});

describe('rdflow run --extend', () => {
  test('a finished 3-clip run extended by 2 equals a 5-clip run; runs lists and clears it', async () => {
    const three = structuredClone(prompt);
    three['5'].inputs.iterations = 3;
    writeWorkflow(dir, 'three.json', three);
    const first = await cli(dir, ['run', 'three.json', '--out', 'ext/out']);
    expect(first.code, first.err).toBe(0);
    const listed = await cli(dir, ['runs', '--out', 'ext/out']);
    expect(listed.out).toMatch(/clip 3\/3\s+finished, extendable/);
    expect(listed.out).toMatch(/Disk use: [\d.]+ (KiB|MiB) of 4\.0 GiB/);
    const extended = await cli(dir, ['run', 'three.json', '--out', 'ext/out', '--extend', '2']);
    expect(extended.code, extended.err).toBe(0);
    expect(extended.out).not.toContain('progress node 6 clip 3/5');
    expect(extended.out).toContain('progress node 6 clip 4/5');
    // The folder also holds the 3-clip video of the first run.
    await expectSameVideo('ext', 'any');
    const json = JSON.parse((await cli(dir, ['runs', '--out', 'ext/out', '--json'])).out) as {
      runs: { status: string; loops: Record<string, { done: number; total: number }>; bytes: number }[];
    };
    expect(json.runs).toHaveLength(1);
    expect(json.runs[0]).toMatchObject({ status: 'finished', loops: { '5': { done: 5, total: 5 } } });
    expect(json.runs[0].bytes).toBeGreaterThan(0);
    const cleared = await cli(dir, ['runs', '--out', 'ext/out', '--clear']);
    expect(cleared.out).toContain('Removed 1 checkpoint.');
    expect((await cli(dir, ['runs', '--out', 'ext/out'])).out).toContain('No checkpoints');
    const again = await cli(dir, ['run', 'three.json', '--out', 'ext/out', '--extend', '2']);
    expect(again.code).toBe(2);
    expect(again.err).toContain('nothing to extend');
  }, 90_000);

  test('an unfinished run cannot be extended', async () => {
    const stopped = await cli(dir, ['run', 'wf.json', '--out', 'unfinished/out'], 'loop 5: iteration 2/5');
    expect(stopped.code).toBe(130);
    const r = await cli(dir, ['run', 'wf.json', '--out', 'unfinished/out', '--extend', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('has not finished (clip 1/5)');
  }, 60_000);

  test('the disk bound removes the oldest checkpoints and tells', async () => {
    const a = await cli(dir, ['run', 'wf.json', '--out', 'bound/out'], 'loop 5: iteration 3/5');
    expect(a.code).toBe(130);
    const three = structuredClone(prompt);
    three['4'].inputs.seed = 5;
    writeWorkflow(dir, 'other.json', three);
    // A's 2 clips take x bytes; B's 5 about 2.5x: a bound of 3x has room for B, not for both.
    const x = (
      JSON.parse((await cli(dir, ['runs', '--out', 'bound/out', '--json'])).out) as { totalBytes: number }
    ).totalBytes;
    const limit = 3 * x;
    const b = await cli(dir, [
      'run',
      'other.json',
      '--out',
      'bound/out',
      '--checkpoint-limit',
      String(limit),
    ]);
    expect(b.code, b.err).toBe(0);
    expect(b.err).toMatch(/removed checkpoint [0-9a-f]{24} \(checkpoints over [\d.]+ (KiB|MiB)\)/);
    const runs = JSON.parse((await cli(dir, ['runs', '--out', 'bound/out', '--json'])).out) as {
      runs: { source: string }[];
      totalBytes: number;
    };
    expect(runs.runs.map((r) => path.basename(r.source))).toEqual(['other.json']);
  }, 60_000);
});
