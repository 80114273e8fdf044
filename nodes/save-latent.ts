// SaveLatent: writes a latent as a float32 .npy under the output folder (np.load reads it with its
// shape), the interchange format with PyTorch. Written to a temp name and renamed when complete.
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineNode, input } from '../server/engine/define.ts';
import { writeNpy } from '../server/core/npy.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { resolveOutputPath } from '../server/runtime/video/index.ts';
import { prefixIssues } from './video-write.ts';
import { requireTensor } from './checks.ts';
import { fileNameIssues } from './limits.ts';

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
  validate(inputs) {
    return [...prefixIssues(inputs.filename_prefix), ...fileNameIssues(inputs.filename_prefix)];
  },
  async run({ latent, filename_prefix }, ctx) {
    const target = resolveOutputPath(ctx.paths.output, filename_prefix, 'npy');
    // Hidden temp name that the counter still sees (.name_NNNNN.tmp-*.npy), so parallel runs differ.
    const stem = target.filename.slice(0, -'.npy'.length);
    const tmp = path.join(path.dirname(target.path), `.${stem}.tmp-${process.pid}.npy`);
    try {
      await writeFile(tmp, writeNpy(requireTensor(latent, 'latent', 5, '[B,C,F,h,w]'), 'float32'));
      await rename(tmp, target.path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const entry = { filename: target.filename, subfolder: target.subfolder, type: 'output' };
    return { outputs: [], ui: { latents: [entry] } };
  },
});
