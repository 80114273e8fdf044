// The AutoencoderKL decoder built from vae/config.json reproduces diffusers' vae.decode(z).sample
// on the upstream-made checkpoints, skips the encoder (and VidRD's inactive temporal convolutions)
// on purpose, and refuses configs and checkpoints it cannot honour by field and key.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Net, assertStrict, type WeightDType } from '../../server/runtime/convert/net.ts';
import {
  buildVaeDecoder,
  parseVaeConfig,
  vaeDecoderIgnore,
  type VaeConfig,
} from '../../server/runtime/convert/vae-decoder.ts';
import { openSafetensors } from '../../server/runtime/weights/safetensors.ts';
import { openTorchCheckpoint } from '../../server/runtime/weights/torch.ts';
import type { TensorInfo, WeightSource } from '../../server/runtime/weights/types.ts';
import {
  caseTensor,
  float32Bar,
  maxAbsDiff,
  modelsDir,
  openNet,
  readCase,
  readExpected,
} from '../helpers/convert.ts';

const msVae = path.join(modelsDir, 'modelscope-tiny', 'vae');

function readConfig(dir: string): VaeConfig {
  const file = path.join(dir, 'config.json');
  return parseVaeConfig(JSON.parse(readFileSync(file, 'utf8')) as unknown, file);
}

/** Builds the decoder over `source`, checks the key accounting, runs the model's vae_decode case. */
async function decodeCase(
  model: string,
  source: WeightSource,
  cfg: VaeConfig,
  dtype: WeightDType = 'float32',
): Promise<{ diff: number; bar: number; got: Float32Array; ignored: { keys: number; reason: string }[] }> {
  const net = new Net(source, { name: 'vae_decoder', dtype, ignore: vaeDecoderIgnore(cfg) });
  const { ignored } = buildVaeDecoder(net, cfg);
  assertStrict('vae', net.report());
  const c = readCase(model, 'vae_decode');
  const { session, dispose } = await openNet(net);
  try {
    expect(session.inputNames).toEqual(['latent_sample']);
    expect(session.outputNames).toEqual(['sample']);
    const out = await session.run({ latent_sample: caseTensor(model, c.inputs.latent_sample) });
    const want = readExpected(model, c.outputs.sample.file!);
    expect(out.sample.dims).toEqual(c.outputs.sample.shape);
    const got = out.sample.data as Float32Array;
    return {
      diff: maxAbsDiff(got, want.data as Float32Array),
      bar: float32Bar(want.data as Float32Array),
      got,
      ignored,
    };
  } finally {
    await dispose();
  }
}

describe('AutoencoderKL decoder (modelscope-tiny, diffusers 0.29, safetensors)', () => {
  let source: WeightSource;
  beforeAll(async () => {
    source = await openSafetensors(path.join(msVae, 'diffusion_pytorch_model.safetensors'));
  });
  afterAll(() => source.close());

  it('vae_decode: sample within the float32 bar; the encoder is skipped and counted', async () => {
    const cfg = readConfig(msVae);
    const { diff, bar, ignored } = await decodeCase('modelscope-tiny', source, cfg);
    console.log(
      `modelscope-tiny vae_decode float32 weights: max |diff| ${diff.toExponential(2)} (bar ${bar.toExponential(2)})`,
    );
    expect(diff).toBeLessThanOrEqual(bar);
    const encoderKeys = [...source.tensors.keys()].filter((k) => /^(encoder|quant_conv)\./.test(k));
    expect(encoderKeys.length).toBeGreaterThan(0);
    expect(ignored).toEqual([
      { keys: encoderKeys.length, reason: expect.stringContaining('encoder') as string },
    ]);
  });

  it('vae_decode with float16-stored weights stays near float32 (error reported)', async () => {
    const cfg = readConfig(msVae);
    const { diff, bar } = await decodeCase('modelscope-tiny', source, cfg, 'float16');
    console.log(
      `modelscope-tiny vae_decode float16 weights: max |diff| ${diff.toExponential(2)} (float32 bar ${bar.toExponential(2)})`,
    );
    // float16 rounding of the weights (relative 2^-11) propagated through the decoder: above the
    // float32 bar, within the 1e-2 · max(1, max |expected|) bar the README sets for float16 models.
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThanOrEqual(10 * bar);
  });

  it('without the mid-block attention (mid_block_add_attention false) the graph asks for no attention key', async () => {
    const cfg = parseVaeConfig(
      {
        ...(JSON.parse(readFileSync(path.join(msVae, 'config.json'), 'utf8')) as object),
        mid_block_add_attention: false,
      },
      'vae/config.json',
    );
    const net = new Net(source, { name: 'vae_decoder', ignore: vaeDecoderIgnore(cfg) });
    buildVaeDecoder(net, cfg);
    const r = net.report();
    expect(r.missing).toEqual([]);
    expect(r.unexpected.sort()).toEqual(
      [...source.tensors.keys()].filter((k) => k.startsWith('decoder.mid_block.attentions.0.')).sort(),
    );
  });

  it('names a missing key', async () => {
    const cfg = readConfig(msVae);
    const gone = 'decoder.mid_block.attentions.0.to_k.bias';
    const tensors = new Map<string, TensorInfo>(source.tensors);
    tensors.delete(gone);
    const partial: WeightSource = { tensors, read: (k) => source.read(k), close: async () => {} };
    const net = new Net(partial, { name: 'vae_decoder', ignore: vaeDecoderIgnore(cfg) });
    buildVaeDecoder(net, cfg);
    expect(() => assertStrict('vae', net.report())).toThrow(`missing keys (1): ${gone}`);
  });

  it('reports a checkpoint that does not fit the config (wrong channel widths) by key and shape', () => {
    const cfg = parseVaeConfig(
      {
        ...(JSON.parse(readFileSync(path.join(msVae, 'config.json'), 'utf8')) as object),
        block_out_channels: [16, 16, 16, 16],
      },
      'vae/config.json',
    );
    const net = new Net(source, { name: 'vae_decoder', ignore: vaeDecoderIgnore(cfg) });
    buildVaeDecoder(net, cfg);
    expect(() => assertStrict('vae', net.report())).toThrow(
      /shape mismatches .*decoder\.conv_in\.weight: checkpoint \[32, 4, 3, 3\], config implies \[16, 4, 3, 3\]/,
    );
  });
});

describe("VidRD's TemporalAutoencoderKL (vidrd-tiny/vae_finetuned, diffusers 0.14, PyTorch zip)", () => {
  const dir = path.join(modelsDir, 'vidrd-tiny', 'vae_finetuned');
  let source: WeightSource;
  beforeAll(async () => {
    source = await openTorchCheckpoint(path.join(dir, 'diffusion_pytorch_model.bin'));
  });
  afterAll(() => source.close());

  it("vae_decode: sample (raw, before VidRD's x/2 + 0.5 and clamp) within the float32 bar; encoder and temporal convs skipped and counted", async () => {
    const cfg = readConfig(dir);
    // diffusers 0.14 wrote the mid-block attention as AttentionBlock (query/key/value/proj_attn).
    expect(source.tensors.has('decoder.mid_block.attentions.0.query.weight')).toBe(true);
    const { diff, bar, got, ignored } = await decodeCase('vidrd-tiny', source, cfg);
    console.log(`vidrd-tiny vae_decode: max |diff| ${diff.toExponential(2)} (bar ${bar.toExponential(2)})`);
    expect(diff).toBeLessThanOrEqual(bar);
    // VidRD's `video` [1, 3, F, H, W] is the frames' sample mapped by x/2 + 0.5 and clamped to [0, 1].
    const video = readExpected('vidrd-tiny', readCase('vidrd-tiny', 'vae_decode').outputs.video.file!);
    const [, C, F, H, W] = video.shape;
    const mapped = new Float32Array(video.data.length);
    for (let c = 0; c < C; c++)
      for (let f = 0; f < F; f++)
        for (let p = 0; p < H * W; p++) {
          const v = got[(f * C + c) * H * W + p] / 2 + 0.5;
          mapped[(c * F + f) * H * W + p] = Math.min(1, Math.max(0, v));
        }
    expect(maxAbsDiff(mapped, video.data as Float32Array)).toBeLessThanOrEqual(
      float32Bar(video.data as Float32Array),
    );
    const keys = [...source.tensors.keys()];
    const encoder = keys.filter((k) => /^(encoder|quant_conv)\./.test(k)).length;
    const temporal = keys.filter((k) => /^decoder\.up_blocks\.\d+\.temp_convs\./.test(k)).length;
    // 4 up blocks × 2 resnets × 3 (GroupNorm, Conv3d) pairs × (weight, bias).
    expect(temporal).toBe(4 * 2 * 6 * 2);
    expect(ignored.map((i) => i.keys)).toEqual([encoder, temporal]);
    expect(ignored[1].reason).toContain('1-frame');
  });

  it('with add_temp_conv false, the temporal convolutions are unexpected keys (nothing skipped silently)', () => {
    const json = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as object;
    const cfg = parseVaeConfig({ ...json, add_temp_conv: false }, 'vae_finetuned/config.json');
    const net = new Net(source, { name: 'vae_decoder', ignore: vaeDecoderIgnore(cfg) });
    buildVaeDecoder(net, cfg);
    expect(() => assertStrict('vae', net.report())).toThrow(
      /unexpected keys \(96\): decoder\.up_blocks\.0\.temp_convs\.0\.convs\.0\.weight/,
    );
  });
});

describe('parseVaeConfig', () => {
  const base = JSON.parse(readFileSync(path.join(msVae, 'config.json'), 'utf8')) as Record<string, unknown>;
  const file = 'some/vae/config.json';
  const refuse = (patch: Record<string, unknown>) => () => parseVaeConfig({ ...base, ...patch }, file);

  it('reads diffusers 0.29 and VidRD 0.14 configs with their defaults', () => {
    const ms = parseVaeConfig(base, file);
    expect(ms).toMatchObject({
      block_out_channels: [16, 16, 16, 32],
      layers_per_block: 1,
      norm_num_groups: 16,
      use_post_quant_conv: true,
      mid_block_add_attention: true,
      add_temp_conv: false,
    });
    const vidrd = readConfig(path.join(modelsDir, 'vidrd-tiny', 'vae_finetuned'));
    expect(vidrd).toMatchObject({
      _class_name: 'TemporalAutoencoderKL',
      add_temp_conv: true,
      block_out_channels: [32, 32, 32, 32],
      use_post_quant_conv: true,
      mid_block_add_attention: true,
    });
  });

  it.each([
    [
      {
        up_block_types: ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
      },
      'up_block_types[1]: "AttnUpDecoderBlock2D" is not supported',
    ],
    [{ act_fn: 'gelu' }, 'act_fn: "gelu" is not supported'],
    [{ norm_type: 'spatial' }, 'norm_type: "spatial" is not supported'],
    [{ _class_name: 'AutoencoderTiny' }, '_class_name: "AutoencoderTiny" is not supported'],
    [{ shift_factor: 0.0609 }, 'shift_factor: is not supported'],
    [{ latents_mean: [0, 0, 0, 0] }, 'latents_mean: is not supported'],
    [{ up_block_types: ['UpDecoderBlock2D'] }, 'up_block_types: has 1 entries but block_out_channels has 4'],
    [
      { norm_num_groups: 32 },
      'block_out_channels[0]: 16 channels do not split into norm_num_groups = 32 groups',
    ],
    [{ add_temp_conv: true }, 'add_temp_conv: is only an option of TemporalAutoencoderKL'],
    [{ layers_per_block: 'two' }, 'layers_per_block: '],
  ])('refuses %j naming the file and field', (patch, message) => {
    expect(refuse(patch)).toThrow(`${file}: `);
    expect(refuse(patch)).toThrow(message);
  });

  it('accepts what does not change the decoder (force_upcast, mid_block_add_attention false, extra keys)', () => {
    const cfg = parseVaeConfig(
      { ...base, force_upcast: false, mid_block_add_attention: false, _name_or_path: 'x' },
      file,
    );
    expect(cfg.mid_block_add_attention).toBe(false);
  });
});
