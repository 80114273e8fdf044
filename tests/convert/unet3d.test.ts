// The ModelScope UNet3DConditionModel graph built from modelscope-tiny's unet/config.json and
// safetensors against diffusers 0.29.2's outputs (expected/modelscope-tiny/cases.json).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertStrict, Net, type WeightDType } from '../../server/runtime/convert/net.ts';
import {
  buildUNet3D,
  parseUNet3DConfig,
  type UNet3DBuildOptions,
  type UNet3DConfig,
} from '../../server/runtime/families/modelscope/unet3d.ts';
import { openSafetensors } from '../../server/runtime/weights/safetensors.ts';
import type { TensorInfo, WeightSource } from '../../server/runtime/weights/types.ts';
import {
  caseTensor,
  float32Bar,
  maxAbs,
  maxAbsDiff,
  modelsDir,
  openNet,
  readCases,
  readExpected,
  type ModelCase,
} from '../helpers/convert.ts';

const MODEL = 'modelscope-tiny';
const UNET_DIR = path.join(modelsDir, MODEL, 'unet');
const WEIGHTS = path.join(UNET_DIR, 'diffusion_pytorch_model.safetensors');
const configJson = (): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(UNET_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const unetCases = (): ModelCase[] => readCases(MODEL).filter((c) => c.component === 'unet');

type Session = Awaited<ReturnType<typeof openNet>>;

async function build(
  dtype: WeightDType,
  opts: UNet3DBuildOptions = {},
  source?: WeightSource,
): Promise<{ net: Net; source: WeightSource }> {
  const cfg = parseUNet3DConfig(configJson(), 'unet/config.json');
  const src = source ?? (await openSafetensors(WEIGHTS));
  const net = new Net(src, { name: 'unet', dtype });
  buildUNet3D(net, cfg, opts);
  return { net, source: src };
}

function feeds(c: ModelCase, batch?: number): Record<string, ort.Tensor> {
  const sample = caseTensor(MODEL, c.inputs.sample, 'float32');
  const text = caseTensor(MODEL, c.inputs.encoder_hidden_states, 'float32');
  const b = batch ?? sample.dims[0];
  const take = (t: ort.Tensor) => {
    const per = (t.data as Float32Array).length / t.dims[0];
    return new ort.Tensor('float32', (t.data as Float32Array).slice(0, b * per), [b, ...t.dims.slice(1)]);
  };
  // The cases call diffusers with a 0-d int64 timestep; diffusers expands it over the batch.
  const t = new ort.Tensor('float32', new Float32Array(b).fill(c.inputs.timestep.value ?? NaN), [b]);
  return { sample: take(sample), timestep: t, encoder_hidden_states: take(text) };
}

async function run(session: Session, input: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  return (await session.session.run(input)).out_sample;
}

describe('UNet3DConditionModel (modelscope-tiny)', () => {
  const sessions: Session[] = [];
  let f32: Session;
  let f16: Session;

  beforeAll(async () => {
    const a = await build('float32');
    assertStrict('unet', a.net.report());
    f32 = await openNet(a.net);
    await a.source.close();
    const b = await build('float16');
    f16 = await openNet(b.net);
    await b.source.close();
    sessions.push(f32, f16);
  });

  afterAll(async () => {
    for (const s of sessions) await s.dispose();
  });

  it('accounts for every checkpoint key', async () => {
    const { net, source } = await build('float32');
    const report = net.report();
    await source.close();
    expect(report).toEqual({ missing: [], unexpected: [], mismatched: [] });
  });

  it.each(unetCases().map((c) => [c.name, c] as const))(
    '%s matches diffusers within the float32 bar',
    async (_name, c) => {
      const out = await run(f32, feeds(c));
      const expected = readExpected(MODEL, c.outputs.out_sample.file ?? '').data as Float32Array;
      expect(out.dims).toEqual(c.outputs.out_sample.shape);
      const diff = maxAbsDiff(out.data as Float32Array, expected);
      expect(diff).toBeLessThanOrEqual(float32Bar(expected));
      // A correct float32 graph lands near 1e-6 here (measured 1.3e-6); 1e-4 still leaves room
      // for other kernels while catching a small systematic error the 1e-3 bar would let through.
      expect(diff).toBeLessThan(1e-4);
    },
  );

  it.each(unetCases().map((c) => [c.name, c] as const))(
    '%s with float16 weights stays within float16 rounding of diffusers',
    async (_name, c) => {
      const out = await run(f16, feeds(c));
      const expected = readExpected(MODEL, c.outputs.out_sample.file ?? '').data as Float32Array;
      const diff = maxAbsDiff(out.data as Float32Array, expected);
      // Measured 1.3e-3 to 1.6e-3 (weights rounded to float16, float32 compute). A timestep off by one
      // moves the output by ~3e-2, a swapped guidance batch by ~0.1.
      expect(diff).toBeLessThan(5e-3 * Math.max(1, maxAbs(expected)));
    },
  );

  it('runs batch 1 (the first video of a case, same result)', async () => {
    const c = unetCases()[0];
    const out = await run(f32, feeds(c, 1));
    const expected = readExpected(MODEL, c.outputs.out_sample.file ?? '').data as Float32Array;
    expect(out.dims).toEqual([1, ...c.outputs.out_sample.shape.slice(1)]);
    const first = expected.slice(0, expected.length / c.outputs.out_sample.shape[0]);
    expect(maxAbsDiff(out.data as Float32Array, first)).toBeLessThanOrEqual(float32Bar(first));
  });

  it('takes a [1] timestep for the whole batch', async () => {
    const c = unetCases()[2];
    const input = feeds(c);
    input.timestep = new ort.Tensor('float32', Float32Array.of(c.inputs.timestep.value ?? NaN), [1]);
    const expected = readExpected(MODEL, c.outputs.out_sample.file ?? '').data as Float32Array;
    const out = await run(f32, input);
    expect(maxAbsDiff(out.data as Float32Array, expected)).toBeLessThanOrEqual(float32Bar(expected));
  });

  it('runs a latent size that is not a multiple of 8 (12×20, 3 frames)', async () => {
    const [b, f, h, w] = [1, 3, 12, 20];
    const n = b * 4 * f * h * w;
    const sample = new ort.Tensor(
      'float32',
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)),
      [b, 4, f, h, w],
    );
    const text = caseTensor(MODEL, unetCases()[0].inputs.encoder_hidden_states, 'float32');
    const out = await run(f32, {
      sample,
      timestep: new ort.Tensor('float32', Float32Array.of(500), [1]),
      encoder_hidden_states: new ort.Tensor(
        'float32',
        (text.data as Float32Array).slice(0, (text.data as Float32Array).length / 2),
        [1, ...text.dims.slice(1)],
      ),
    });
    expect(out.dims).toEqual([b, 4, f, h, w]);
    const data = out.data as Float32Array;
    expect(data.every((v) => Number.isFinite(v))).toBe(true);
    expect(maxAbs(data)).toBeGreaterThan(0.1);
  });
});

describe('MatMul/Softmax attention form', () => {
  it('matches diffusers like the default MultiHeadAttention form', async () => {
    const { net, source } = await build('float32', { attention: 'matmul' });
    const s = await openNet(net);
    try {
      for (const c of unetCases()) {
        const out = await run(s, feeds(c));
        const expected = readExpected(MODEL, c.outputs.out_sample.file ?? '').data as Float32Array;
        expect(maxAbsDiff(out.data as Float32Array, expected)).toBeLessThan(1e-4);
      }
    } finally {
      await s.dispose();
      await source.close();
    }
  });
});

describe('parseUNet3DConfig', () => {
  const parse = (patch: Record<string, unknown>): UNet3DConfig =>
    parseUNet3DConfig({ ...configJson(), ...patch }, 'unet/config.json');

  it('reads the tiny config as diffusers does', () => {
    const cfg = parse({});
    expect(cfg.attention_head_dim).toBe(4);
    expect(cfg.block_out_channels).toEqual([16, 16, 16, 32]);
    expect(cfg.norm_num_groups).toBe(8);
    expect(cfg.num_attention_heads).toBeNull();
  });

  it('fills diffusers defaults for absent keys', () => {
    const cfg = parseUNet3DConfig({}, 'unet/config.json');
    expect(cfg.block_out_channels).toEqual([320, 640, 1280, 1280]);
    expect(cfg.attention_head_dim).toBe(64);
    expect(cfg.cross_attention_dim).toBe(1024);
    expect(cfg.norm_num_groups).toBe(32);
  });

  it.each([
    [{ time_cond_proj_dim: 256 }, /unet\/config\.json: time_cond_proj_dim: must be null/],
    [{ act_fn: 'gelu' }, /unet\/config\.json: act_fn: .*"silu"/],
    [{ num_attention_heads: 8 }, /num_attention_heads: must be null/],
    [{ attention_head_dim: [4, 4, 4, 4] }, /attention_head_dim: must be one positive integer/],
    [{ norm_num_groups: null }, /norm_num_groups: must be a positive integer/],
    [{ downsample_padding: 0 }, /downsample_padding: only 1 is supported/],
    [
      { down_block_types: ['CrossAttnDownBlockMotion', 'DownBlock3D', 'DownBlock3D', 'DownBlock3D'] },
      /down_block_types\.0: .*"CrossAttnDownBlock3D".*"DownBlock3D"/,
    ],
    [
      { up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D'] },
      /up_block_types: has 2 entries, block_out_channels has 4/,
    ],
    [{ norm_num_groups: 6 }, /block_out_channels\.0: 16 channels do not split into norm_num_groups = 6/],
    [{ _class_name: 'UNet2DConditionModel' }, /_class_name: must be "UNet3DConditionModel"/],
  ])('refuses %j', (patch, message) => {
    expect(() => parse(patch)).toThrow(message);
  });
});

describe('checkpoint problems', () => {
  /** The tiny checkpoint with one key removed and one key's recorded shape changed. */
  async function damaged(): Promise<WeightSource> {
    const src = await openSafetensors(WEIGHTS);
    const tensors = new Map<string, TensorInfo>(src.tensors);
    tensors.delete('mid_block.temp_attentions.0.proj_in.weight');
    const info = tensors.get('up_blocks.1.temp_convs.2.conv3.3.weight');
    if (info === undefined) throw new Error('fixture key missing');
    tensors.set(info.key, { ...info, shape: [16, 16, 3, 3, 1] });
    return { tensors, read: (k) => src.read(k), close: () => src.close() };
  }

  it('names a missing key and a wrong shape', async () => {
    const { net, source } = await build('float32', {}, await damaged());
    await source.close();
    const report = net.report();
    expect(report.missing).toEqual(['mid_block.temp_attentions.0.proj_in.weight']);
    expect(report.mismatched).toEqual([
      'up_blocks.1.temp_convs.2.conv3.3.weight: checkpoint [16, 16, 3, 3, 1], config implies [16, 16, 3, 1, 1]',
    ]);
    expect(() => assertStrict('unet', report)).toThrow(
      /missing keys \(1\): mid_block\.temp_attentions\.0\.proj_in\.weight; shape mismatches \(1\): up_blocks\.1\.temp_convs\.2\.conv3\.3\.weight/,
    );
  });

  it('reports checkpoint keys the config does not use', async () => {
    const src = await openSafetensors(WEIGHTS);
    // One layer per block fewer than the checkpoint has: the extra layers' keys are unexpected.
    const cfg = parseUNet3DConfig({ ...configJson(), layers_per_block: 1 }, 'unet/config.json');
    const net = new Net(src, { name: 'unet' });
    buildUNet3D(net, cfg);
    await src.close();
    const { unexpected } = net.report();
    expect(unexpected).toContain('down_blocks.0.resnets.1.conv1.weight');
    expect(unexpected).toContain('up_blocks.3.temp_attentions.2.proj_out.bias');
  });
});
