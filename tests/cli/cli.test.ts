// `rdflow` run in-process with test node types: exit codes, error listing, progress, files written.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { checkPrompts, defaultDataDir, runCli, writableDefaultDataDir } from '../../server/cli.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { createTestNodes } from '../helpers/engine-nodes.ts';
import { captureOutput } from '../helpers/cli-output.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-cli-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[], opts: { tty?: boolean; signal?: AbortSignal } = {}) {
  const { nodes, log } = createTestNodes();
  const stdout = captureOutput({ isTTY: opts.tty });
  const stderr = captureOutput();
  const code = await runCli(argv, { nodes, stdout, stderr, cwd: dir, signal: opts.signal });
  return { code, out: stdout.text(), err: stderr.text(), log };
}

function writeWorkflow(name: string, json: unknown): string {
  fs.writeFileSync(path.join(dir, name), JSON.stringify(json));
  return name;
}

const loopWorkflow = {
  '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
  '2': { class_type: 'TestSlow', inputs: { value: ['1', 1], steps: 2, delay_ms: 1 } },
  '3': { class_type: 'TestFileWriter', inputs: { value: ['2', 0], filename_prefix: 'clips' } },
  '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
};

describe('rdflow run', () => {
  test('a workflow with three mistakes prints all three and exits 2', async () => {
    const file = writeWorkflow('bad.json', {
      '1': { class_type: 'TestInt', inputs: { value: 5000 } },
      '2': { class_type: 'TestAdd', inputs: { a: ['1', 0] } },
      '3': { class_type: 'TestChoice', inputs: { mode: 'turbo', text: '', strength: 0.5, enabled: true } },
      '4': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
      '5': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    const { code, err, log } = await cli(['run', file]);
    expect(code).toBe(2);
    expect(log.runs).toEqual([]);
    expect(err).toContain('3 problems');
    expect(err).toMatch(/node 1 \(TestInt\) input 'value': .*bigger than the maximum 1000/);
    expect(err).toMatch(/node 2 \(TestAdd\) input 'b': Required input 'b' is missing/);
    expect(err).toMatch(/node 3 \(TestChoice\) input 'mode': .*"turbo".*fast, slow/);
    expect(err).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('runs, streams a file clip by clip, prints the files written', async () => {
    const file = writeWorkflow('loop.json', loopWorkflow);
    const { code, out } = await cli(['run', file, '--out', 'renders']);
    expect(code).toBe(0);
    const written = path.join(dir, 'renders', 'clips.txt');
    expect(fs.readFileSync(written, 'utf8')).toBe('0\n1\n2\n');
    expect(out).toContain(`Wrote:\n  ${written}\n`);
    // Not a TTY: one line per event.
    expect(out).toContain('loop 1: iteration 2/3');
    expect(out).toContain('progress node 2 clip 3/3 step 2/2');
  });

  test('--set changes an input; values are read as JSON', async () => {
    const file = writeWorkflow('loop.json', loopWorkflow);
    const { code, log } = await cli([
      'run',
      file,
      '--set',
      '1.iterations=2',
      '--set',
      '3.filename_prefix=short',
    ]);
    expect(code).toBe(0);
    expect(log.count('2')).toBe(2);
    expect(fs.readFileSync(path.join(dir, 'output', 'short.txt'), 'utf8')).toBe('0\n1\n');
    const bad = await cli(['run', file, '--set', '9.x=1']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('no node 9');
  });

  test('on a TTY a single redrawn line shows node, clip, step and ETA', async () => {
    const file = writeWorkflow('loop.json', loopWorkflow);
    const { code, out } = await cli(['run', file], { tty: true });
    expect(code).toBe(0);
    expect(out).toContain('\r\x1b[2Knode 2 (TestSlow)');
    expect(out).toMatch(/node 2 \(TestSlow\) {2}clip 2\/3 {2}step 1\/2 \[#+\.+\] {2}ETA /);
    expect(out).not.toContain('progress node');
  });

  test('accepts canvas format', async () => {
    const file = writeWorkflow('canvas.json', {
      nodes: [
        {
          id: 1,
          type: 'TestInt',
          mode: 0,
          outputs: [{ name: 'INT', type: 'INT', links: [1] }],
          widgets_values: [7],
        },
        {
          id: 2,
          type: 'TestFileWriter',
          mode: 0,
          inputs: [{ name: 'value', type: '*', link: 1 }],
          widgets_values: ['canvas', 0],
        },
      ],
      links: [[1, 1, 0, 2, 0, 'INT']],
      version: 0.4,
    });
    const { code } = await cli(['run', file]);
    expect(code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'output', 'canvas.txt'), 'utf8')).toBe('7\n');
  });

  test('a failing node exits 1 naming the node', async () => {
    const file = writeWorkflow('throw.json', {
      '1': { class_type: 'TestThrow', inputs: { message: 'out of cheese' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    const { code, err } = await cli(['run', file]);
    expect(code).toBe(1);
    expect(err).toContain('Error in node 1 (TestThrow): out of cheese');
  });

  test('an interrupt exits 130 and leaves no partial file', async () => {
    const file = writeWorkflow('loop.json', {
      ...loopWorkflow,
      '1': { class_type: 'LoopStart', inputs: { iterations: 100 } },
      '2': { class_type: 'TestSlow', inputs: { value: ['1', 1], steps: 2, delay_ms: 5 } },
    });
    const controller = new AbortController();
    const pending = cli(['run', file], { signal: controller.signal });
    // Interrupt once the file writer has started streaming.
    const outDir = path.join(dir, 'output');
    while (!fs.existsSync(outDir) || fs.readdirSync(outDir).length === 0)
      await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const { code, err } = await pending;
    expect(code).toBe(130);
    expect(err).toContain('Interrupted');
    expect(fs.readdirSync(outDir)).toEqual([]);
  });

  test('unreadable or malformed files exit 2 with a message', async () => {
    expect((await cli(['run', 'missing.json'])).code).toBe(2);
    fs.writeFileSync(path.join(dir, 'broken.json'), '{"1": ');
    const broken = await cli(['run', 'broken.json']);
    expect(broken.code).toBe(2);
    expect(broken.err).toContain('not valid JSON');
    const shape = await cli(['run', writeWorkflow('shape.json', { '1': { inputs: {} } })]);
    expect(shape.code).toBe(2);
    expect(shape.err).toContain('class_type');
  });

  test('bad usage exits 2 with the usage text', async () => {
    const r = await cli(['run']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage:');
    expect((await cli(['run', 'x.json', '--bogus'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
  });
});

describe('help, version and usage mistakes', () => {
  test('--help, -h and help list the commands; help CMD and CMD --help list its flags', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      for (const cmd of ['run', 'nodes', 'serve', 'convert', 'models'])
        expect(r.out).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    }
    const run = await cli(['help', 'run']);
    expect(run.code).toBe(0);
    for (const flag of ['--set', '--out', '--models-dir', '--input-dir', '--data-dir', '--help'])
      expect(run.out).toContain(flag);
    expect((await cli(['run', '--help'])).out).toBe(run.out);
    expect((await cli(['run', 'x.json', '-h'])).out).toBe(run.out);
    const serve = await cli(['serve', '--help']);
    for (const flag of ['--port', '--listen', '--output-dir', '--data-dir', '--auth-token', '--no-requeue'])
      expect(serve.out).toContain(flag);
    expect((await cli(['nodes', '--help'])).out).toContain('--json');
    expect((await cli(['help', 'convert'])).out).toContain('--dtype');
    expect((await cli(['models', '--help'])).out).toContain('--models-dir');
    const none = await cli(['help', 'frobnicate']);
    expect(none.code).toBe(2);
    expect(none.err).toContain("no command 'frobnicate'");
  });

  test('--version prints package.json version', async () => {
    const pkg = JSON.parse(
      fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8'),
    ) as {
      version: string;
    };
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`rdflow ${pkg.version}\n`);
  });

  test('an unknown option names itself and the valid options of its command', async () => {
    const run = await cli(['run', 'x.json', '--bogus']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(
      /^rdflow run: unknown option '--bogus'; valid options: --set, --out, --models-dir/,
    );
    const nodes = await cli(['nodes', '--jsn']);
    expect(nodes.err).toMatch(/^rdflow nodes: unknown option '--jsn'; valid options: --json, --help\n/);
    const models = await cli(['models', '--dir', 'x']);
    expect(models.code).toBe(2);
    expect(models.err).toMatch(
      /^rdflow models: unknown option '--dir'; valid options: --models-dir, --json, --help\n/,
    );
    const convert = await cli(['convert', 'a', 'b', '--fp16']);
    expect(convert.err).toMatch(
      /^rdflow convert: unknown option '--fp16'; valid options: .*--dtype.*--force/,
    );
  });
});

describe('rdflow run --set', () => {
  test('an unknown node id names the workflow nodes; an unknown input names the node type inputs', async () => {
    const file = writeWorkflow('loop.json', loopWorkflow);
    const node = await cli(['run', file, '--set', '7.value=1']);
    expect(node.code).toBe(2);
    expect(node.err).toContain(
      'the workflow has no node 7; its nodes are 1 (LoopStart), 2 (TestSlow), 3 (TestFileWriter), 4 (LoopEnd)',
    );
    const input = await cli(['run', file, '--set', '3.filename=x']);
    expect(input.code).toBe(2);
    expect(input.err).toMatch(
      /node 3 \(TestFileWriter\) has no input 'filename'; its inputs are value, filename_prefix/,
    );
    expect(input.log.runs).toEqual([]);
  });

  test('prototype names are unknown ids and inputs, exit 2, not a crash', async () => {
    const file = writeWorkflow('loop.json', loopWorkflow);
    for (const set of ['constructor.x=1', '__proto__.x=1', 'toString.x=1', 'hasOwnProperty.x=1']) {
      const r = await cli(['run', file, '--set', set]);
      expect(r.code, set).toBe(2);
      expect(r.err, set).toContain(`no node ${set.split('.')[0]}; its nodes are 1 (LoopStart)`);
    }
    for (const set of ['3.__proto__=1', '3.constructor={"a":1}']) {
      const r = await cli(['run', file, '--set', set]);
      expect(r.code, set).toBe(2);
      expect(r.err, set).toContain(`has no input '${set.slice(2, set.indexOf('='))}'`);
    }
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('rdflow nodes', () => {
  test('lists node types, or their /object_info with --json', async () => {
    const list = await cli(['nodes']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^testing$/m);
    expect(list.out).toMatch(/^ {2}TestCollect +Test Collect \[output\]/m);
    expect(list.out).toContain('LoopStart');
    const json = await cli(['nodes', '--json']);
    const info = JSON.parse(json.out) as Record<string, { input_order: unknown }>;
    expect(info.IntMath.input_order).toEqual({ required: ['a', 'b', 'op'], optional: [] });
  });
});

describe('prompt checks before a run', () => {
  const workflow = JSON.parse(
    fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'workflows', 'vidrd-long-video.json'), 'utf8'),
  ) as ApiPrompt;
  const withText = (positive: string, negative = 'watermark', model = 'demo'): ApiPrompt => {
    const p = structuredClone(workflow);
    p['1'].inputs.model = model;
    p['2'].inputs.text = positive;
    p['3'].inputs.text = negative;
    return p;
  };

  test('the demo model names the positive prompt words it does not know', () => {
    const r = checkPrompts(withText('A purple cat, jumping over the moon'), dir);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^node 2 \(TextEncode\): the demo model does not know 'cat', 'over', 'moon' /,
    );
    expect(r.warnings[0]).toContain('it knows red, green, blue');
    // Known words (any case) and the negative prompt are not reported.
    expect(checkPrompts(withText('Red BALL bouncing'), dir).warnings).toEqual([]);
    // Another model has its own tokenizer: no demo vocabulary warning.
    expect(checkPrompts(withText('a purple cat', '', 'some-export'), dir).warnings).toEqual([]);
  });

  test('an empty positive prompt is an error; an empty negative one is not', () => {
    expect(checkPrompts(withText('  \n'), dir).errors).toEqual([
      "node 2 (TextEncode) input 'text': the prompt is empty; the sampler needs one",
    ]);
    expect(checkPrompts(withText('red ball', ''), dir).errors).toEqual([]);
  });

  test('rdflow run with the shipped nodes exits 2 on an empty prompt before running anything', async () => {
    const stdout = captureOutput();
    const stderr = captureOutput();
    const file = path.join(import.meta.dirname, '..', '..', 'workflows', 'vidrd-long-video.json');
    const code = await runCli(['run', file, '--set', '2.text=', '--data-dir', 'data'], {
      stdout,
      stderr,
      cwd: dir,
    });
    expect(code).toBe(2);
    expect(stderr.text()).toContain("node 2 (TextEncode) input 'text': the prompt is empty");
    expect(fs.existsSync(path.join(dir, 'output'))).toBe(false);
  });
});

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (cmd.includes(marker) && state !== 'Z') found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe.runIf(process.platform === 'linux')('Ctrl-C', () => {
  test('npx rdflow run interrupted mid-run leaves no child process (ffmpeg, workers)', async () => {
    const repo = path.join(import.meta.dirname, '..', '..');
    const out = path.join(dir, 'renders');
    // npx in its own process group, as a shell runs a foreground job; Ctrl-C signals the whole group.
    const child = spawn(
      'npx',
      [
        'rdflow',
        'run',
        path.join(repo, 'workflows', 'vidrd-long-video.json'),
        '--set',
        '5.iterations=200',
        '--set',
        '6.steps=2',
        '--out',
        out,
        '--models-dir',
        path.join(dir, 'models'),
        '--data-dir',
        path.join(dir, 'data'),
      ],
      { cwd: repo, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<string>((resolve) =>
      child.on('exit', (code, signal) => resolve(signal ?? String(code))),
    );
    // Mid-run: a clip past the first is being sampled, so the video writers' ffmpeg processes run.
    while (!/clip 3\/200/.test(log)) {
      if (child.exitCode !== null) throw new Error(`rdflow ended early:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const running = processesWith(out);
    expect(running.length).toBeGreaterThanOrEqual(2); // the rdflow process and its ffmpeg writers
    process.kill(-child.pid!, 'SIGINT');
    const ended = await exited;
    expect(log).toContain('Interrupted');
    // rdflow exits 130; npm then ends itself with the same signal, as a shell's job would.
    expect(['130', 'SIGINT']).toContain(ended);
    expect(processesWith(out)).toEqual([]);
    expect(processesWith(path.join(dir, 'data'))).toEqual([]);
  }, 120_000);
});

describe('rdflow serve', () => {
  test('serves the editor with no build step, and keeps its data in --data-dir', async () => {
    const controller = new AbortController();
    const stdout = captureOutput();
    const stderr = captureOutput();
    const serving = runCli(
      ['serve', '--port', '0', '--output-dir', 'out', '--models-dir', 'models', '--data-dir', 'state'],
      { stdout, stderr, cwd: dir, signal: controller.signal },
    );
    try {
      while (!/listening on (\S+)/.test(stdout.text())) {
        if (stderr.text() !== '') throw new Error(stderr.text());
        await new Promise((r) => setTimeout(r, 20));
      }
      const url = /listening on (\S+)/.exec(stdout.text())![1];
      const page = await (await fetch(url)).text();
      expect(page).toContain('<script');
      expect(page).not.toContain('has not been built');
      // The spill cache's size and bound are shown.
      const stats = (await (await fetch(`${url}/system_stats`)).json()) as {
        cache: { spill_bytes: number; spill_max_bytes: number };
      };
      expect(stats.cache.spill_bytes).toBe(0);
      expect(stats.cache.spill_max_bytes).toBe(4 * 1024 ** 3);
      expect(fs.readdirSync(path.join(dir, 'state')).length).toBeGreaterThan(0);
      expect(fs.existsSync(path.join(dir, 'state', 'temp'))).toBe(true);
      expect(fs.existsSync(path.join(dir, '.rdflow'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'temp'))).toBe(false);
    } finally {
      controller.abort();
      expect(await serving).toBe(0);
    }
  }, 120_000);
});

describe('data folder', () => {
  test('per platform: $XDG_DATA_HOME/rdflow (else ~/.local/share), macOS Application Support, %LOCALAPPDATA%', () => {
    expect(defaultDataDir({ HOME: '/home/u', XDG_DATA_HOME: '/data' }, 'linux')).toBe('/data/rdflow');
    expect(defaultDataDir({ HOME: '/home/u' }, 'linux')).toBe('/home/u/.local/share/rdflow');
    // A relative XDG_DATA_HOME is invalid by the XDG spec and ignored.
    expect(defaultDataDir({ HOME: '/home/u', XDG_DATA_HOME: 'rel' }, 'linux')).toBe(
      '/home/u/.local/share/rdflow',
    );
    expect(defaultDataDir({ HOME: '/Users/u' }, 'darwin')).toBe(
      '/Users/u/Library/Application Support/rdflow',
    );
    expect(defaultDataDir({ LOCALAPPDATA: 'C:\\Users\\u\\AppData\\Local' }, 'win32')).toBe(
      path.join('C:\\Users\\u\\AppData\\Local', 'rdflow'),
    );
  });

  test('an unwritable default falls back to the system temp folder', () => {
    const ok = path.join(dir, 'xdg');
    expect(writableDefaultDataDir({ HOME: dir, XDG_DATA_HOME: ok })).toBe(path.join(ok, 'rdflow'));
    expect(fs.existsSync(path.join(ok, 'rdflow'))).toBe(true);
    const fallback = writableDefaultDataDir({ HOME: dir, XDG_DATA_HOME: '/proc/rdflow-cannot-write' });
    expect(fallback.startsWith(os.tmpdir())).toBe(true);
  });
});
