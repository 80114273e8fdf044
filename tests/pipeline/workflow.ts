// Loads a shipped workflow and applies overrides the way `rdflow run --set` does, so tests run the
// very graph that ships, only smaller (model, size, steps, clips).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { applySets } from '../../server/cli.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { repoRoot } from '../nodes/context.ts';

export { repoRoot };

export function readWorkflow(name: string): ApiPrompt {
  return JSON.parse(readFileSync(path.join(repoRoot, 'workflows', name), 'utf8')) as ApiPrompt;
}

/** The ids of the nodes of `classType` (at least one). */
export function idsOf(prompt: ApiPrompt, classType: string): string[] {
  const ids = Object.keys(prompt).filter((id) => prompt[id].class_type === classType);
  if (ids.length === 0) throw new Error(`workflow has no ${classType} node`);
  return ids;
}

export interface SmallRun {
  model: string;
  steps: number;
  size: number;
  frames?: number;
  clips?: number;
  /** Output subfolder for the videos. */
  prefix?: string;
}

/**
 * The workflow, shrunk for a test through the CLI's own `--set NODE_ID.INPUT=VALUE` overrides:
 * model, steps, size, frames, clips, and video names under `prefix`.
 */
export function shrink(prompt: ApiPrompt, o: SmallRun): ApiPrompt {
  const sets: string[] = [];
  const set = (classType: string, input: string, value: string | number) => {
    for (const id of idsOf(prompt, classType)) sets.push(`${id}.${input}=${value}`);
  };
  set('LoadVideoModel', 'model', o.model);
  set('DDIMSampler', 'steps', o.steps);
  set('NoiseInit', 'width', o.size);
  set('NoiseInit', 'height', o.size);
  if (o.frames !== undefined) set('NoiseInit', 'frames', o.frames);
  if (o.clips !== undefined) set('LoopStart', 'iterations', o.clips);
  if (o.prefix !== undefined) set('VideoWrite', 'filename_prefix', `${o.prefix}/video`);
  return applySets(prompt, sets);
}

/** Adds a SaveLatent of the sampler's latent (in the loop body: one file per clip). */
export function saveSamplerLatents(prompt: ApiPrompt, prefix: string): ApiPrompt {
  const sampler = Object.entries(prompt).find(([, n]) => n.class_type === 'DDIMSampler');
  if (sampler === undefined) throw new Error('workflow has no DDIMSampler');
  prompt['900'] = {
    class_type: 'SaveLatent',
    inputs: { latent: [sampler[0], 0], filename_prefix: `${prefix}/clip` },
  };
  return prompt;
}
