// PNSNoise: past-dependent noise sampling, the next clip's starting noise from the reversed previous
// one: its first M frames copied, the rest mixed α/sqrt(1+α²)·r + ε with ε seeded by seed + clip.
import { defineNode, input, output } from '../server/engine/define.ts';
import { MAX_SEED } from './noise-init.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { torchRandn } from '../server/core/torch-rng.ts';
import { pnsNoise } from '../server/core/vidrd.ts';
import { requireTensor } from './checks.ts';
import { referenceFrameIssues, sameShape } from './limits.ts';

export const pnsNoiseNode = defineNode({
  name: 'PNSNoise',
  displayName: 'PNS Noise',
  category: 'rdflow/vidrd',
  description:
    'Next clip’s noise from the reversed previous noise: M frames reused, the rest mixed with fresh noise (α).',
  inputs: {
    required: {
      noise: input.link<Tensor>('NOISE', { tooltip: 'The previous clip’s noise, frames reversed (FNR).' }),
      alpha: input.float({ default: 4, min: 0, max: 1e6, step: 0.1, tooltip: 'Noise recycle strength α.' }),
      reference_frames: input.int({
        default: 4,
        min: 0,
        max: 1024,
        tooltip: 'Frames copied as they are (M).',
      }),
      seed: input.int({ default: 0, min: 0, max: MAX_SEED, controlAfterGenerate: true }),
      clip_index: input.int({
        default: 1,
        min: 1,
        max: 1_000_000,
        tooltip: 'The clip c ≥ 1 this noise starts; the fresh noise is seeded with seed + c.',
      }),
    },
  },
  outputs: [output<Tensor>('NOISE')],
  validate: ({ noise, reference_frames }) => referenceFrameIssues(noise, reference_frames),
  infer: ({ noise }) => [sameShape(noise)],
  run({ noise: linked, alpha, reference_frames, seed, clip_index }) {
    const noise = requireTensor(linked, 'noise', 5, '[B,C,N,h,w]');
    const frames = noise.shape[2];
    if (reference_frames > frames) {
      throw new Error(
        `input "reference_frames": ${reference_frames} exceeds the ${frames} frames of the noise`,
      );
    }
    // BigInt: seed + c may pass 2^53 - 1; torch.manual_seed takes any 64-bit value.
    const eps = torchRandn(noise.shape, BigInt(seed) + BigInt(clip_index));
    return { outputs: [pnsNoise(noise, eps, alpha, reference_frames)] };
  },
});
