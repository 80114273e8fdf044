// NoiseInit: the first clip's starting noise, exactly `torch.manual_seed(seed); torch.randn(shape)`
// for shape [B, 4, N, h/8, w/8], so a seed means the same noise here as in PyTorch.
import { defineNode, input, output } from '../server/engine/define.ts';
import { torchRandn } from '../server/core/torch-rng.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { clipCosts } from './limits.ts';

/** Latent channels of the SD VAE; the spatial downscale of its latents. */
export const LATENT_CHANNELS = 4;
export const LATENT_SCALE = 8;
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export const noiseInitNode = defineNode({
  name: 'NoiseInit',
  displayName: 'Noise Init',
  category: 'rdflow/sampling',
  description: 'Gaussian noise [batch, 4, frames, height/8, width/8] from a PyTorch-compatible seed.',
  inputs: {
    required: {
      seed: input.int({ default: 0, min: 0, max: MAX_SEED, controlAfterGenerate: true }),
      frames: input.int({ default: 8, min: 1, max: 1024, tooltip: 'Frames per clip (N).' }),
      width: input.int({ default: 256, min: 8, max: 4096, step: 8 }),
      height: input.int({ default: 256, min: 8, max: 4096, step: 8 }),
      batch_size: input.int({ default: 1, min: 1, max: 64 }),
    },
  },
  outputs: [output<Tensor>('NOISE')],
  validate(inputs) {
    const issues = [];
    for (const key of ['width', 'height'] as const) {
      const v = inputs[key];
      if (v !== undefined && v % LATENT_SCALE !== 0) {
        issues.push({ input: key, message: `${key} ${v} is not a multiple of ${LATENT_SCALE}` });
      }
    }
    return issues;
  },
  infer({ frames, width, height, batch_size }) {
    if (frames === undefined || width === undefined || height === undefined || batch_size === undefined) {
      return undefined;
    }
    return [{ shape: [batch_size, LATENT_CHANNELS, frames, height / LATENT_SCALE, width / LATENT_SCALE] }];
  },
  cost({ frames, width, height, batch_size }) {
    if (frames === undefined || width === undefined || height === undefined || batch_size === undefined) {
      return [];
    }
    return clipCosts('frames', { frames, width, height, batch: batch_size });
  },
  run({ seed, frames, width, height, batch_size }) {
    const shape = [batch_size, LATENT_CHANNELS, frames, height / LATENT_SCALE, width / LATENT_SCALE];
    return { outputs: [torchRandn(shape, seed)] };
  },
});
