// Benchmark 9, the server keeps up with the CLI (issue 17): the same long run of the shipped
// workflow (bench model, 64×64, 10 steps, many clips, MP4 + GIF) as `rdflow run` and as a prompt to
// `rdflow serve` with a WebSocket client connected and listening to every message, interleaved
// (CLI, server, CLI, server, …), medians and the paired ratio server / CLI.
// CLI: spawn to exit of `node bin/rdflow.js run …` (process start, model load and the run). Server:
// POST /prompt to `executing {node: null}` on a server started fresh for the repetition and not
// yet used (model load and the run, not the process start), client connected before the POST.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { BENCH_MODEL, setArgs, WORKFLOW_REL, workflowPrompt, type BenchEnv } from './config.ts';
import { RDFLOW_BIN, REPO, startServerChild } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, mapSummary, pairedRatios, summarize, type Summary } from './stats.ts';

/** The goal of issue 17: the server within 5 % of the CLI. */
export const SERVER_GOAL_RATIO = 1.05;

export function serverVsCliSets(clips: number): readonly string[] {
  return [`1.model=${BENCH_MODEL}`, `5.iterations=${clips}`, '6.steps=10', '4.width=64', '4.height=64'];
}

export interface ServerVsCliResult {
  clips: number;
  /** Spawn to exit / POST to `executing {node: null}`, ms. */
  cli: Summary;
  server: Summary;
  /** Execution start to the end of the run, ms: the process start and queueing left out. */
  cliRun: Summary;
  serverRun: Summary;
  /** Paired server / CLI per repetition: run time (the goal's number) and CPU time. */
  ratio: Summary;
  cpuRatio: Summary;
  /** CPU time of the CLI process and of the server process during the prompt, ms. */
  cliCpu: Summary;
  serverCpu: Summary;
  /** Messages and binary frames the listening client received per server run (median). */
  messages: number;
  previews: number;
}

/** Wall time and CPU time (user + system, every thread) of one run, ms. */
export interface Timed {
  ms: number;
  cpuMs: number;
  /** From the run's execution start (CLI: its "execution started" line; server: the message) to its end. */
  runMs: number;
}

interface Listened extends Timed {
  messages: number;
  previews: number;
}

/** CPU time of a live process (all its threads) and its finished children, ms, from /proc (Linux). */
function procCpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15,
  // then cutime 16 and cstime 17 of its finished children (ffmpeg), which the CLI's count includes.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  // USER_HZ is 100 on Linux for every architecture Node supports.
  return ticks * 10;
}

/** One prompt on a fresh server, a client listening from before the POST until the end. */
export async function serverRun(
  env: BenchEnv,
  sets: readonly string[],
  outDir: string,
  opts: { previews?: boolean } = {},
): Promise<Listened> {
  const server = await startServerChild({ modelsDir: env.modelsDir, outputDir: outDir });
  const clientId = `bench-listener-${process.pid}`;
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    let messages = 0;
    let previews = 0;
    // Ours, so messages that arrive before the POST is answered are recognised.
    const promptId = randomUUID();
    let finished: (() => void) | undefined;
    let ended = false;
    let startedAt = NaN;
    ws.on('message', (raw, isBinary) => {
      if (isBinary) {
        previews++;
        return;
      }
      // Parsed as any client would, every message.
      const m = JSON.parse(String(raw)) as { type: string; data: { node?: unknown; prompt_id?: string } };
      messages++;
      if (m.type === 'execution_start' && m.data.prompt_id === promptId) startedAt = performance.now();
      if (m.type === 'executing' && m.data.node === null && m.data.prompt_id === promptId) {
        ended = true;
        finished?.();
      }
    });
    const extra = opts.previews === false ? { preview_method: 'none' } : {};
    const cpu = procCpuMs(server.pid);
    const t = performance.now();
    const res = await fetch(`${server.url}/prompt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        prompt: workflowPrompt(sets),
        prompt_id: promptId,
        client_id: clientId,
        extra_data: extra,
      }),
    });
    const body = (await res.json()) as { prompt_id?: string };
    if (!res.ok || body.prompt_id !== promptId) {
      throw new Error(`POST /prompt: ${res.status} ${JSON.stringify(body)}`);
    }
    if (!ended) await new Promise<void>((resolve) => (finished = resolve));
    const end = performance.now();
    const ms = end - t;
    const runMs = end - startedAt;
    const cpuMs = procCpuMs(server.pid) - cpu;
    const hist = (await (await fetch(`${server.url}/history/${promptId}`)).json()) as Record<
      string,
      { status: { status_str: string } }
    >;
    if (hist[promptId]?.status.status_str !== 'success') {
      throw new Error(`server run did not succeed: ${JSON.stringify(hist).slice(0, 2000)}`);
    }
    return { ms, cpuMs, runMs, messages, previews };
  } finally {
    ws.close();
    await server.close();
    rmSync(outDir, { recursive: true, force: true });
  }
}

/**
 * `node bin/rdflow.js run …` timed from spawn to exit; its CPU time from bash's `times` (the
 * children's user and system time), so no preload or wrapper runs inside the measured process.
 */
export async function cliRun(env: BenchEnv, sets: readonly string[], outDir: string): Promise<Timed> {
  const argv = [
    RDFLOW_BIN,
    'run',
    path.join(REPO, WORKFLOW_REL),
    ...setArgs(sets),
    '--models-dir',
    env.modelsDir,
    '--out',
    outDir,
  ];
  try {
    return await new Promise<Timed>((resolve, reject) => {
      const t = performance.now();
      const child = spawn(
        'bash',
        ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'bash', process.execPath, ...argv],
        {
          cwd: REPO,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let err = '';
      let out = '';
      let startedAt = NaN;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (Number.isNaN(startedAt) && out.includes('execution started')) startedAt = performance.now();
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        const end = performance.now();
        // `times`: the shell's user/sys, then its children's, as "1m2.345s 0m0.123s".
        const lines = err.trim().split('\n');
        const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines[lines.length - 1] ?? '');
        if (code !== 0 || !m) {
          reject(new Error(`rdflow run exited ${code}:\n${err.slice(-2000)}`));
          return;
        }
        const cpuMs = (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
        resolve({ ms: end - t, cpuMs, runMs: end - startedAt });
      });
    });
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

export async function benchServerVsCli(
  env: BenchEnv,
  log: (m: string) => void,
  clips = 100,
): Promise<ServerVsCliResult> {
  const sets = serverVsCliSets(clips);
  const cli: Timed[] = [];
  const server: Listened[] = [];
  for (let i = 0; i < env.reps; i++) {
    // Alternating which goes first, so neither always follows the other's disk and cache state.
    const runCli = () => cliRun(env, sets, path.join(env.tmp, 'out', 'svc-cli'));
    const runServer = () => serverRun(env, sets, path.join(env.tmp, 'out', 'svc-server'));
    let c: Timed;
    let s: Listened;
    if (i % 2 === 0) {
      c = await runCli();
      s = await runServer();
    } else {
      s = await runServer();
      c = await runCli();
    }
    cli.push(c);
    server.push(s);
    log(
      `  ${i + 1}/${env.reps}: CLI ${(c.ms / 1000).toFixed(2)} s (CPU ${(c.cpuMs / 1000).toFixed(2)} s), ` +
        `server ${(s.ms / 1000).toFixed(2)} s (CPU ${(s.cpuMs / 1000).toFixed(2)} s), ×${(s.ms / c.ms).toFixed(3)}; ` +
        `${s.messages} messages, ${s.previews} previews`,
    );
  }
  const ms = (xs: Timed[]) => xs.map((x) => x.ms);
  const run = (xs: Timed[]) => xs.map((x) => x.runMs);
  const cpu = (xs: Timed[]) => xs.map((x) => x.cpuMs);
  return {
    clips,
    cli: summarize(ms(cli)),
    server: summarize(ms(server)),
    cliRun: summarize(run(cli)),
    serverRun: summarize(run(server)),
    ratio: summarize(pairedRatios(run(server), run(cli))),
    cpuRatio: summarize(pairedRatios(cpu(server), cpu(cli))),
    cliCpu: summarize(cpu(cli)),
    serverCpu: summarize(cpu(server)),
    messages: summarize(server.map((x) => x.messages)).median,
    previews: summarize(server.map((x) => x.previews)).median,
  };
}

export function serverVsCliSection(r: ServerVsCliResult): Section {
  const s = (x: Summary) =>
    fmtSummary(
      mapSummary(x, (v) => v / 1000),
      2,
    );
  const sets = serverVsCliSets(r.clips);
  return {
    title: '10. Server vs CLI',
    goal: `the server within ${SERVER_GOAL_RATIO}× of the CLI on the same run, a client listening (issue 17)`,
    met: r.ratio.median <= SERVER_GOAL_RATIO,
    headline: `server / CLI ×${r.ratio.median.toFixed(3)} (${r.clips} clips: ${(r.serverRun.median / 1000).toFixed(1)} s vs ${(r.cliRun.median / 1000).toFixed(1)} s)`,
    columns: ['what', 'runs', 'run, s', 'end to end, s', 'CPU time, s', 'how to reproduce'],
    rows: [
      [
        `rdflow run, ${r.clips} clips`,
        String(r.cli.n),
        s(r.cliRun),
        s(r.cli),
        s(r.cliCpu),
        `node bin/rdflow.js run ${WORKFLOW_REL} ${setArgs(sets).join(' ')} --models-dir MODELS --out OUT`,
      ],
      [
        `rdflow serve, the same prompt, a WebSocket client listening (${r.messages} messages, ${r.previews} previews)`,
        String(r.server.n),
        s(r.serverRun),
        s(r.server),
        s(r.serverCpu),
        'node bin/rdflow.js serve --port 0 --models-dir MODELS --output-dir OUT; WebSocket /ws?clientId=C; POST /prompt {prompt, client_id: C} → executing {node: null}',
      ],
      [
        'server / CLI (paired per repetition)',
        String(r.ratio.n),
        fmtSummary(r.ratio, 3),
        '',
        fmtSummary(r.cpuRatio, 3),
        '',
      ],
    ],
    notes: [
      'Interleaved: each repetition runs the CLI and a fresh server, alternating which goes first, so both see the same ' +
        'machine load; medians (min–max), and the ratio of each pair.',
      '"run" (the goal\'s number) is from the run\'s execution start to its end: the CLI\'s "execution started" line to ' +
        'its exit, the server\'s execution_start message to executing {node: null}; both load the model in it. "end to ' +
        'end" adds the CLI\'s process start and module loading (which the listening server paid before) and the ' +
        "server's POST. CPU time: user + system of every thread, the whole CLI process, the server process during the prompt.",
      'The listening client receives what a ComfyUI client gets: progress per step, the clip counter, a preview per ' +
        'decoded clip (a PNG; the client did not opt out with extra_data.preview_method "none"), clip_written per clip, ' +
        'one executed per video, history written before executing {node: null}.',
    ],
  };
}
