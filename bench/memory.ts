// Benchmark 2, memory flat in video length: peak RSS of `rdflow run` for K = 2, 8, 32 (and 64) clips (same
// model, same N, same steps; MP4 only, streamed), each K in its own process, K order rotated per
// repetition. Also the DSG record's bytes per clip at the shipped defaults, from the real sampler.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseSchedulerConfig } from '../server/core/ddim.ts';
import { sampleClip } from '../server/core/sampler.ts';
import { numel } from '../server/core/tensor.ts';
import { torchRandn } from '../server/core/torch-rng.ts';
import { recordBytes } from '../server/core/vidrd.ts';
import { setArgs, workflowPrompt, type BenchEnv } from './config.ts';
import { RDFLOW_BIN, runNode } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, mapSummary, mib, pairedRatios, summarize, type Summary } from './stats.ts';

export const CLIP_COUNTS = [2, 8, 32, 64] as const;
/** The goal compares these two; 64 shows whether a rise from 2 to 32 keeps going or levels off. */
const GOAL_LOW = 2;
const GOAL_HIGH = 32;
/** Demo model at the shipped 256×256, N = 8; 2 DDIM steps so 32 clips fit the time budget. */
export const MEMORY_SETS: readonly string[] = ['6.steps=2'];
export const MEMORY_GOAL = 1.1;

export interface MemoryRow {
  clips: number;
  rss: Summary;
  ms: Summary;
}

export interface RecordSize {
  /** recordBytes() of a clip's record at the shipped defaults. */
  bytes: number;
  latentBytes: number;
  imageBytes: number;
  steps: number;
  beta: number;
  referenceFrames: number;
  shape: number[];
}

export interface MemoryResult {
  rows: MemoryRow[];
  /** RSS(32) / RSS(2): ratio of medians, and the spread of per-repetition ratios. */
  ratio: number;
  pairedRatio: Summary;
  record: RecordSize;
}

/** The shipped workflow without its GIF writer (node 9): the MP4 streams, nothing else is written. */
function mp4OnlyWorkflow(file: string): void {
  const prompt = workflowPrompt([]);
  delete prompt['9'];
  writeFileSync(file, JSON.stringify(prompt, null, 2));
}

/** A real record: two clips of sampleClip at the shipped settings with a zero denoiser (sizes only). */
export async function shippedRecordSize(schedulerConfig: Record<string, unknown>): Promise<RecordSize> {
  const p = workflowPrompt([]);
  const steps = Number(p['6'].inputs.steps);
  const beta = Number(p['6'].inputs.beta);
  const referenceFrames = Number(p['6'].inputs.reference_frames);
  const n = p['4'].inputs;
  const shape = [1, 4, Number(n.frames), Number(n.height) / 8, Number(n.width) / 8];
  const opts = {
    noise: torchRandn(shape, 42),
    positive: { data: new Float32Array(77 * 16), shape: [1, 77, 16] },
    negative: { data: new Float32Array(77 * 16), shape: [1, 77, 16] },
    steps,
    cfg: 10,
    eta: 0,
    seed: 42,
    scheduler: parseSchedulerConfig(schedulerConfig),
    beta,
    referenceFrames,
    denoise: async (s: { shape: readonly number[] }) => ({
      data: new Float32Array(numel(s.shape)),
      shape: [...s.shape],
    }),
    dynamicBatch: true,
  };
  const first = await sampleClip(opts);
  const second = await sampleClip({ ...opts, previous: first.record });
  return {
    bytes: recordBytes(second.record),
    latentBytes: numel(shape) * 4,
    imageBytes: shape[2] * shape[3] * 8 * shape[4] * 8 * 3 * 4,
    steps,
    beta,
    referenceFrames,
    shape,
  };
}

export async function benchMemory(
  env: BenchEnv,
  schedulerConfig: Record<string, unknown>,
  log: (m: string) => void,
): Promise<MemoryResult> {
  const wf = path.join(env.tmp, 'mp4-only.json');
  mp4OnlyWorkflow(wf);
  const rss = new Map<number, number[]>(CLIP_COUNTS.map((k) => [k, []]));
  const ms = new Map<number, number[]>(CLIP_COUNTS.map((k) => [k, []]));
  const outDir = path.join(env.tmp, 'out', 'memory');
  for (let i = 0; i < env.reps; i++) {
    // Rotate the order so no K always runs first (or after the longest run).
    const order = CLIP_COUNTS.map((_, j) => CLIP_COUNTS[(i + j) % CLIP_COUNTS.length]);
    for (const k of order) {
      const sets = setArgs([...MEMORY_SETS, `5.iterations=${k}`]);
      const r = await runNode([
        RDFLOW_BIN,
        'run',
        wf,
        ...sets,
        '--models-dir',
        env.modelsDir,
        '--out',
        outDir,
      ]);
      rmSync(outDir, { recursive: true, force: true });
      rss.get(k)!.push(r.peakRss);
      ms.get(k)!.push(r.ms);
    }
    log(
      `  ${i + 1}/${env.reps}: ${CLIP_COUNTS.map((k) => `K=${k} ${mib(rss.get(k)!.at(-1)!).toFixed(0)} MiB`).join(', ')}`,
    );
  }
  const lo = GOAL_LOW;
  const hi = GOAL_HIGH;
  return {
    rows: CLIP_COUNTS.map((k) => ({ clips: k, rss: summarize(rss.get(k)!), ms: summarize(ms.get(k)!) })),
    ratio: summarize(rss.get(hi)!).median / summarize(rss.get(lo)!).median,
    pairedRatio: summarize(pairedRatios(rss.get(hi)!, rss.get(lo)!)),
    record: await shippedRecordSize(schedulerConfig),
  };
}

export function memorySection(r: MemoryResult): Section {
  const met = r.ratio <= MEMORY_GOAL;
  const base = r.rows[0].rss.median;
  const rec = r.record;
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  const at = (k: number) => r.rows.find((row) => row.clips === k)!.rss.median;
  const last = r.rows[r.rows.length - 1];
  const levelsOff = last.rss.median / at(GOAL_HIGH) <= 1.05;
  const why = levelsOff
    ? `It levels off rather than growing with K: ${last.clips} clips peak at ${mib(last.rss.median).toFixed(0)} MiB, ` +
      `${((last.rss.median / at(GOAL_HIGH) - 1) * 100).toFixed(1)} % from ${GOAL_HIGH} clips, so nothing accumulates per clip; ` +
      'the rise is most likely garbage from the first clips (each clip allocates its decoded frames, 6 MiB, plus latents and RGB ' +
      'buffers) that V8 collects only once its heap and external-memory limits have grown, which a 2-clip run never reaches.'
    : `It keeps growing (${last.clips} clips: ${mib(last.rss.median).toFixed(0)} MiB): something is kept per clip ` +
      '(loop iteration values, cache entries, writer buffers).';
  const problems = met
    ? []
    : [
        `Peak RSS vs video length (engine, nodes owners): ${mib(at(GOAL_HIGH)).toFixed(0)} MiB for ${GOAL_HIGH} clips vs ` +
          `${mib(at(GOAL_LOW)).toFixed(0)} MiB for ${GOAL_LOW} (${r.ratio.toFixed(3)}×, goal ${MEMORY_GOAL}). ${why} ` +
          (levelsOff
            ? 'If the goal should hold as written, reuse per-clip buffers (VAE output, RGB8 frames) instead of allocating new ones per clip.'
            : ''),
      ];
  return {
    title: '2. Memory flat in length',
    problems,
    goal: `peak RSS(${GOAL_HIGH} clips) / peak RSS(${GOAL_LOW} clips) ≤ ${MEMORY_GOAL.toFixed(2)}`,
    met,
    headline: `RSS(${GOAL_HIGH})/RSS(${GOAL_LOW}) = ${r.ratio.toFixed(3)} (per run ${fmtSummary(r.pairedRatio, 3)}); DSG record ${kib(rec.bytes)}/clip`,
    columns: ['clips K', 'frames', 'peak RSS, MiB', 'vs K = 2', 'wall time, s', 'how to reproduce'],
    rows: r.rows.map((row) => [
      String(row.clips),
      String(row.clips * rec.shape[2]),
      fmtSummary(mapSummary(row.rss, mib), 1),
      `${(row.rss.median / base).toFixed(3)}×`,
      fmtSummary(
        mapSummary(row.ms, (v) => v / 1000),
        1,
      ),
      `node bin/rdflow.js run MP4_ONLY.json ${setArgs([...MEMORY_SETS, `5.iterations=${row.clips}`]).join(' ')}`,
    ]),
    notes: [
      'MP4_ONLY.json is workflows/vidrd-long-video.json without node 9 (the GIF writer), on the demo model at the shipped ' +
        '256×256, N = 8, β = 0.4, M = 4, CFG batch 2; 2 DDIM steps per clip so that 64 clips fit the time budget; the goal compares 32 with 2, the 64-clip row shows whether the curve levels off. ' +
        'Peak RSS is VmHWM of the rdflow process at exit (bench/rss-preload.mjs); the ffmpeg encoder is a separate process, not counted.',
      `DSG record per clip at the shipped defaults (S = ${rec.steps}, β = ${rec.beta}, M = ${rec.referenceFrames}, latent [${rec.shape.join(',')}]): ` +
        `recordBytes = ${rec.bytes} B (${kib(rec.bytes)}) = record[0] whole + ceil(β·S) tails of M frames, ` +
        `${(rec.bytes / rec.latentBytes).toFixed(1)}× one clip latent (${kib(rec.latentBytes)}); a clip's decoded frames are ${kib(rec.imageBytes)}. ` +
        'Computed from a real sampleClip record (bench/memory.ts shippedRecordSize).',
      met
        ? `Goal ≤ ${MEMORY_GOAL.toFixed(2)}: met (ratio of medians).`
        : `Goal ≤ ${MEMORY_GOAL.toFixed(2)}: **missed** by ${((r.ratio / MEMORY_GOAL - 1) * 100).toFixed(1)} % (ratio ${r.ratio.toFixed(3)}). ${why}`,
    ],
  };
}
