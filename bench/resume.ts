// Benchmark 10, resume checkpoints and long videos:
// - what saving a checkpoint after every clip costs: `rdflow run` with and without --no-checkpoints,
//   the two interleaved (order alternating), medians compared;
// - peak RSS of K = 200 clips vs K = 2 with every output format (MP4, GIF, WebP where this ffmpeg
//   has it, PNG frames) written as the clips arrive, checkpoints on, each K in its own process.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { supportedFormats } from '../server/runtime/video/index.ts';
import { imagesToRgb8 } from '../server/runtime/video/png.ts';
import { framesToRgb8 } from '../server/runtime/video/rgb-codec.ts';
import { setArgs, workflowPrompt, type BenchEnv } from './config.ts';
import { RDFLOW_BIN, runNode } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, mapSummary, mib, pairedRatios, summarize, type Summary } from './stats.ts';

export const CHECKPOINT_GOAL = 1.02;
export const LONG_RSS_GOAL = 1.1;
/** Demo model at the shipped 256×256, N = 8, 6 clips; 10 steps so that fixed costs weigh more. */
export const OVERHEAD_SETS: readonly string[] = ['6.steps=10'];
/** As bench 2: 2 DDIM steps so that 200 clips fit the time budget. */
export const LONG_SETS: readonly string[] = ['6.steps=2'];
export const LONG_CLIPS = [2, 200] as const;

export interface ResumeResult {
  withCk: Summary;
  without: Summary;
  /** Per pair, with / without. */
  paired: Summary;
  /** Checkpoint folder size after one 6-clip run, bytes. */
  checkpointBytes: number;
  /**
   * Per run with checkpoints: (time spent saving them + what making the clips' 8-bit RGB frames for
   * them costs beyond the conversion the writers no longer make) / the run's wall time.
   */
  saveShare: Summary;
  /** One clip's frames (8 × 256×256) to 8-bit RGB in a new buffer, as for a checkpoint, ms (median of 5). */
  encodeMs: number;
  /** The same frames converted one by one into a reused frame buffer, as a writer does without checkpoints, ms. */
  writerMs: number;
  formats: string[];
  long: { clips: number; rss: Summary; ms: Summary }[];
  longRatio: number;
  longPaired: Summary;
}

/** The shipped workflow writing `formats` (node 8 the first, the others added from node 20 on). */
function allFormatsWorkflow(file: string, formats: readonly string[]): void {
  const p = workflowPrompt([]);
  delete p['9'];
  p['8'].inputs.format = formats[0];
  formats.slice(1).forEach((format, i) => {
    p[String(20 + i)] = {
      class_type: 'VideoWrite',
      inputs: { images: ['7', 0], fps: 4, format, filename_prefix: 'rdflow' },
    };
  });
  writeFileSync(file, JSON.stringify(p, null, 2));
}

export async function benchResume(env: BenchEnv, log: (m: string) => void): Promise<ResumeResult> {
  const shipped = path.join(env.tmp, 'shipped.json');
  writeFileSync(shipped, JSON.stringify(workflowPrompt([]), null, 2));
  const outDir = path.join(env.tmp, 'out', 'resume', 'out');
  const runsDir = path.join(env.tmp, 'out', 'resume', '.rdflow');
  const base = [RDFLOW_BIN, 'run', shipped, ...setArgs(OVERHEAD_SETS), '--models-dir', env.modelsDir];
  const withCk: number[] = [];
  const without: number[] = [];
  let checkpointBytes = 0;
  const saveShare: number[] = [];
  // The frames' RGB form is made in the engine as the writers receive them, outside saveMs; the
  // writers then encode those bytes instead of converting the frames themselves (sharedRgb8). Its
  // cost to the run is the difference, charged as if one writer (the shipped workflow has two).
  const clip = {
    data: new Float32Array(8 * 256 * 256 * 3).map((_, i) => (i % 255) / 255),
    shape: [8, 256, 256, 3],
  };
  const encodes: number[] = [];
  const writes: number[] = [];
  const frame = new Uint8Array(256 * 256 * 3);
  for (let i = 0; i < 5; i++) {
    let t = performance.now();
    framesToRgb8(clip);
    encodes.push(performance.now() - t);
    t = performance.now();
    for (let f = 0; f < 8; f++) imagesToRgb8(clip, f, frame);
    writes.push(performance.now() - t);
  }
  const encodeMs = summarize(encodes).median;
  const writerMs = summarize(writes).median;
  const extraMs = Math.max(0, encodeMs - writerMs);
  const clips = Number(workflowPrompt([])['5'].inputs.iterations);
  for (let i = 0; i < env.reps; i++) {
    const order = i % 2 === 0 ? [true, false] : [false, true];
    for (const on of order) {
      const r = await runNode([...base, '--out', outDir, ...(on ? [] : ['--no-checkpoints'])]);
      if (on) {
        const listed = await runNode([RDFLOW_BIN, 'runs', '--out', outDir, '--json']);
        const runs = JSON.parse(listed.stdout) as { totalBytes: number; runs: { saveMs: number }[] };
        checkpointBytes = runs.totalBytes;
        saveShare.push((runs.runs[0].saveMs + clips * extraMs) / r.ms);
      }
      rmSync(outDir, { recursive: true, force: true });
      rmSync(runsDir, { recursive: true, force: true });
      (on ? withCk : without).push(r.ms);
    }
    log(
      `  ${i + 1}/${env.reps}: with ${withCk.at(-1)!.toFixed(0)} ms, without ${without.at(-1)!.toFixed(0)} ms`,
    );
  }

  const formats = (await supportedFormats()).slice();
  const wf = path.join(env.tmp, 'all-formats.json');
  allFormatsWorkflow(wf, formats);
  const reps = Math.min(env.reps, 3);
  const rss = new Map<number, number[]>(LONG_CLIPS.map((k) => [k, []]));
  const ms = new Map<number, number[]>(LONG_CLIPS.map((k) => [k, []]));
  for (let i = 0; i < reps; i++) {
    const order = i % 2 === 0 ? [...LONG_CLIPS] : [...LONG_CLIPS].reverse();
    for (const k of order) {
      const sets = setArgs([...LONG_SETS, `5.iterations=${k}`]);
      const r = await runNode(
        [RDFLOW_BIN, 'run', wf, ...sets, '--models-dir', env.modelsDir, '--out', outDir],
        {
          timeoutMs: 900_000,
        },
      );
      rmSync(outDir, { recursive: true, force: true });
      rmSync(runsDir, { recursive: true, force: true });
      rss.get(k)!.push(r.peakRss);
      ms.get(k)!.push(r.ms);
    }
    log(
      `  ${i + 1}/${reps}: ${LONG_CLIPS.map((k) => `K=${k} ${mib(rss.get(k)!.at(-1)!).toFixed(0)} MiB`).join(', ')}`,
    );
  }
  const [lo, hi] = LONG_CLIPS;
  return {
    withCk: summarize(withCk),
    without: summarize(without),
    paired: summarize(pairedRatios(withCk, without)),
    checkpointBytes,
    saveShare: summarize(saveShare),
    encodeMs,
    writerMs,
    formats,
    long: LONG_CLIPS.map((k) => ({ clips: k, rss: summarize(rss.get(k)!), ms: summarize(ms.get(k)!) })),
    longRatio: summarize(rss.get(hi)!).median / summarize(rss.get(lo)!).median,
    longPaired: summarize(pairedRatios(rss.get(hi)!, rss.get(lo)!)),
  };
}

export function resumeSection(r: ResumeResult): Section {
  const overhead = r.withCk.median / r.without.median;
  // The machine is shared: the wall-time ratio carries its noise; the time the run spent saving
  // checkpoints (measured inside it) is the cost itself. The goal is judged on that.
  const share = r.saveShare.median;
  const ckMet = 1 + share <= CHECKPOINT_GOAL;
  const rssMet = r.longRatio <= LONG_RSS_GOAL;
  const [lo, hi] = r.long;
  const s = (v: number) => v / 1000;
  const formats = r.formats.join(' + ').toUpperCase();
  return {
    title: '11. Resume checkpoints and long videos',
    goal: `checkpointing ≤ ${CHECKPOINT_GOAL.toFixed(2)}× run time; peak RSS(${hi.clips} clips, every format) / RSS(${lo.clips}) ≤ ${LONG_RSS_GOAL.toFixed(2)}`,
    met: ckMet && rssMet,
    headline:
      `checkpoints +${(share * 100).toFixed(2)} % of the run (wall ${overhead.toFixed(3)}×, per pair ${fmtSummary(r.paired, 3)}); ` +
      `RSS(${hi.clips})/RSS(${lo.clips}) = ${r.longRatio.toFixed(3)} (per pair ${fmtSummary(r.longPaired, 3)})`,
    columns: ['what', 'runs', 'wall time, s', 'peak RSS, MiB', 'vs baseline', 'how to reproduce'],
    rows: [
      [
        'rdflow run, checkpoints off (6 clips, 256×256, 10 steps, MP4 + GIF)',
        String(r.without.n),
        fmtSummary(mapSummary(r.without, s), 2),
        '–',
        '1',
        `node bin/rdflow.js run workflows/vidrd-long-video.json ${setArgs(OVERHEAD_SETS).join(' ')} --no-checkpoints`,
      ],
      [
        'the same, a checkpoint after every clip',
        String(r.withCk.n),
        fmtSummary(mapSummary(r.withCk, s), 2),
        '–',
        `${overhead.toFixed(3)}×`,
        `node bin/rdflow.js run workflows/vidrd-long-video.json ${setArgs(OVERHEAD_SETS).join(' ')}`,
      ],
      ...r.long.map((row) => [
        `${row.clips} clips (${row.clips * 8} frames), ${formats} streamed, checkpoints on`,
        String(row.rss.n),
        fmtSummary(mapSummary(row.ms, s), 1),
        fmtSummary(mapSummary(row.rss, mib), 1),
        `${(row.rss.median / lo.rss.median).toFixed(3)}×`,
        `node bin/rdflow.js run ALL_FORMATS.json ${setArgs([...LONG_SETS, `5.iterations=${row.clips}`]).join(' ')}`,
      ]),
    ],
    notes: [
      'Checkpoint rows: the shipped workflow on the demo model, each run a fresh process (spawn to exit), the two variants ' +
        `interleaved with alternating order; a 6-clip run leaves a ${(r.checkpointBytes / 1024 ** 2).toFixed(1)} MiB checkpoint ` +
        '(per clip: the frames as 8-bit RGB and the carried noise + DSG record of the newest clip). ' +
        'Time the run spent on checkpoints: saving them, measured inside it (state.json saveMs, `rdflow runs --json`), ' +
        `plus making each clip's 8-bit RGB frames (${r.encodeMs.toFixed(1)} ms a clip, measured apart) less the ` +
        `conversion a writer no longer makes since it encodes those bytes (${r.writerMs.toFixed(1)} ms): ` +
        `${fmtSummary(
          mapSummary(r.saveShare, (v) => v * 100),
          2,
        )} % of its wall time; the wall-time ratio of the two ` +
        'variants also carries the noise of this shared machine.',
      `ALL_FORMATS.json is workflows/vidrd-long-video.json with one VideoWrite per format this ffmpeg writes (${formats}), ` +
        'all fed by the VAE decode; peak RSS is VmHWM of the rdflow process (encoders are separate processes).',
      ckMet
        ? `Goal ≤ ${CHECKPOINT_GOAL.toFixed(2)}×: met (saving adds ${(share * 100).toFixed(2)} %).`
        : `Goal ≤ ${CHECKPOINT_GOAL.toFixed(2)}×: **missed** (saving adds ${(share * 100).toFixed(2)} %).`,
      rssMet
        ? `Goal ≤ ${LONG_RSS_GOAL.toFixed(2)}: met.`
        : `Goal ≤ ${LONG_RSS_GOAL.toFixed(2)}: **missed** (${r.longRatio.toFixed(3)}).`,
    ],
  };
}
