// LoadVideoModel, TextEncode and VAEDecode on a small generated model folder.
import { rmSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFilesRecursive } from '../../nodes/files.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { torchRandn } from '../../server/core/torch-rng.ts';
import { loadVideoModelNode } from '../../nodes/load-video-model.ts';
import { textEncodeNode } from '../../nodes/text-encode.ts';
import { vaeDecodeNode } from '../../nodes/vae-decode.ts';
import type { ComboSpec } from '../../server/engine/define.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import type { TextEncoderModel, UNetModel, VaeDecoderModel } from '../../server/runtime/types.ts';
import { makeTestModel } from '../helpers/models.ts';
import { makeContext, makePaths } from './context.ts';

const paths = makePaths();
const env = { paths };
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

beforeAll(async () => {
  await makeTestModel(path.join(paths.models, 'tiny'));
  await makeTestModel(path.join(paths.models, 'broken'));
});
afterAll(() => paths.cleanup());

async function load(model: string) {
  const ctx = makeContext(paths, { services: { models: getRuntime() } }).ctx;
  const res = await loadVideoModelNode.run({ model, provider: 'cpu' }, ctx);
  return res.outputs as [UNetModel, TextEncoderModel, VaeDecoderModel, Record<string, unknown>];
}

describe('LoadVideoModel', () => {
  it('offers the model folders present, and always "demo"', () => {
    const spec = loadVideoModelNode.inputs.required.model as ComboSpec;
    const options = typeof spec.options === 'function' ? spec.options(env) : spec.options;
    expect(options).toContain('demo');
    expect(options).toContain('tiny');
    expect(spec.acceptOther?.(path.join(paths.models, 'tiny'))).toBe(true);
    expect(spec.acceptOther?.('tiny/../../etc')).toBe(false);
  });

  it('validates a complete folder by name and by absolute path', async () => {
    expect(await loadVideoModelNode.validate?.({ model: 'tiny', provider: 'cpu' }, env)).toEqual([]);
    const abs = path.join(paths.models, 'tiny');
    expect(await loadVideoModelNode.validate?.({ model: abs, provider: 'cpu' }, env)).toEqual([]);
  });

  it('fails validation of a broken folder, naming the missing file', async () => {
    const dir = path.join(paths.models, 'broken');
    const onnx = (await listFilesRecursive(dir)).find((f) => f.startsWith('unet/') && f.endsWith('.onnx'));
    expect(onnx).toBeDefined();
    rmSync(path.join(dir, onnx!));
    const issues = await loadVideoModelNode.validate?.({ model: 'broken', provider: 'cpu' }, env);
    expect(issues?.length).toBeGreaterThan(0);
    expect(issues?.[0].input).toBe('model');
    expect(issues?.map((i) => i.message).join('\n')).toContain(path.basename(onnx!));
  });

  it('refuses names that leave the models folder', async () => {
    const issues = await loadVideoModelNode.validate?.({ model: '../tiny', provider: 'cpu' }, env);
    expect(issues).toEqual([{ input: 'model', message: expect.stringContaining('..') }]);
  });

  it('fingerprints the folder by its files: a touched file changes it', async () => {
    const inputs = { model: 'tiny', provider: 'cpu' };
    const before = await loadVideoModelNode.fingerprint?.(inputs, env);
    expect(await loadVideoModelNode.fingerprint?.(inputs, env)).toBe(before);
    const file = (await listFilesRecursive(path.join(paths.models, 'tiny')))[0];
    const later = new Date(Date.now() + 5000);
    utimesSync(path.join(paths.models, 'tiny', file), later, later);
    expect(await loadVideoModelNode.fingerprint?.(inputs, env)).not.toBe(before);
  });

  it('loads through the runtime its host lends, and names itself when the host lends none', async () => {
    const ctx = makeContext(paths, { classType: 'LoadVideoModel' }).ctx;
    await expect(loadVideoModelNode.run({ model: 'tiny', provider: 'cpu' }, ctx)).rejects.toThrow(
      'LoadVideoModel (node 1): no model runtime to load the model with',
    );
  });

  it('loads the UNet, text encoder, VAE and scheduler config', async () => {
    const [unet, te, vae, scheduler] = await load('tiny');
    expect(unet.kind).toBe('unet');
    expect(te.kind).toBe('text_encoder');
    expect(vae.kind).toBe('vae');
    expect(scheduler).toHaveProperty('num_train_timesteps');
  });
});

describe('TextEncode and VAEDecode', () => {
  it('encodes a prompt to [1, L, D], different prompts differently', async () => {
    const [, te] = await load('tiny');
    const encode = async (text: string) =>
      (await textEncodeNode.run({ text_encoder: te, text }, makeContext(paths).ctx)).outputs[0] as Tensor;
    const a = await encode('a red ball');
    const b = await encode('a blue square');
    expect(a.shape.length).toBe(3);
    expect(a.shape[0]).toBe(1);
    expect(Array.from(a.data)).not.toEqual(Array.from(b.data));
  });

  it('decodes [1, 4, F, h, w] to F frames [F, 8h, 8w, 3] in [0, 1] and previews the clip as PNG', async () => {
    const [, , vae] = await load('tiny');
    const latent = torchRandn([1, 4, 3, 4, 4], 5);
    const rc = makeContext(paths);
    const res = await vaeDecodeNode.run({ vae, latent, frames_per_batch: 2 }, rc.ctx);
    const images = res.outputs[0] as Tensor;
    expect(images.shape).toEqual([3, 32, 32, 3]);
    expect(Math.min(...images.data)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...images.data)).toBeLessThanOrEqual(1);
    expect(rc.previews).toHaveLength(1);
    expect(rc.previews[0].format).toBe('png');
    expect(Array.from(rc.previews[0].data.slice(0, 8))).toEqual(PNG_SIGNATURE);
  });
});
