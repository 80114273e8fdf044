// FNRReverse: frame-level noise reversal, the first half of VidRD's next-clip noise: frames reversed.
import { defineNode, input, output } from '../server/engine/define.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { flipFrames } from '../server/core/vidrd.ts';
import { requireTensor } from './checks.ts';
import { sameShape } from './limits.ts';

export const fnrReverseNode = defineNode({
  name: 'FNRReverse',
  displayName: 'FNR Reverse',
  category: 'rdflow/vidrd',
  description: 'Reverses the frame axis of a noise latent (VidRD frame-level noise reversal).',
  inputs: { required: { noise: input.link<Tensor>('NOISE') } },
  outputs: [output<Tensor>('NOISE')],
  infer: ({ noise }) => [sameShape(noise)],
  run({ noise }) {
    return { outputs: [flipFrames(requireTensor(noise, 'noise', 5, '[B,C,N,h,w]'))] };
  },
});
