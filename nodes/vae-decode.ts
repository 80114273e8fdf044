// VAEDecode: a clip's latent → its frames as IMAGE [F, H, W, 3]; previews the decoded clip at once
// (a PNG frame strip), so each clip of a long video is seen as soon as it exists.
import { defineNode, input, output } from '../server/engine/define.ts';
import type { VaeDecoderModel } from '../server/runtime/types.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { previewStrip } from '../server/runtime/video/index.ts';
import { requireTensor } from './checks.ts';
import { clipCosts, shapeOf } from './limits.ts';

/** Pixels per latent cell of the SD VAE. */
const SCALE = 8;

export const vaeDecodeNode = defineNode({
  name: 'VAEDecode',
  displayName: 'VAE Decode',
  category: 'rdflow/latent',
  description: 'Decodes a latent video [B,4,F,h,w] into frames [B·F, H, W, 3] in [0, 1].',
  inputs: {
    required: {
      vae: input.link<VaeDecoderModel>('VAE'),
      latent: input.link<Tensor>('LATENT'),
    },
    optional: {
      frames_per_batch: input.int({ default: 8, min: 1, max: 1024, tooltip: 'Frames decoded per VAE call.' }),
    },
  },
  outputs: [output<Tensor>('IMAGE')],
  infer({ latent }) {
    const s = shapeOf(latent);
    return s?.length === 5 ? [{ shape: [s[0] * s[2], s[3] * SCALE, s[4] * SCALE, 3] }] : undefined;
  },
  // The decoded frames are the largest thing a clip allocates: checked before decoding.
  cost({ latent }) {
    const s = shapeOf(latent);
    if (s?.length !== 5) return [];
    return clipCosts('latent', { frames: s[2], width: s[4] * SCALE, height: s[3] * SCALE, batch: s[0] });
  },
  async run({ vae, latent: linked, frames_per_batch }, ctx) {
    const latent = requireTensor(linked, 'latent', 5, '[B,C,F,h,w]');
    // In a loop, last clip's frames (released by the engine) are decoded over: no 6 MiB of garbage per clip.
    const previous = ctx.recycled?.()?.[0] as Tensor | undefined;
    const images = await vae.decode(latent, frames_per_batch ?? 8, ctx.signal, previous?.data);
    // Encoding the strip costs milliseconds per clip: only when the host shows previews.
    if (ctx.previews !== false) ctx.preview({ format: 'png', data: previewStrip(images) });
    return { outputs: [images] };
  },
});
