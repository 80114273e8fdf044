// What the benchmarks run on: the shipped workflow with --set overrides, a generated bench model
// (the runtime owner's `slow` test variant, ≥ 10 ms per UNet call) and the demo model, all in one
// temporary folder so nothing in the repository is touched.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applySets } from '../server/cli.ts';
import type { ApiPrompt } from '../server/engine/types.ts';
import { ensureDemoModel } from '../server/runtime/demo/index.ts';
import { makeTestModel, TEST_VARIANTS } from '../tests/helpers/models.ts';
import { REPO } from './proc.ts';

export const WORKFLOW = path.join(REPO, 'workflows', 'vidrd-long-video.json');
export const WORKFLOW_REL = 'workflows/vidrd-long-video.json';
export const BENCH_MODEL = 'bench';

/**
 * The shipped 3-clip workflow on the bench model: latent [1,4,8,8,8] (64×64 frames), 10 DDIM steps
 * instead of 50 by default (fixed per-run costs weigh more in a shorter run: the stricter case).
 */
export function engineSets(steps = 10): readonly string[] {
  return [`1.model=${BENCH_MODEL}`, '5.iterations=3', `6.steps=${steps}`, '4.width=64', '4.height=64'];
}
export const ENGINE_SETS: readonly string[] = engineSets();

/** `--set A --set B` arguments. */
export function setArgs(sets: readonly string[]): string[] {
  return sets.flatMap((s) => ['--set', s]);
}

/** The shipped workflow with `--set` overrides applied exactly as the CLI applies them. */
export function workflowPrompt(sets: readonly string[]): ApiPrompt {
  return applySets(JSON.parse(readFileSync(WORKFLOW, 'utf8')) as ApiPrompt, sets);
}

export interface BenchEnv {
  /** Scratch folder of this run (outputs, workflows, models). */
  readonly tmp: string;
  /** Models folder holding `bench` and `demo`. */
  readonly modelsDir: string;
  /** Repetitions per measured row. */
  readonly reps: number;
  /** One-time costs of the setup, ms. */
  readonly setupMs: { benchModel: number; demoModel: number };
}

export async function prepare(reps: number): Promise<BenchEnv> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-bench-'));
  const modelsDir = path.join(tmp, 'models');
  let t = performance.now();
  await makeTestModel(path.join(modelsDir, BENCH_MODEL), TEST_VARIANTS.slow);
  const benchModel = performance.now() - t;
  t = performance.now();
  await ensureDemoModel(modelsDir);
  const demoModel = performance.now() - t;
  return { tmp, modelsDir, reps, setupMs: { benchModel, demoModel } };
}
