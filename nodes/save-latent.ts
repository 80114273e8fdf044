// SaveLatent: writes a latent as a float32 .npy under the output folder (np.load reads it with its
// shape), the interchange format with PyTorch. Written to a temp name and renamed when complete.
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineNode, input } from '../server/engine/define.ts';
import { writeNpy } from './lib/npy.ts';
import type { Tensor } from './lib/tensor-type.ts';
import { resolveOutputPath } from './lib/video/index.ts';

export const saveLatentNode = defineNode({
  name: 'SaveLatent',
  displayName: 'Save Latent',
  category: 'rdflow/latent',
  description: 'Saves a latent as a float32 .npy file (numpy.load reads it) under the output folder.',
  inputs: {
    required: {
      latent: input.link<Tensor>('LATENT'),
      filename_prefix: input.string({ default: 'latents/rdflow' }),
    },
  },
  outputs: [],
  outputNode: true,
  async run({ latent, filename_prefix }, ctx) {
    const file = resolveOutputPath(ctx.paths.output, filename_prefix, 'npy');
    const tmp = `${file}.tmp`;
    try {
      await writeFile(tmp, writeNpy(latent, 'float32'));
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const rel = path.relative(ctx.paths.output, file).split(path.sep).join('/');
    const slash = rel.lastIndexOf('/');
    const entry = {
      filename: rel.slice(slash + 1),
      subfolder: slash < 0 ? '' : rel.slice(0, slash),
      type: 'output',
    };
    return { outputs: [], ui: { latents: [entry] } };
  },
});
