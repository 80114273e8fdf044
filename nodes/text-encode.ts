// TextEncode: a prompt → its CONDITIONING ([1, L, D] hidden states of the model's text encoder).
import { defineNode, input, output } from '../server/engine/define.ts';
import type { TextEncoderModel } from '../server/runtime/types.ts';
import type { Tensor } from '../server/core/tensor-type.ts';

export const textEncodeNode = defineNode({
  name: 'TextEncode',
  displayName: 'Text Encode',
  category: 'rdflow/conditioning',
  description: 'Encodes a prompt with the model’s text encoder (positive or negative conditioning).',
  inputs: {
    required: {
      text_encoder: input.link<TextEncoderModel>('TEXT_ENCODER'),
      text: input.string({ default: '', multiline: true, tooltip: 'The prompt.' }),
    },
  },
  outputs: [output<Tensor>('CONDITIONING')],
  async run({ text_encoder, text }, ctx) {
    return { outputs: [await text_encoder.encode(text, ctx.signal)] };
  },
});
