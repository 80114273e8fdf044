// LoadLatent: a .npy file from the input folder (and only from there) → LATENT [B,C,F,h,w] float32.
import { readFile } from 'node:fs/promises';
import { defineNode, input, output } from '../server/engine/define.ts';
import { filesFingerprint, listFilesWithExt, resolveExistingInside, resolveInside } from './files.ts';
import { npyToTensor } from '../server/core/npy.ts';
import type { Tensor } from '../server/core/tensor-type.ts';

export const loadLatentNode = defineNode({
  name: 'LoadLatent',
  displayName: 'Load Latent',
  category: 'rdflow/latent',
  description:
    'Loads a latent [B,C,F,h,w] from a .npy file in the input folder (float16/32/64 read as float32).',
  inputs: {
    required: {
      file: input.combo((env) => listFilesWithExt(env.paths.input, '.npy'), {
        tooltip: 'A .npy file in the input folder.',
      }),
    },
  },
  outputs: [output<Tensor>('LATENT')],
  validate(inputs, env) {
    if (inputs.file === undefined) return undefined;
    try {
      resolveInside(env.paths.input, inputs.file);
    } catch (e) {
      return [{ input: 'file', message: e instanceof Error ? e.message : String(e) }];
    }
    return undefined;
  },
  async fingerprint(inputs, env) {
    if (inputs.file === undefined) return '';
    try {
      return await filesFingerprint(resolveInside(env.paths.input, inputs.file));
    } catch {
      return 'unresolved';
    }
  },
  async run({ file }, ctx) {
    const bytes = await readFile(await resolveExistingInside(ctx.paths.input, file));
    let latent: Tensor;
    try {
      latent = npyToTensor(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      throw new Error(
        `input "file": ${file} is not a readable .npy (${e instanceof Error ? e.message : String(e)})`,
        { cause: e },
      );
    }
    if (latent.shape.length !== 5) {
      throw new Error(
        `input "file": ${file} has shape [${latent.shape.join(', ')}], expected a latent [B,C,F,h,w]`,
      );
    }
    return { outputs: [latent] };
  },
});
