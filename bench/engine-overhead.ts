// Benchmark 1, engine overhead: the shipped 3-clip workflow through `rdflow run` vs bench/plain.ts
// (the same onnxruntime calls, math and video writers, without engine, nodes or worker thread).
// Warm: two long-lived children run alternately, sessions already created (runCli in-process for
// rdflow; a fresh engine per run, so nothing is cached between runs). Cold: whole processes,
// `node bin/rdflow.js run` vs `node --import tsx bench/plain.ts`, spawn to exit.
import { rmSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { allNodes } from '../nodes/index.ts';
import { frameStrip } from '../nodes/lib/video/index.ts';
import { cliPaths, runCli } from '../server/cli.ts';
import { createEngine } from '../server/engine/index.ts';
import { getRuntime } from '../server/runtime/index.ts';
import { ENGINE_SETS, WORKFLOW, WORKFLOW_REL, setArgs, workflowPrompt, type BenchEnv } from './config.ts';
import { openPlainModel, plainSettings, runPlain, type PlainModel, type PlainRun } from './plain.ts';
import { RDFLOW_BIN, REPO, runNode, startWorker, tsxArgs } from './proc.ts';
import { fmtSummary, mapSummary, mib, pairedRatios, summarize, type Summary } from './stats.ts';
import type { Section } from './report.ts';

interface RunArgs {
  modelsDir: string;
  outDir: string;
}

let plainModel: PlainModel | undefined;

/** Where the warm difference goes: costs rdflow pays that the plain script does not. */
export interface Breakdown {
  /** engine.validate() of the workflow on a fresh engine (model folder inspection, fingerprints). */
  validateMs: number;
  /** One UNet call on the CFG batch through the runtime (worker thread) and directly, same process. */
  unetRuntimeMs: number;
  unetDirectMs: number;
  /** The PNG preview strip VAEDecode makes of one clip's frames. */
  previewMs: number;
}

function medianOf(values: number[]): number {
  return summarize(values).median;
}

export const engineTasks = {
  /** One `rdflow run` in this process (runCli, as bin/rdflow.js calls it); ms of the whole call. */
  async 'engine.run'(a: RunArgs): Promise<{ ms: number }> {
    let err = '';
    const sink = { write: () => true };
    const argv = ['run', WORKFLOW, ...setArgs(ENGINE_SETS), '--out', a.outDir, '--models-dir', a.modelsDir];
    const t = performance.now();
    const code = await runCli(argv, { stdout: sink, stderr: { write: (s: string) => (err += s) } });
    const ms = performance.now() - t;
    rmSync(a.outDir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`rdflow run exited ${code}: ${err}`);
    return { ms };
  },
  /** Component costs, measured in the rdflow child after its runs (sessions open). */
  async 'engine.breakdown'(a: RunArgs): Promise<Breakdown> {
    const dir = path.join(a.modelsDir, 'bench');
    const engine = createEngine({
      nodes: allNodes,
      paths: cliPaths(path.dirname(a.outDir), { models: a.modelsDir }),
    });
    const prompt = workflowPrompt(ENGINE_SETS);
    const validate: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await engine.validate(prompt);
      validate.push(performance.now() - t);
    }
    engine.close();
    const model = await getRuntime().loadModel(dir);
    plainModel ??= await openPlainModel(dir);
    const sample = { data: new Float32Array(2 * 4 * 8 * 8 * 8).fill(0.5), shape: [2, 4, 8, 8, 8] };
    const hidden = { data: new Float32Array(2 * 77 * 32).fill(0.1), shape: [2, 77, 32] };
    const viaRuntime: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < 10; i++) {
      let t = performance.now();
      await model.unet.predict(sample, 500, hidden);
      viaRuntime.push(performance.now() - t);
      t = performance.now();
      await plainModel.unet.run({
        sample: new ort.Tensor('float32', sample.data, sample.shape),
        timestep: new ort.Tensor('int64', new BigInt64Array(2).fill(500n), [2]),
        encoder_hidden_states: new ort.Tensor('float32', hidden.data, hidden.shape),
      });
      direct.push(performance.now() - t);
    }
    const n = workflowPrompt(ENGINE_SETS)['4'].inputs;
    const frames = {
      data: new Float32Array(8 * Number(n.height) * Number(n.width) * 3).fill(0.5),
      shape: [8, Number(n.height), Number(n.width), 3],
    };
    const preview: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      frameStrip(frames);
      preview.push(performance.now() - t);
    }
    return {
      validateMs: medianOf(validate),
      unetRuntimeMs: medianOf(viaRuntime),
      unetDirectMs: medianOf(direct),
      previewMs: medianOf(preview),
    };
  },
  /** One plain run; the first call also creates the sessions (reported as setupMs). */
  async 'plain.run'(a: RunArgs): Promise<PlainRun & { setupMs: number }> {
    const t = performance.now();
    plainModel ??= await openPlainModel(path.join(a.modelsDir, 'bench'));
    const setupMs = performance.now() - t;
    const settings = plainSettings(workflowPrompt(ENGINE_SETS), path.join(a.modelsDir, 'bench'), a.outDir);
    const result = await runPlain(plainModel, settings);
    rmSync(a.outDir, { recursive: true, force: true });
    return { ...result, setupMs };
  },
};

export interface EngineOverheadResult {
  /** Warm, in-process: ms per run. */
  warm: { engine: Summary; plain: Summary; ratio: Summary; ort: Summary; unetCallMs: Summary };
  /** First run in each warm child (session creation + first-run allocations). */
  firstRun: { engine: number; plain: number };
  /** Cold processes: spawn to exit ms, and peak RSS bytes. */
  cold: { engine: Summary; plain: Summary; ratio: Summary; engineRss: Summary; plainRss: Summary };
  unetCalls: number;
  /** Medians over repetitions of each component. */
  breakdown: Breakdown;
}

export async function benchEngineOverhead(
  env: BenchEnv,
  log: (m: string) => void,
): Promise<EngineOverheadResult> {
  const out = (name: string) => ({ modelsDir: env.modelsDir, outDir: path.join(env.tmp, 'out', name) });
  const engine = startWorker();
  const plain = startWorker();
  const warm = { engine: [] as number[], plain: [] as number[], ort: [] as number[], unet: [] as number[] };
  let unetCalls = 0;
  const firstRun = { engine: 0, plain: 0 };
  const parts: Breakdown[] = [];
  try {
    // Untimed first runs: sessions, first-run allocations, JIT.
    firstRun.engine = (await engine.call<{ ms: number }>('engine.run', out('engine'))).ms;
    firstRun.plain = (await plain.call<PlainRun & { setupMs: number }>('plain.run', out('plain'))).ms;
    for (let i = 0; i < env.reps; i++) {
      // Interleaved, alternating which goes first, so drift in machine load hits both alike.
      const order = i % 2 === 0 ? ['engine', 'plain'] : ['plain', 'engine'];
      for (const which of order) {
        if (which === 'engine')
          warm.engine.push((await engine.call<{ ms: number }>('engine.run', out('engine'))).ms);
        else {
          const r = await plain.call<PlainRun>('plain.run', out('plain'));
          warm.plain.push(r.ms);
          warm.ort.push(r.ortMs);
          warm.unet.push(r.unetMs / r.unetCalls);
          unetCalls = r.unetCalls;
        }
      }
      parts.push(await engine.call<Breakdown>('engine.breakdown', out('engine')));
      log(
        `  warm ${i + 1}/${env.reps}: rdflow ${warm.engine.at(-1)!.toFixed(0)} ms, plain ${warm.plain.at(-1)!.toFixed(0)} ms`,
      );
    }
  } finally {
    await engine.close();
    await plain.close();
  }

  const cold = {
    engine: [] as number[],
    plain: [] as number[],
    engineRss: [] as number[],
    plainRss: [] as number[],
  };
  const outDir = path.join(env.tmp, 'out', 'cold');
  const settings = plainSettings(workflowPrompt(ENGINE_SETS), path.join(env.modelsDir, 'bench'), outDir);
  for (let i = 0; i < env.reps; i++) {
    const order = i % 2 === 0 ? ['engine', 'plain'] : ['plain', 'engine'];
    for (const which of order) {
      const r =
        which === 'engine'
          ? await runNode([
              RDFLOW_BIN,
              'run',
              WORKFLOW,
              ...setArgs(ENGINE_SETS),
              '--out',
              outDir,
              '--models-dir',
              env.modelsDir,
            ])
          : await runNode(tsxArgs(path.join(REPO, 'bench', 'plain.ts'), JSON.stringify(settings)));
      rmSync(outDir, { recursive: true, force: true });
      (which === 'engine' ? cold.engine : cold.plain).push(r.ms);
      (which === 'engine' ? cold.engineRss : cold.plainRss).push(r.peakRss);
    }
    log(
      `  cold ${i + 1}/${env.reps}: rdflow ${cold.engine.at(-1)!.toFixed(0)} ms, plain ${cold.plain.at(-1)!.toFixed(0)} ms`,
    );
  }
  return {
    warm: {
      engine: summarize(warm.engine),
      plain: summarize(warm.plain),
      ratio: summarize(pairedRatios(warm.engine, warm.plain)),
      ort: summarize(warm.ort),
      unetCallMs: summarize(warm.unet),
    },
    firstRun,
    cold: {
      engine: summarize(cold.engine),
      plain: summarize(cold.plain),
      ratio: summarize(pairedRatios(cold.engine, cold.plain)),
      engineRss: summarize(cold.engineRss),
      plainRss: summarize(cold.plainRss),
    },
    unetCalls,
    breakdown: {
      validateMs: medianOf(parts.map((p) => p.validateMs)),
      unetRuntimeMs: medianOf(parts.map((p) => p.unetRuntimeMs)),
      unetDirectMs: medianOf(parts.map((p) => p.unetDirectMs)),
      previewMs: medianOf(parts.map((p) => p.previewMs)),
    },
  };
}

export const ENGINE_GOAL = 1.03;

export function engineOverheadSection(r: EngineOverheadResult): Section {
  const sets = setArgs(ENGINE_SETS).join(' ');
  const cmd = `node bin/rdflow.js run ${WORKFLOW_REL} ${sets} --models-dir MODELS --out OUT`;
  const ratio = r.warm.ratio.median;
  const met = ratio <= ENGINE_GOAL;
  const rows = [
    [
      'rdflow run, warm (runCli in-process, sessions already open, fresh engine per run)',
      fmtSummary(r.warm.engine, 0, ' ms'),
      `**${fmtSummary(r.warm.ratio, 3, '×')}**`,
      `\`${cmd}\` in a process that has run it once (bench/engine-overhead.ts, task engine.run)`,
    ],
    [
      'plain script, warm (same sessions, same inputs, same writers)',
      fmtSummary(r.warm.plain, 0, ' ms'),
      '1',
      'bench/plain.ts runPlain() in a process that has run it once',
    ],
    [
      '… of which inside onnxruntime session.run()',
      fmtSummary(r.warm.ort, 0, ' ms'),
      '',
      `${r.unetCalls} UNet calls at ${fmtSummary(r.warm.unetCallMs, 1, ' ms')} each`,
    ],
    [
      'rdflow run, cold process (spawn → exit)',
      fmtSummary(r.cold.engine, 0, ' ms'),
      fmtSummary(r.cold.ratio, 3, '×'),
      `\`${cmd}\`; peak RSS ${fmtSummary(mapSummary(r.cold.engineRss, mib), 0, ' MiB')}`,
    ],
    [
      'plain script, cold process (spawn → exit)',
      fmtSummary(r.cold.plain, 0, ' ms'),
      '1',
      `\`node --import tsx bench/plain.ts SETTINGS\`; peak RSS ${fmtSummary(mapSummary(r.cold.plainRss, mib), 0, ' MiB')}`,
    ],
  ];
  const b = r.breakdown;
  const hop = r.unetCalls * (b.unetRuntimeMs - b.unetDirectMs);
  const explained = b.validateMs + hop + 3 * b.previewMs;
  const notes = [
    `Workflow: the shipped 3-clip VidRD workflow (FNR, PNS, DSG, CFG 10, MP4 + GIF) with \`${sets}\`: ` +
      'the bench model (runtime test variant `slow`: 96 channels, 4 blocks) on latents [1,4,8,8,8], 10 DDIM steps.',
    'Warm rows measure one run in a process that already ran it once: session creation, module loading and process ' +
      `start are excluded from both sides (first runs: rdflow ${r.firstRun.engine.toFixed(0)} ms, plain ${r.firstRun.plain.toFixed(0)} ms). ` +
      'Both sides include text encoding, sampling, VAE decode and the MP4 + GIF encoding; rdflow also pays validation ' +
      '(model folder inspection and fingerprint), planning, per-node cache bookkeeping, events, a PNG preview per clip, ' +
      'and the copy of every tensor to and from the inference worker thread.',
    'Cold rows include everything: node start, tsx transpilation, module imports, session creation.',
    `Where the warm difference (${(r.warm.engine.median - r.warm.plain.median).toFixed(0)} ms between medians) goes, ` +
      `measured separately in the rdflow process: validation ${b.validateMs.toFixed(1)} ms; a UNet call through the ` +
      `runtime's worker thread ${b.unetRuntimeMs.toFixed(1)} ms vs ${b.unetDirectMs.toFixed(1)} ms on a session in the ` +
      `same thread (× ${r.unetCalls} calls = ${hop.toFixed(0)} ms); the PNG preview ${b.previewMs.toFixed(1)} ms per clip ` +
      `(× 3 = ${(3 * b.previewMs).toFixed(0)} ms); together ${explained.toFixed(0)} ms.`,
    met
      ? `Goal ≤ ${ENGINE_GOAL}× (warm median of paired ratios): met.`
      : `Goal ≤ ${ENGINE_GOAL}×: **missed** by ${((ratio / ENGINE_GOAL - 1) * 100).toFixed(1)} % (median ${ratio.toFixed(3)}×). See "Problems found".`,
  ];
  return {
    title: '1. Engine overhead',
    goal: `rdflow run / plain script ≤ ${ENGINE_GOAL}×`,
    met,
    headline: `${fmtSummary(r.warm.ratio, 3, '×')} warm; ${fmtSummary(r.cold.ratio, 3, '×')} cold process`,
    columns: ['what', 'median (min–max)', 'ratio to plain', 'how to reproduce'],
    rows,
    notes,
  };
}
