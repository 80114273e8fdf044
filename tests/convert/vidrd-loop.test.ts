// The whole VidRD loop on converted upstream checkpoints: the shipped long-video workflow, run by
// the engine with the README's parameters (3 clips × 8 frames, 64×64, 10 DDIM steps, cfg 7.5,
// M = 4, α = 4, β = 0.4, seeds 42 / 1234), decodes frames that match the upstream PyTorch run
// (expected/vidrd-loop/<model>/frames.npy) within 2/255 on at least 99.9 % of the values.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { applySets } from '../../server/cli.ts';
import { defineNode, input } from '../../server/engine/define.ts';
import { createEngine } from '../../server/engine/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { convertModel } from '../../server/runtime/convert/index.ts';
import { readExpected, modelsDir } from '../helpers/convert.ts';
import { makePaths } from '../nodes/context.ts';
import { idsOf, readWorkflow } from '../pipeline/workflow.ts';

const paths = makePaths('rdflow-vidrd-loop-');
afterAll(() => paths.cleanup());

interface LoopParams {
  prompt: string;
  negative: string;
  seed: number;
  pns_seed: number;
  frames: number;
  width: number;
  height: number;
  steps: number;
  cfg: number;
  M: number;
  alpha: number;
  beta: number;
  clips: number;
  eta: number;
}

/** Collects every clip's decoded frames [F, H, W, 3] (a test-only sink for VAEDecode's IMAGE). */
function captureNode(frames: Tensor[]) {
  return defineNode({
    name: 'TestCaptureImages',
    displayName: 'Capture Images',
    category: 'testing',
    description: 'Keeps the frames it receives.',
    inputs: { required: { images: input.link<Tensor>('IMAGE') } },
    outputs: [],
    outputNode: true,
    run({ images }) {
      // A copy: the engine may hand this buffer to the next clip's decode once we return.
      frames.push({ data: images.data.slice(), shape: [...images.shape] });
      return { outputs: [] };
    },
  });
}

/** The shipped workflow with the upstream run's parameters, writing no video. */
function loopPrompt(modelDir: string, p: LoopParams): ApiPrompt {
  const wf = readWorkflow('vidrd-long-video.json');
  const sets: string[] = [];
  const set = (cls: string, inputName: string, v: string | number) => {
    for (const id of idsOf(wf, cls))
      sets.push(`${id}.${inputName}=${typeof v === 'string' ? JSON.stringify(v) : v}`);
  };
  set('LoadVideoModel', 'model', modelDir);
  const [pos, neg] = idsOf(wf, 'TextEncode');
  sets.push(`${pos}.text=${JSON.stringify(p.prompt)}`, `${neg}.text=${JSON.stringify(p.negative)}`);
  set('NoiseInit', 'seed', p.seed);
  set('NoiseInit', 'frames', p.frames);
  set('NoiseInit', 'width', p.width);
  set('NoiseInit', 'height', p.height);
  set('LoopStart', 'iterations', p.clips);
  set('DDIMSampler', 'steps', p.steps);
  set('DDIMSampler', 'cfg', p.cfg);
  set('DDIMSampler', 'eta', p.eta);
  set('DDIMSampler', 'beta', p.beta);
  set('DDIMSampler', 'reference_frames', p.M);
  set('PNSNoise', 'alpha', p.alpha);
  set('PNSNoise', 'reference_frames', p.M);
  set('PNSNoise', 'seed', p.pns_seed);
  const prompt = applySets(wf, sets);
  for (const id of idsOf(prompt, 'VideoWrite')) delete prompt[id];
  const [decode] = idsOf(prompt, 'VAEDecode');
  prompt['900'] = { class_type: 'TestCaptureImages', inputs: { images: [decode, 0] } };
  return prompt;
}

/** Share of values of got [K·F, H, W, 3] within `tol` of want [K·F, 3, H, W]. */
function shareWithin(got: Float32Array, want: Float32Array, n: number, h: number, w: number, tol: number) {
  let ok = 0;
  let worst = 0;
  for (let f = 0; f < n; f++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const d = Math.abs(got[((f * h + y) * w + x) * 3 + c] - want[((f * 3 + c) * h + y) * w + x]);
          worst = Math.max(worst, d);
          if (d <= tol) ok++;
        }
  return { share: ok / (n * 3 * h * w), worst };
}

describe.each(['modelscope-tiny', 'vidrd-tiny'])('the 3-clip VidRD run on converted %s', (model) => {
  it('decodes the upstream frames within 2/255 on ≥ 99.9 % of values', async () => {
    const expected = path.join('vidrd-loop', model);
    const params = (
      JSON.parse(readFileSync(path.join(modelsDir, 'expected', expected, 'params.json'), 'utf8')) as {
        params: LoopParams;
      }
    ).params;
    const dest = path.join(paths.models, model);
    await convertModel(path.join(modelsDir, model), dest);
    const frames: Tensor[] = [];
    const engine = createEngine({
      nodes: [...allNodes, captureNode(frames)],
      paths,
      services: { models: getRuntime() },
    });
    const result = await engine.run(loopPrompt(dest, params), { promptId: model });
    expect(result.status, JSON.stringify(result)).toBe('success');
    expect(frames).toHaveLength(params.clips);
    const want = readExpected(expected, 'frames.npy');
    const [n, , h, w] = want.shape;
    const got = new Float32Array(n * h * w * 3);
    let at = 0;
    for (const clip of frames) {
      got.set(clip.data, at);
      at += clip.data.length;
    }
    expect(at).toBe(got.length);
    const { share, worst } = shareWithin(got, want.data as Float32Array, n, h, w, 2 / 255);
    console.log(`${model}: ${(share * 100).toFixed(3)} % within 2/255, worst ${worst.toExponential(2)}`);
    expect(share).toBeGreaterThanOrEqual(0.999);
  });
});
