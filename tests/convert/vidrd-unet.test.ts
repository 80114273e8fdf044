// VidRD's inflated 3-D UNet (ReuseAndDiffuse UNet3DConditionModel.from_pretrained_2d with the
// released switches) built from vidrd-tiny's SD 2.1 unet/config.json and ModelT2V.pth's `unet.*`
// weights: strict key accounting, the three upstream unet cases, float16 storage, the single-frame
// rule of the temporal layers, and named errors for what the converter refuses.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertStrict, Net, type WeightDType } from '../../server/runtime/convert/net.ts';
import {
  parseVidrdUNetConfig,
  resolveVidrdOptions,
  type VidrdUNetConfig,
} from '../../server/runtime/families/vidrd/config.ts';
import { buildVidrdUNet } from '../../server/runtime/families/vidrd/unet.ts';
import {
  openTorchCheckpoint,
  type TensorInfo,
  type WeightSource,
} from '../../server/runtime/weights/index.ts';
import {
  caseTensor,
  float32Bar,
  maxAbs,
  maxAbsDiff,
  modelsDir,
  openNet,
  readCase,
  readExpected,
} from '../helpers/convert.ts';

const MODEL = 'vidrd-tiny';
const DIR = path.join(modelsDir, MODEL);
const CONFIG_FILE = 'stable-diffusion-2-1-base/unet/config.json';
const CASES = ['unet_f8_s8_t981', 'unet_f4_s16_t1', 'unet_f8_s16_t501'];

function rawConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(DIR, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
}

/** A source that shows `base`'s tensors with some hidden, reshaped or replaced. */
function edited(
  base: WeightSource,
  edit: {
    hide?: (key: string) => boolean;
    shape?: (key: string, shape: readonly number[]) => readonly number[];
    read?: (key: string) => Promise<Float32Array> | undefined;
  },
): WeightSource {
  const tensors = new Map<string, TensorInfo>();
  for (const [k, info] of base.tensors) {
    if (edit.hide?.(k)) continue;
    tensors.set(k, { ...info, shape: edit.shape?.(k, info.shape) ?? info.shape });
  }
  return {
    tensors,
    read: (key) => edit.read?.(key) ?? base.read(key),
    close: () => Promise.resolve(),
  };
}

/** Seeded uniform noise in [-0.5, 0.5) · scale, different for every key and seed. */
function noise(key: string, n: number, seed: number, scale = 0.2): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < key.length; i++) s = Math.imul(s ^ key.charCodeAt(i), 16777619) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return out;
}

function build(source: WeightSource, cfg: VidrdUNetConfig, dtype: WeightDType = 'float32'): Net {
  const net = new Net(source, { name: 'vidrd_unet', prefix: 'unet.', dtype });
  buildVidrdUNet(net, cfg);
  assertStrict('vidrd-tiny unet', net.report());
  return net;
}

/** Runs one upstream case; the case's int64 scalar timestep is fed as float32 [batch]. */
async function runCase(
  session: ort.InferenceSession,
  name: string,
): Promise<{ diff: number; bar: number; max: number }> {
  const c = readCase(MODEL, name);
  const batch = c.inputs.sample.shape[0];
  const out = await session.run({
    sample: caseTensor(MODEL, c.inputs.sample),
    timestep: new ort.Tensor('float32', new Float32Array(batch).fill(c.inputs.timestep.value ?? NaN), [
      batch,
    ]),
    encoder_hidden_states: caseTensor(MODEL, c.inputs.encoder_hidden_states),
  });
  const got = out.out_sample;
  expect(got.dims).toEqual(c.outputs.out_sample.shape);
  const want = readExpected(MODEL, c.outputs.out_sample.file!).data as Float32Array;
  return { diff: maxAbsDiff(got.data as Float32Array, want), bar: float32Bar(want), max: maxAbs(want) };
}

let checkpoint: WeightSource;
let cfg: VidrdUNetConfig;
beforeAll(async () => {
  checkpoint = await openTorchCheckpoint(path.join(DIR, 'ModelT2V.pth'));
  cfg = parseVidrdUNetConfig(rawConfig(), CONFIG_FILE);
});
afterAll(async () => {
  await checkpoint.close();
});

describe('VidRD UNet config', () => {
  it("reads SD 2.1-base's 2-D config: attention_head_dim as heads per block, linear projections", () => {
    expect(cfg).toMatchObject({
      inChannels: 4,
      outChannels: 4,
      blockOutChannels: [32, 32, 32, 32],
      layersPerBlock: 1,
      headsPerBlock: [2, 4, 4, 4],
      normNumGroups: 32,
      normEps: 1e-5,
      crossAttentionDim: 32,
      useLinearProjection: true,
      flipSinToCos: true,
      freqShift: 0,
    });
  });

  it('reads the real SD 2.1-base sizes (5/10/20/20 heads of 64 channels) and builds that graph', () => {
    const sd21 = parseVidrdUNetConfig(
      {
        ...rawConfig(),
        attention_head_dim: [5, 10, 20, 20],
        block_out_channels: [320, 640, 1280, 1280],
        cross_attention_dim: 1024,
        layers_per_block: 2,
        sample_size: 64,
      },
      'sd-2-1-base/unet/config.json',
    );
    expect(sd21.headsPerBlock).toEqual([5, 10, 20, 20]);
    // Built against no weights: every key is reported missing, none twice, nothing else goes wrong.
    const empty: WeightSource = {
      tensors: new Map(),
      read: () => Promise.reject(new Error('no')),
      close: () => Promise.resolve(),
    };
    const net = new Net(empty, { name: 'sd21', prefix: 'unet.' });
    buildVidrdUNet(net, sd21);
    const { missing } = net.report();
    expect(new Set(missing).size).toBe(missing.length);
    // 22 ResNets → 22 TemporalConvLayers of 16 tensors; 16 transformers with 7 temporal tensors each.
    expect(missing.filter((k) => k.includes('.temp_convs.')).length).toBe(22 * 16);
    expect(missing.filter((k) => /\.temp_(norm|attn)\./.test(k)).length).toBe(16 * 7);
  });

  it('names the file and the field of an unsupported option or a wrong type', () => {
    expect(() => parseVidrdUNetConfig({ ...rawConfig(), class_embed_type: 'timestep' }, CONFIG_FILE)).toThrow(
      `${CONFIG_FILE}: field "class_embed_type": "timestep" is not supported`,
    );
    expect(() =>
      parseVidrdUNetConfig({ ...rawConfig(), mid_block_type: 'UNetMidBlock2DCrossAttn' }, CONFIG_FILE),
    ).toThrow(/field "mid_block_type"/);
    expect(() =>
      parseVidrdUNetConfig({ ...rawConfig(), resnet_time_scale_shift: 'scale_shift' }, CONFIG_FILE),
    ).toThrow(/field "resnet_time_scale_shift"/);
    expect(() =>
      parseVidrdUNetConfig({ ...rawConfig(), attention_head_dim: [2, 4, 4] }, CONFIG_FILE),
    ).toThrow(/field "attention_head_dim": has 3 entries/);
    expect(() => parseVidrdUNetConfig({ ...rawConfig(), block_out_channels: 'wide' }, CONFIG_FILE)).toThrow(
      new RegExp(`^${CONFIG_FILE}: .*field "block_out_channels"`),
    );
  });

  it('takes the released switches by default and refuses the ones it does not build', () => {
    expect(resolveVidrdOptions()).toEqual({
      addTempConv: true,
      addTempEmbed: true,
      addTempAttnOnlyOnUpblocks: false,
      addTempTransformer: false,
      prependFirstFrame: false,
    });
    expect(() => resolveVidrdOptions({ prependFirstFrame: true })).toThrow(
      /"prependFirstFrame": true .*not supported/,
    );
    expect(() => resolveVidrdOptions({ addTempTransformer: true })).toThrow(
      /"addTempTransformer": true .*not supported/,
    );
  });
});

describe('VidRD UNet keys', () => {
  it("uses every one of ModelT2V.pth's 732 unet.* tensors with the shapes the config implies", () => {
    const net = new Net(checkpoint, { name: 'vidrd_unet', prefix: 'unet.' });
    buildVidrdUNet(net, cfg);
    expect(net.report()).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect([...checkpoint.tensors.keys()].filter((k) => k.startsWith('unet.')).length).toBe(732);
  });

  it('reports a missing key by name', () => {
    const key = 'unet.mid_block.temp_convs.1.convs.7.weight';
    const net = new Net(edited(checkpoint, { hide: (k) => k === key }), {
      name: 'vidrd_unet',
      prefix: 'unet.',
    });
    buildVidrdUNet(net, cfg);
    expect(() => assertStrict('vidrd-tiny unet', net.report())).toThrow(
      'vidrd-tiny unet: the checkpoint does not fit the config: missing keys (1): mid_block.temp_convs.1.convs.7.weight',
    );
  });

  it('leaves the temporal layers out when the switches say so, and the checkpoint then has them too many', () => {
    const net = new Net(checkpoint, { name: 'vidrd_unet', prefix: 'unet.' });
    buildVidrdUNet(net, cfg, { addTempConv: false, addTempAttnOnlyOnUpblocks: true });
    const { missing, unexpected } = net.report();
    expect(missing).toEqual([]);
    // 14 TemporalConvLayers × (4 norms + 4 convs) × (weight, bias); temporal attention (7 tensors) of 3 down + 1 mid transformer.
    expect(unexpected.filter((k) => k.includes('.temp_convs.')).length).toBe(14 * 16);
    expect(unexpected.filter((k) => k.includes('.temp_')).length).toBe(14 * 16 + 4 * 7);
    expect(unexpected.every((k) => !k.startsWith('up_blocks.') || k.includes('.temp_convs.'))).toBe(true);
  });
});

describe('VidRD UNet on the upstream cases', () => {
  it('float32: the three unet cases within the float32 bar', async () => {
    const { session, dispose } = await openNet(build(checkpoint, cfg));
    try {
      expect(session.inputNames).toEqual(['sample', 'timestep', 'encoder_hidden_states']);
      expect(session.outputNames).toEqual(['out_sample']);
      for (const name of CASES) {
        const r = await runCase(session, name);
        console.log(
          `vidrd-tiny ${name} float32: max |diff| ${r.diff.toExponential(2)} (bar ${r.bar.toExponential(2)})`,
        );
        expect(r.diff).toBeLessThanOrEqual(r.bar);
      }
      // Latents that are not a multiple of 8: each upsampler resizes to its skip connection's size.
      const hidden = readExpected(MODEL, 'unet_encoder_hidden_states.npy');
      const odd = await session.run({
        sample: new ort.Tensor('float32', noise('odd', 4 * 3 * 12 * 10, 3, 2), [1, 4, 3, 12, 10]),
        timestep: new ort.Tensor('float32', Float32Array.from([250]), [1]),
        encoder_hidden_states: new ort.Tensor(
          'float32',
          (hidden.data as Float32Array).slice(0, 77 * 32),
          [1, 77, 32],
        ),
      });
      expect(odd.out_sample.dims).toEqual([1, 4, 3, 12, 10]);
    } finally {
      await dispose();
    }
  });

  it('float16 weights: within 1e-2 · max(1, max |expected|) of the float32 reference', async () => {
    const { session, dispose } = await openNet(build(checkpoint, cfg, 'float16'));
    try {
      for (const name of CASES) {
        const r = await runCase(session, name);
        console.log(`vidrd-tiny ${name} float16 weights: max |diff| ${r.diff.toExponential(2)}`);
        // Rounding the weights alone moves the output by ~2e-3; a wrong layer moves it by far more.
        expect(r.diff).toBeLessThanOrEqual(1e-2 * Math.max(1, r.max));
        expect(r.diff).toBeGreaterThan(0);
      }
    } finally {
      await dispose();
    }
  });

  it('use_linear_projection false: proj_in/proj_out as 1×1 convolutions give the same outputs', async () => {
    const isProj = (k: string): boolean => /\.proj_(in|out)\.weight$/.test(k);
    const convSource = edited(checkpoint, { shape: (k, s) => (isProj(k) ? [...s, 1, 1] : s) });
    const convCfg = parseVidrdUNetConfig({ ...rawConfig(), use_linear_projection: false }, CONFIG_FILE);
    const { session, dispose } = await openNet(build(convSource, convCfg));
    try {
      const r = await runCase(session, 'unet_f4_s16_t1');
      expect(r.diff).toBeLessThanOrEqual(r.bar);
    } finally {
      await dispose();
    }
  });
});

describe('VidRD UNet temporal layers', () => {
  it('act on clips of several frames and are ignored (× 0) on a single frame, as VidRD does', async () => {
    // Two weight sets differing only in the temporal convolutions and temporal attentions.
    const withSeed = (seed: number): WeightSource =>
      edited(checkpoint, {
        read: (k) =>
          /\.temp_(convs|attn)\./.test(k) ? Promise.resolve(noise(k, sizeOf(k), seed)) : undefined,
      });
    const sizeOf = (k: string): number => checkpoint.tensors.get(k)!.shape.reduce((a, d) => a * d, 1);
    const a = await openNet(build(withSeed(1), cfg));
    const b = await openNet(build(withSeed(2), cfg));
    try {
      const hidden = readExpected(MODEL, 'unet_encoder_hidden_states.npy');
      const run = async (s: ort.InferenceSession, frames: number): Promise<Float32Array> => {
        const shape = [2, 4, frames, 8, 8];
        const out = await s.run({
          sample: new ort.Tensor('float32', noise('sample', 2 * 4 * frames * 64, 7, 2), shape),
          timestep: new ort.Tensor('float32', Float32Array.from([500, 500]), [2]),
          encoder_hidden_states: new ort.Tensor('float32', hidden.data as Float32Array, hidden.shape),
        });
        return out.out_sample.data as Float32Array;
      };
      expect(maxAbsDiff(await run(a.session, 1), await run(b.session, 1))).toBe(0);
      expect(maxAbsDiff(await run(a.session, 2), await run(b.session, 2))).toBeGreaterThan(1e-3);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});
