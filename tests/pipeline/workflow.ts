// Loads a shipped workflow and applies overrides the way `rdflow run --set` does, so tests run the
// very graph that ships, only smaller (model, size, steps, clips).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiPrompt } from '../../server/engine/types.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function readWorkflow(name: string): ApiPrompt {
  return JSON.parse(readFileSync(path.join(repoRoot, 'workflows', name), 'utf8')) as ApiPrompt;
}

/** Sets `inputs[name] = value` on every node of `classType` that has that input as a literal. */
export function setInput(prompt: ApiPrompt, classType: string, name: string, value: unknown): ApiPrompt {
  let hits = 0;
  for (const node of Object.values(prompt)) {
    if (node.class_type === classType && name in node.inputs && !Array.isArray(node.inputs[name])) {
      node.inputs[name] = value;
      hits++;
    }
  }
  if (hits === 0) throw new Error(`no ${classType} node with a literal input "${name}"`);
  return prompt;
}

export interface SmallRun {
  model: string;
  steps: number;
  size: number;
  frames?: number;
  clips?: number;
  prefix?: string;
}

/** The workflow, shrunk for a test: model, steps, size, clips, and output names under `prefix`. */
export function shrink(prompt: ApiPrompt, o: SmallRun): ApiPrompt {
  const p = structuredClone(prompt);
  setInput(p, 'LoadVideoModel', 'model', o.model);
  setInput(p, 'DDIMSampler', 'steps', o.steps);
  setInput(p, 'NoiseInit', 'width', o.size);
  setInput(p, 'NoiseInit', 'height', o.size);
  if (o.frames !== undefined) setInput(p, 'NoiseInit', 'frames', o.frames);
  if (o.clips !== undefined) setInput(p, 'LoopStart', 'iterations', o.clips);
  if (o.prefix !== undefined) {
    for (const node of Object.values(p)) {
      if (node.class_type === 'VideoWrite') node.inputs.filename_prefix = `${o.prefix}/video`;
    }
  }
  return p;
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
