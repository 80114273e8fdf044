// Small model folders in the diffusers ONNX layout, with real ONNX graphs written by the project's
// builder, for tests (and `npm run make:test-models`). Weights are deterministic (seeded), so a
// folder is the same bytes every time. Variants cover the ways real exports differ: input_ids
// int32/int64, timestep float32/int64 and shape []/[1]/[batch], hidden width, a float16 UNet,
// fixed vs dynamic batch, weights in external data files, and a slower UNet for benchmarks.
//
// The nets (C = `channels`, D = `width`):
//   text encoder  input_ids [B,L] → Gather(embedding [V,D]) → x + tanh(x·W + b) → last_hidden_state [B,L,D]
//   UNet          sample [B,4,F,h,w] → Conv3d(1,3,3) 4→C, + timestep embedding (sin(t·freq)·W) → tanh
//                 → `depth` × [x + tanh(Conv3d(1,3,3) x), x + tanh(Conv3d(3,1,1) x) (temporal)]
//                 → x + cross-attention(x over encoder_hidden_states [B,L,D]: softmax(q·kᵀ/√C)·v)
//                 → Conv3d(1,3,3) C→4 → out_sample [B,4,F,h,w]
//   VAE decoder   latent_sample [n,4,h,w] → Conv 3×3 4→8, tanh → Resize ×8 (linear) → Conv 3×3 8→3 → sample [n,3,8h,8w]
// The slow variant (channels 128, depth 6) takes ≥ 10 ms per UNet call on [1,4,8,8,8]; make another
// with `makeTestModel(dir, { ...TEST_VARIANTS.slow, channels, depth })` for other costs.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SD21_BASE_SCHEDULER_CONFIG } from '../../server/core/ddim.ts';
import { float32ToFloat16 } from '../../server/core/half.ts';
import { ModelBuilder, type Dim } from '../../server/runtime/onnx/builder.ts';
import { clipTokenizerJson } from '../../server/runtime/tokenizer.ts';

export interface TestModelVariant {
  /** Element type of text_encoder input_ids. Default int64. */
  idsType?: 'int32' | 'int64';
  /** Element type of the UNet timestep. Default int64. */
  timestepType?: 'float32' | 'int64';
  /** Shape of the UNet timestep: [] ('scalar'), [1] ('one') or [batch] ('batch'). Default 'batch'. */
  timestepShape?: 'scalar' | 'one' | 'batch';
  /** Text hidden width D (real: 768 SD 1.x, 1024 SD 2.x). Default 32. */
  width?: number;
  /** tokenizer model_max_length. Default 77 (CLIP). */
  maxLength?: number;
  /** Pad token in tokenizer_config.json: SD 1.x '<|endoftext|>', SD 2.x '!'. */
  padToken?: string;
  /** Write tokenizer/tokenizer.json (built from the same vocab/merges) instead of vocab.json + merges.txt. */
  tokenizerJson?: boolean;
  /** UNet with float16 inputs, outputs and weights (computing in float32 inside, as CPU kernels need). */
  unetFp16?: boolean;
  /** Symbolic batch axis (true) or batch fixed to 1 in every model. Default true. */
  dynamicBatch?: boolean;
  /** UNet weights in unet/weights.bin beside model.onnx. */
  externalData?: boolean;
  /** UNet channels C and number of spatial+temporal blocks. Defaults 8 and 1. */
  channels?: number;
  depth?: number;
  /** Seed of the weights. */
  seed?: number;
}

export const TEST_VARIANTS = {
  tiny: {},
  'ids-int32': { idsType: 'int32' },
  'timestep-float-scalar': { timestepType: 'float32', timestepShape: 'scalar' },
  'timestep-int-one': { timestepType: 'int64', timestepShape: 'one' },
  /** SD 2.x text side: 1024 wide, pads with "!", tokenizer.json. */
  sd2: { width: 1024, padToken: '!', tokenizerJson: true, timestepType: 'float32', timestepShape: 'one' },
  /** SD 1.x text side: 768 wide, int32 ids. */
  sd1: { width: 768, idsType: 'int32' },
  fp16: { unetFp16: true },
  'fixed-batch': { dynamicBatch: false, timestepShape: 'one' },
  external: { externalData: true },
  slow: { channels: 128, depth: 6 },
} as const satisfies Record<string, TestModelVariant>;

export type TestVariantName = keyof typeof TEST_VARIANTS;

export const TEST_WORDS = ['a', 'cat', 'dog', 'red', 'car', 'on', 'the', 'beach', 'running', 'watermark'];
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';

/** GPT-2/CLIP byte → unicode symbol table (printable bytes map to themselves, the rest above 255). */
export function byteSymbols(): string[] {
  const keep = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : 256 + extra++));
  return out;
}

/** vocab + merges: every byte symbol alone and word-final, merges that make each word one token. */
export function testTokenizerFiles(words: readonly string[] = TEST_WORDS): {
  vocab: Record<string, number>;
  merges: string[];
} {
  const tokens = byteSymbols();
  tokens.push(...tokens.map((s) => `${s}</w>`));
  const merges: string[] = [];
  for (const word of words) {
    // Left to right: ((c·a)·t</w>): each merge joins the built prefix with the next symbol.
    let acc = word[0];
    for (let i = 1; i < word.length; i++) {
      const next = i === word.length - 1 ? `${word[i]}</w>` : word[i];
      const rule = `${acc} ${next}`;
      acc += next;
      if (!merges.includes(rule)) merges.push(rule);
      if (!tokens.includes(acc)) tokens.push(acc);
    }
  }
  tokens.push(BOS, EOS);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  return { vocab, merges };
}

/** Deterministic uniform weights in [-scale, scale] (mulberry32). */
function weights(n: number, scale: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (u * 2 - 1) * scale;
  }
  return out;
}

/** Adds float weights to `b`: float32, or float16 + Cast to float32 when `fp16`. Returns the value name. */
function makeWeights(b: ModelBuilder, fp16: boolean, seed: { n: number }) {
  return (name: string, dims: readonly number[], scale: number): string => {
    const n = dims.reduce((x, y) => x * y, 1);
    const w = weights(n, scale, seed.n++);
    if (!fp16) return b.initializer(name, w, dims);
    b.initializer(`${name}_fp16`, float32ToFloat16(w), dims);
    return b.op('Cast', [`${name}_fp16`], { to: 1 });
  };
}

function textEncoder(v: Required<TestModelVariant>, vocabSize: number): ModelBuilder {
  const b = new ModelBuilder({ name: 'text_encoder' });
  const D = v.width;
  const batch: Dim = v.dynamicBatch ? 'batch' : 1;
  const seq: Dim = v.dynamicBatch ? 'sequence' : v.maxLength;
  b.input('input_ids', v.idsType, [batch, seq]);
  const w = makeWeights(b, false, { n: v.seed * 100 + 1 });
  const emb = b.op('Gather', [w('embedding', [vocabSize, D], 1), 'input_ids'], { axis: 0 });
  const lin = b.op('Add', [
    b.op('MatMul', [emb, w('proj', [D, D], 1 / Math.sqrt(D))]),
    w('proj_bias', [D], 0.1),
  ]);
  b.node('Add', [emb, b.op('Tanh', [lin])], ['last_hidden_state']);
  b.output('last_hidden_state', 'float32', [batch, seq, D]);
  return b;
}

function unet(v: Required<TestModelVariant>): ModelBuilder {
  const b = new ModelBuilder({ name: 'unet' });
  const C = v.channels;
  const D = v.width;
  const ft = v.unetFp16 ? 'float16' : 'float32';
  const batch: Dim = v.dynamicBatch ? 'batch' : 1;
  const sampleDims: Dim[] = [batch, 4, 'frames', 'height', 'width'];
  b.input('sample', ft, sampleDims);
  b.input(
    'timestep',
    v.timestepType,
    v.timestepShape === 'scalar' ? [] : v.timestepShape === 'one' ? [1] : [batch],
  );
  b.input('encoder_hidden_states', ft, [batch, 'sequence', D]);
  const w = makeWeights(b, v.unetFp16, { n: v.seed * 100 + 2 });
  const toF32 = (x: string) => (v.unetFp16 ? b.op('Cast', [x], { to: 1 }) : x);
  const sample = toF32('sample');
  const hidden = toF32('encoder_hidden_states');
  const conv = (x: string, name: string, cin: number, cout: number, k: [number, number, number]) => {
    const pads = [(k[0] - 1) / 2, (k[1] - 1) / 2, (k[2] - 1) / 2];
    const fan = cin * k[0] * k[1] * k[2];
    return b.op(
      'Conv',
      [x, w(`${name}_w`, [cout, cin, ...k], 1 / Math.sqrt(fan)), w(`${name}_b`, [cout], 0.05)],
      {
        kernel_shape: k,
        pads: [...pads, ...pads],
      },
    );
  };
  // Timestep embedding: sin(t · freq_c) for C frequencies, mixed by a C×C matrix, one row per t.
  const t = b.op('Reshape', [
    b.op('Cast', ['timestep'], { to: 1 }),
    b.initializer('t_shape', new BigInt64Array([-1n, 1n])),
  ]);
  const freqs = new Float32Array(C).map((_, i) => Math.exp(-Math.log(1000) * (i / C)));
  const temb = b.op('MatMul', [
    b.op('Sin', [b.op('Mul', [t, b.initializer('t_freq', freqs, [1, C])])]),
    w('t_w', [C, C], 1 / Math.sqrt(C)),
  ]);
  const temb5 = b.op('Reshape', [
    temb,
    b.initializer('temb_shape', new BigInt64Array([-1n, BigInt(C), 1n, 1n, 1n])),
  ]);
  let x = b.op('Tanh', [b.op('Add', [conv(sample, 'conv_in', 4, C, [1, 3, 3]), temb5])]);
  for (let d = 0; d < v.depth; d++) {
    x = b.op('Add', [x, b.op('Tanh', [conv(x, `spatial${d}`, C, C, [1, 3, 3])])]);
    x = b.op('Add', [x, b.op('Tanh', [conv(x, `temporal${d}`, C, C, [3, 1, 1])])]);
  }
  // Cross-attention: every latent position attends over the text tokens.
  const q = b.op(
    'Transpose',
    [b.op('Reshape', [x, b.initializer('flat_shape', new BigInt64Array([0n, BigInt(C), -1n]))])],
    {
      perm: [0, 2, 1],
    },
  );
  const k = b.op('MatMul', [hidden, w('attn_k', [D, C], 1 / Math.sqrt(D))]);
  const val = b.op('MatMul', [hidden, w('attn_v', [D, C], 1 / Math.sqrt(D))]);
  const scores = b.op('Mul', [
    b.op('MatMul', [q, b.op('Transpose', [k], { perm: [0, 2, 1] })]),
    b.initializer('attn_scale', new Float32Array([1 / Math.sqrt(C)]), []),
  ]);
  const attn = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), val]);
  const back = b.op('Reshape', [b.op('Transpose', [attn], { perm: [0, 2, 1] }), b.op('Shape', [x])]);
  x = b.op('Add', [x, back]);
  const out = conv(x, 'conv_out', C, 4, [1, 3, 3]);
  b.node(v.unetFp16 ? 'Cast' : 'Identity', [out], ['out_sample'], v.unetFp16 ? { to: 10 } : {});
  b.output('out_sample', ft, sampleDims);
  return b;
}

function vaeDecoder(v: Required<TestModelVariant>): ModelBuilder {
  const b = new ModelBuilder({ name: 'vae_decoder' });
  const batch: Dim = v.dynamicBatch ? 'batch' : 1;
  b.input('latent_sample', 'float32', [batch, 4, 'height', 'width']);
  const w = makeWeights(b, false, { n: v.seed * 100 + 3 });
  const conv = (x: string, name: string, cin: number, cout: number) =>
    b.op(
      'Conv',
      [x, w(`${name}_w`, [cout, cin, 3, 3], 1 / Math.sqrt(cin * 9)), w(`${name}_b`, [cout], 0.05)],
      {
        kernel_shape: [3, 3],
        pads: [1, 1, 1, 1],
      },
    );
  const h = b.op('Tanh', [conv('latent_sample', 'conv_in', 4, 8)]);
  const up = b.op('Resize', [h, '', b.initializer('scales', new Float32Array([1, 1, 8, 8]))], {
    mode: 'linear',
  });
  b.node('Identity', [conv(up, 'conv_out', 8, 3)], ['sample']);
  b.output('sample', 'float32', [batch, 3, 'height_out', 'width_out']);
  return b;
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Writes a model folder for `variant` (a name of TEST_VARIANTS, or options) into `dir`; returns dir.
 * Takes well under a second for every variant.
 */
export async function makeTestModel(
  dir: string,
  variant: TestVariantName | TestModelVariant = 'tiny',
): Promise<string> {
  const opts: TestModelVariant = typeof variant === 'string' ? TEST_VARIANTS[variant] : variant;
  const v: Required<TestModelVariant> = {
    idsType: 'int64',
    timestepType: 'int64',
    timestepShape: 'batch',
    width: 32,
    maxLength: 77,
    padToken: EOS,
    tokenizerJson: false,
    unetFp16: false,
    dynamicBatch: true,
    externalData: false,
    channels: 8,
    depth: 1,
    seed: 1,
    ...opts,
  };
  if (!v.dynamicBatch && v.timestepShape === 'batch') v.timestepShape = 'one';
  const { vocab, merges } = testTokenizerFiles();
  const put = async (rel: string, data: string | Uint8Array) => {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), data);
  };
  await put(
    'model_index.json',
    json({
      _class_name: 'TextToVideoSDPipeline',
      _diffusers_version: '0.25.0',
      scheduler: ['diffusers', 'DDIMScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet3DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    }),
  );
  await put('scheduler/scheduler_config.json', json(SD21_BASE_SCHEDULER_CONFIG));
  await put('vae_decoder/config.json', json({ scaling_factor: 0.18215, latent_channels: 4 }));
  await put(
    'tokenizer/tokenizer_config.json',
    json({
      model_max_length: v.maxLength,
      bos_token: BOS,
      eos_token: EOS,
      unk_token: EOS,
      pad_token: v.padToken,
    }),
  );
  if (v.tokenizerJson) {
    await put('tokenizer/tokenizer.json', json(clipTokenizerJson(vocab, merges)));
  } else {
    await put('tokenizer/vocab.json', json(vocab));
    await put('tokenizer/merges.txt', `#version: 0.2\n${merges.join('\n')}\n`);
  }
  await put('text_encoder/model.onnx', textEncoder(v, Object.keys(vocab).length).toBytes());
  const u = unet(v);
  if (v.externalData) await u.save(path.join(dir, 'unet/model.onnx'), { externalData: 'weights.bin' });
  else await put('unet/model.onnx', u.toBytes());
  await put('vae_decoder/model.onnx', vaeDecoder(v).toBytes());
  return dir;
}
