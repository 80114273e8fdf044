// PromptSchedule: schedule parsing and its errors (naming the line), the blend weights, and the
// conditioning the sampler actually receives clip by clip in the shipped long-video loop (small
// test model): clips before the first boundary are those of a run with the first prompt alone,
// later clips get their scene's (or the blended) embedding. Resume keeps clips a schedule edit
// cannot change, and refuses one that changes a clip already made.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { blendEmbeddings, clipPrompts, parseSchedule } from '../../nodes/prompt-schedule.ts';
import type { AnyNodeDef } from '../../server/engine/define.ts';
import { createEngine } from '../../server/engine/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { makeTestModel } from '../helpers/models.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';
import { cli, writeWorkflow } from './helpers.ts';

describe('parseSchedule', () => {
  test('reads "CLIP: prompt" lines, skipping blanks and comments', () => {
    const { scenes, problems } = parseSchedule(
      '# scenes\n0: a red ball bouncing\n\n4:  the ball rolls into the sea \n',
    );
    expect(problems).toEqual([]);
    expect(scenes).toEqual([
      { line: 2, start: 0, text: 'a red ball bouncing' },
      { line: 4, start: 4, text: 'the ball rolls into the sea' },
    ]);
  });

  test.each([
    ['0: a\n4: b\n3: c', /^line 3 \("3: c"\): clip 3 comes after clip 4 of line 2; sort/],
    ['0: a\n2: b\n2: c', /^line 3 \("2: c"\): clip 2 is repeated \(line 2 starts there too\)/],
    ['0: a\n-1: b', /^line 2 \("-1: b"\): clip -1 is negative/],
    ['0: a\n7: b', /^line 2 \("7: b"\): clip 7 is beyond the video's 5 clips \(0 to 4\)/],
    ['0: a\nthe sea', /^line 2 \("the sea"\): expected "CLIP: prompt"/],
    ['2: a', /^line 1 \("2: a"\): the first scene must start at clip 0/],
    ['0: a\n2:', /^line 2 \("2:"\): the prompt is empty/],
  ])('%j is refused naming the line', (text, message) => {
    const { problems } = parseSchedule(text, { clips: 5 });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });

  test('a scene may not start inside the previous boundary’s blend', () => {
    expect(parseSchedule('0: a\n2: b\n3: c', { blend: 2 }).problems).toEqual([
      'line 3 ("3: c"): the scene starts 1 clip(s) after line 2, inside its 2-clip blend',
    ]);
    expect(parseSchedule('0: a\n2: b\n4: c', { blend: 2 }).problems).toEqual([]);
  });
});

describe('clipPrompts', () => {
  const { scenes } = parseSchedule('0: a\n3: b\n6: c');
  test('without a blend each clip has its scene', () => {
    expect(
      [0, 2, 3, 5, 6, 9].map((c) =>
        clipPrompts(scenes, 0, c)
          .map((p) => p.text)
          .join(),
      ),
    ).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
  });
  test('a blend of 2 clips: weights 1/3 and 2/3 of the new scene, then the scene alone', () => {
    const show = (c: number) => clipPrompts(scenes, 2, c).map((p) => `${p.text}:${p.weight.toFixed(6)}`);
    expect(show(2)).toEqual(['a:1.000000']);
    expect(show(3)).toEqual(['a:0.666667', 'b:0.333333']);
    expect(show(4)).toEqual(['a:0.333333', 'b:0.666667']);
    expect(show(5)).toEqual(['b:1.000000']);
  });
});

describe('PromptSchedule in the long-video loop', () => {
  const paths = makePaths('rdflow-scenes-');
  beforeAll(async () => {
    await makeTestModel(path.join(paths.models, 'tiny'));
  });
  afterAll(() => paths.cleanup());

  /** The shipped loop on the test model, its positive prompt replaced by a schedule. */
  function scheduled(schedule: string, blend: number, clips: number): ApiPrompt {
    const p = shrink(readWorkflow('vidrd-long-video.json'), { model: 'tiny', steps: 3, size: 64, clips });
    p['2'] = {
      class_type: 'PromptSchedule',
      inputs: { text_encoder: ['1', 1], schedule, clip_index: ['5', 1], blend_clips: blend, clips: 0 },
    };
    return p;
  }

  /** Runs `prompt`, recording what the sampler received and returned in each clip. */
  async function sample(prompt: ApiPrompt): Promise<{ positive: Tensor; latent: Tensor }[]> {
    const clips: { positive: Tensor; latent: Tensor }[] = [];
    const real = allNodes.find((n) => n.name === 'DDIMSampler')!;
    const spy: AnyNodeDef = {
      ...real,
      async run(inputs, ctx) {
        const result = await real.run(inputs, ctx);
        clips[ctx.loop?.iteration ?? 0] = {
          positive: inputs.positive as Tensor,
          latent: (result.outputs as unknown[])[0] as Tensor,
        };
        return result;
      },
    };
    const engine = createEngine({
      nodes: allNodes.map((n) => (n === real ? spy : n)),
      paths,
      services: { models: getRuntime() },
    });
    const r = await engine.run(prompt, { promptId: 'scenes' });
    engine.close();
    expect(r.status, JSON.stringify(r)).toBe('success');
    return clips;
  }

  const plain = (text: string, clips: number) => {
    const p = shrink(readWorkflow('vidrd-long-video.json'), { model: 'tiny', steps: 3, size: 64, clips });
    p['2'].inputs.text = text;
    return p;
  };

  test('before the first boundary: the run of the first prompt alone; after: the scheduled and blended embeddings', async () => {
    const [red, dog, cat] = ['a red car', 'a dog on the beach', 'a cat running'];
    const got = await sample(scheduled(`0: ${red}\n2: ${dog}\n4: ${cat}`, 1, 5));
    const alone = await sample(plain(red, 2));
    const eDog = (await sample(plain(dog, 1)))[0].positive;
    const eCat = (await sample(plain(cat, 1)))[0].positive;
    const eRed = alone[0].positive;
    expect(got).toHaveLength(5);
    for (const c of [0, 1]) {
      expect(got[c].positive.data).toEqual(alone[c].positive.data);
      // Clip for clip the same latents as the single-prompt run.
      expect(Buffer.from(got[c].latent.data.buffer).equals(Buffer.from(alone[c].latent.data.buffer))).toBe(
        true,
      );
    }
    const half = (a: Tensor, b: Tensor) =>
      blendEmbeddings([
        { tensor: a, weight: 0.5 },
        { tensor: b, weight: 0.5 },
      ]).data;
    expect(got[2].positive.data).toEqual(half(eRed, eDog));
    expect(got[3].positive.data).toEqual(eDog.data);
    expect(got[4].positive.data).toEqual(half(eDog, eCat));
    // The blend is really between two different embeddings.
    expect(got[2].positive.data).not.toEqual(eRed.data);
    expect(got[2].positive.data).not.toEqual(eDog.data);
  }, 60_000);

  test('a schedule line past the loop length is a validation error naming the line (clips given) or fails before clip 1 is sampled', async () => {
    const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
    const p = scheduled('0: a red car\n9: a dog', 0, 3);
    p['2'].inputs.clips = 3;
    const v = await engine.validate(p);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.nodeErrors['2'].errors[0].message).toContain(
        `line 2 ("9: a dog"): clip 9 is beyond the video's 3 clips`,
      );
    }
    const r = await engine.run(scheduled('0: a red car\n9: a dog', 0, 3), { promptId: 'past' });
    expect(r).toMatchObject({ status: 'error', nodeId: '2' });
    if (r.status === 'error')
      expect(r.message).toContain('line 2 ("9: a dog"): clip 9 is beyond the video\'s 3 clips');
    engine.close();
  });

  test('resume: editing a later scene keeps the clips made; editing a made clip’s scene is refused naming it', async () => {
    const dir = paths.root;
    const base = scheduled('0: a red car\n3: a dog on the beach', 0, 5);
    writeWorkflow(dir, 'scenes.json', base);
    const stopped = await cli(dir, ['run', 'scenes.json', '--out', 'a/out'], 'loop 5: iteration 3/5');
    expect(stopped.code).toBe(130);
    const earlier = structuredClone(base);
    earlier['2'].inputs.schedule = '0: a red car\n1: a dog on the beach';
    writeWorkflow(dir, 'scenes.json', earlier);
    const refused = await cli(dir, ['run', 'scenes.json', '--out', 'a/out', '--resume']);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('clip 2 would differ');
    expect(refused.err).toContain("node 2 (PromptSchedule) input 'schedule'");
    const later = structuredClone(base);
    later['2'].inputs.schedule = '0: a red car\n3: a cat running';
    writeWorkflow(dir, 'scenes.json', later);
    const resumed = await cli(dir, ['run', 'scenes.json', '--out', 'a/out', '--resume']);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.out).not.toContain('progress node 6 clip 2/5');
    expect(resumed.out).toContain('progress node 6 clip 3/5');
  }, 60_000);
});
