// What tests and tools need to know about the demo model without loading it: which training clips
// a prompt asks for, and a clip's latent as a sampler-shaped tensor.
import type { Tensor } from '../../core/tensor-type.ts';
import { CLIP_FRAMES, clipLatent, type TrainingClip, type TrainingSet } from './dataset.ts';
import { LATENT_CHANNELS, LATENT_SIZE } from './vae.ts';
import { WORDS, type Concept } from './vocab.ts';

/** The concepts a prompt's known words name (lower-cased letter runs, as CLIP splits words). */
export function promptConcepts(prompt: string): Set<Concept> {
  const words = prompt.toLowerCase().match(/\p{L}+/gu) ?? [];
  return new Set(words.flatMap((w) => WORDS[w] ?? []));
}

/** Whether a clip shows every concept the prompt names (a prompt naming none matches all). */
export function clipMatches(clip: TrainingClip, concepts: ReadonlySet<Concept>): boolean {
  const has = new Set<Concept>([clip.colour, clip.shape, clip.motion]);
  if (clip.direction) has.add(clip.direction);
  return [...concepts].every((c) => has.has(c));
}

/** Indices of the training clips that show everything the prompt names. */
export function clipsForPrompt(set: TrainingSet, prompt: string): number[] {
  const concepts = promptConcepts(prompt);
  return set.clips.filter((c) => clipMatches(c, concepts)).map((c) => c.index);
}

/** Training clip k as a latent [1, 4, 8, 32, 32] in the sampler's units (decode it with the VAE). */
export function trainingClipLatent(set: TrainingSet, k: number): Tensor {
  return {
    data: clipLatent(set, k),
    shape: [1, LATENT_CHANNELS, CLIP_FRAMES, LATENT_SIZE, LATENT_SIZE],
  };
}
