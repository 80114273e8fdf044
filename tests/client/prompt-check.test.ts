// The prompt checks the editor and `rdflow run` share: the words a model knows come from the wire
// (/object_info's option_details) or the model folder, never from the demo model's code.
import { describe, expect, it } from 'vitest';
import { checkPromptTexts, vocabulariesFrom } from '../../client/src/prompt-check.ts';
import type { ApiPrompt, ObjectInfo } from '../../client/src/types.ts';

const objectInfo = {
  LoadVideoModel: {
    name: 'LoadVideoModel',
    input: {
      required: {
        model: [
          ['demo', 'zeroscope'],
          {
            option_details: {
              demo: { family: 'demo', vocabulary: ['red', 'ball'] },
              zeroscope: { family: 'modelscope' },
            },
          },
        ],
      },
    },
    output: ['UNET', 'TEXT_ENCODER', 'VAE', 'SCHEDULER'],
  },
} as unknown as ObjectInfo;

function prompt(model: string, text: string): ApiPrompt {
  return {
    '1': { class_type: 'LoadVideoModel', inputs: { model } },
    '2': { class_type: 'TextEncode', inputs: { text, text_encoder: ['1', 1] } },
    '6': { class_type: 'DDIMSampler', inputs: { positive: ['2', 0] } },
  };
}

describe('prompt checks', () => {
  const vocabularyOf = vocabulariesFrom(objectInfo);

  it('reads each model vocabulary from /object_info', () => {
    expect([...(vocabularyOf('demo') ?? [])]).toEqual(['red', 'ball']);
    expect(vocabularyOf('zeroscope')).toBeUndefined();
    expect(vocabulariesFrom({} as ObjectInfo)('demo')).toBeUndefined();
  });

  it('names the words a small-vocabulary model does not know, and only for that model', () => {
    const demo = checkPromptTexts(prompt('demo', 'a red ball on the moon'), vocabularyOf);
    expect(demo.errors).toEqual([]);
    expect(demo.warnings).toHaveLength(1);
    expect(demo.warnings[0]).toMatchObject({ nodeId: '2', classType: 'TextEncode' });
    expect(demo.warnings[0].message).toContain("does not know 'moon'");
    expect(demo.warnings[0].message).toContain('it knows red, ball');
    expect(checkPromptTexts(prompt('zeroscope', 'a red ball on the moon'), vocabularyOf).warnings).toEqual(
      [],
    );
  });

  it('refuses an empty positive prompt whatever the model', () => {
    const r = checkPromptTexts(prompt('zeroscope', '  '), vocabularyOf);
    expect(r.errors).toEqual([expect.objectContaining({ nodeId: '2', input: 'text' })]);
  });
});
