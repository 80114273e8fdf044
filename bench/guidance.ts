// Benchmark 4, guidance batching: classifier-free guidance as one UNet call on a batch of 2 vs two
// calls on batch 1, per DDIM step, through the real runtime (worker-thread sessions) and the real
// sampler (server/core/sampler.ts sampleClip, `dynamicBatch` true/false), on the bench and demo models.
import path from 'node:path';
import { parseSchedulerConfig } from '../server/core/ddim.ts';
import { sampleClip } from '../server/core/sampler.ts';
import { torchRandn } from '../server/core/torch-rng.ts';
import { getRuntime, type VideoModel } from '../server/runtime/index.ts';
import type { BenchEnv } from './config.ts';
import { startWorker } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, pairedRatios, summarize, type Summary } from './stats.ts';

/** Per model: its latent [1,4,N,h,w] and DDIM steps per measured clip. */
export const GUIDANCE_CASES = {
  bench: { latent: [1, 4, 8, 8, 8], steps: 10, what: 'bench model (test variant `slow`), 64×64, N = 8' },
  demo: { latent: [1, 4, 8, 32, 32], steps: 5, what: 'demo model, 256×256, N = 8 (shipped size)' },
} as const;
export type GuidanceModel = keyof typeof GUIDANCE_CASES;

const loaded = new Map<GuidanceModel, VideoModel>();

export const guidanceTasks = {
  /** ms per step of one clip: S steps of sampleClip with CFG batched or not. */
  async 'guidance.clip'(a: { modelsDir: string; model: GuidanceModel; batched: boolean }): Promise<number> {
    let m = loaded.get(a.model);
    if (!m) {
      m = await getRuntime().loadModel(path.join(a.modelsDir, a.model));
      loaded.set(a.model, m);
    }
    const c = GUIDANCE_CASES[a.model];
    const unet = m.unet;
    const positive = await m.textEncoder.encode('a red ball moving right');
    const negative = await m.textEncoder.encode('watermark');
    const t = performance.now();
    await sampleClip({
      noise: torchRandn(c.latent, 42),
      positive,
      negative,
      steps: c.steps,
      cfg: 10,
      eta: 0,
      seed: 42,
      scheduler: parseSchedulerConfig(m.schedulerConfig),
      beta: 0.4,
      referenceFrames: 4,
      denoise: (sample, ts, hidden, signal) => unet.predict(sample, ts, hidden, signal),
      dynamicBatch: a.batched,
    });
    return (performance.now() - t) / c.steps;
  },
};

export interface GuidanceRow {
  batched: Summary;
  split: Summary;
  /** batched / split, paired per repetition. */
  ratio: Summary;
}

export type GuidanceResult = Record<GuidanceModel, GuidanceRow>;

export async function benchGuidance(env: BenchEnv, log: (m: string) => void): Promise<GuidanceResult> {
  const w = startWorker();
  const result = {} as GuidanceResult;
  try {
    for (const model of Object.keys(GUIDANCE_CASES) as GuidanceModel[]) {
      const clip = (batched: boolean) =>
        w.call<number>('guidance.clip', { modelsDir: env.modelsDir, model, batched });
      await clip(true); // untimed: sessions, first-run allocations
      await clip(false);
      const batched: number[] = [];
      const split: number[] = [];
      for (let i = 0; i < env.reps; i++) {
        // Interleaved, alternating which goes first.
        if (i % 2 === 0) {
          batched.push(await clip(true));
          split.push(await clip(false));
        } else {
          split.push(await clip(false));
          batched.push(await clip(true));
        }
      }
      result[model] = {
        batched: summarize(batched),
        split: summarize(split),
        ratio: summarize(pairedRatios(batched, split)),
      };
      log(
        `  ${model}: batch 2 ${result[model].batched.median.toFixed(1)} ms/step, 2×batch 1 ${result[model].split.median.toFixed(1)} ms/step`,
      );
    }
  } finally {
    await w.close();
  }
  return result;
}

export function guidanceSection(r: GuidanceResult): Section {
  const models = Object.keys(GUIDANCE_CASES) as GuidanceModel[];
  return {
    title: '4. Guidance batching',
    headline: models
      .map((m) => `${m}: batch 2 = ${fmtSummary(r[m].ratio, 2, '×')} of 2 × batch 1`)
      .join('; '),
    columns: [
      'model',
      'CFG as one batch-2 call, ms/step',
      'CFG as two batch-1 calls, ms/step',
      'batch 2 / 2 × batch 1',
      'how to reproduce',
    ],
    rows: models.map((m) => [
      GUIDANCE_CASES[m].what,
      fmtSummary(r[m].batched, 1),
      fmtSummary(r[m].split, 1),
      fmtSummary(r[m].ratio, 2, '×'),
      `bench/guidance.ts task guidance.clip {model: "${m}"}: sampleClip over ${GUIDANCE_CASES[m].steps} steps, dynamicBatch true vs false`,
    ]),
    notes: [
      'A step is one sampleClip step: the UNet call(s) through the runtime (tensors copied to and from the worker ' +
        'thread), the CFG combination and the DDIM update; each clip is timed whole and divided by its steps.',
      "No goal in the issue; the runtime batches CFG whenever the model's batch axis is dynamic.",
    ],
  };
}
