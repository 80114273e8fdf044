// `npm run make:random-checkpoint DEST [--size full|mid]`: writes a diffusers TextToVideoSDPipeline
// folder shaped like text-to-video-ms-1.7b (the public configs: 1.4 B-parameter UNet3D, OpenCLIP
// ViT-H text encoder, SD VAE) with seeded random float16 weights, streamed one tensor at a time.
// The key list and shapes come from the converter's own graphs (what a strict load expects), so the
// folder converts cleanly; it is for the conversion benchmark, not for making videos.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { SD21_BASE_SCHEDULER_CONFIG } from '../server/core/ddim.ts';
import { buildClipTextEncoder, parseClipTextConfig } from '../server/runtime/convert/clip-text.ts';
import { Net } from '../server/runtime/convert/net.ts';
import { buildVaeDecoder, parseVaeConfig } from '../server/runtime/convert/vae-decoder.ts';
import { buildTokenizerFiles, mergesText, tokenizerConfig } from '../server/runtime/demo/tokenizer-files.ts';
import { buildUNet3D, parseUNet3DConfig } from '../server/runtime/families/modelscope/unet3d.ts';
import { writeSafetensors } from '../server/runtime/weights/index.ts';
import type { WeightSource } from '../server/runtime/weights/types.ts';

/** text-to-video-ms-1.7b's unet/config.json (the public file's fields). */
const MS17_UNET = {
  _class_name: 'UNet3DConditionModel',
  _diffusers_version: '0.17.0',
  act_fn: 'silu',
  attention_head_dim: 64,
  block_out_channels: [320, 640, 1280, 1280],
  cross_attention_dim: 1024,
  down_block_types: ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
  downsample_padding: 1,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 32,
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
};

/** OpenCLIP ViT-H text tower as transformers' CLIPTextModel (SD 2.x, text-to-video-ms-1.7b). */
const MS17_TEXT = {
  architectures: ['CLIPTextModel'],
  hidden_act: 'gelu',
  hidden_size: 1024,
  intermediate_size: 4096,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 16,
  num_hidden_layers: 23,
  projection_dim: 512,
  vocab_size: 49408,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
};

/** The SD VAE (AutoencoderKL) config. */
const MS17_VAE = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 256,
  scaling_factor: 0.18215,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

/** A half-width UNet for quicker runs (same structure). */
export const MID_UNET = { ...MS17_UNET, block_out_channels: [160, 320, 640, 640], attention_head_dim: 32 };

const EMPTY: WeightSource = {
  tensors: new Map(),
  read: () => Promise.reject(new Error('empty')),
  close: async () => {},
};

/** Deterministic pseudo-random values in ±scale (xorshift; fast enough for gigabytes). */
function randomValues(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** An in-memory WeightSource of seeded random values for exactly the given keys and shapes. */
export function randomSource(keys: Iterable<[string, readonly number[]]>, seed = 1): WeightSource {
  const list = [...keys];
  const tensors = new Map(
    list.map(([key, shape]) => [key, { key, dtype: 'float32' as const, shape, file: 'random' }]),
  );
  const index = new Map(list.map(([key], i) => [key, i]));
  return {
    tensors,
    read: (key) => {
      const shape = tensors.get(key)?.shape ?? [];
      return Promise.resolve(
        randomValues(
          shape.reduce((a, d) => a * d, 1),
          seed * 100003 + (index.get(key) ?? 0),
          0.02,
        ),
      );
    },
    close: async () => {},
  };
}

/** Key → shape a strict load expects: what a graph builder reads, built once over an empty source. */
export function graphKeys(build: (net: Net) => void): [string, readonly number[]][] {
  const net = new Net(EMPTY, { name: 'probe' });
  build(net);
  return [...net.expected()];
}

async function writeComponent(
  file: string,
  keys: [string, readonly number[]][],
  seed: number,
): Promise<void> {
  await writeSafetensors(
    file,
    keys.map(([key, shape], i) => ({
      key,
      dtype: 'float16' as const,
      shape,
      // Norm weights near 1 keep activations in range; everything else small.
      produce: () => {
        const n = shape.reduce((a, d) => a * d, 1);
        const v = randomValues(n, seed * 100003 + i, 0.02);
        if (/norm.*\.weight$/.test(key)) for (let k = 0; k < n; k++) v[k] += 1;
        return v;
      },
    })),
  );
}

export async function makeRandomCheckpoint(dest: string, size: 'full' | 'mid' = 'full'): Promise<void> {
  const unetCfg = size === 'full' ? MS17_UNET : MID_UNET;
  const json = (rel: string, v: unknown) => {
    mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    writeFileSync(path.join(dest, rel), `${JSON.stringify(v, null, 2)}\n`);
  };
  json('model_index.json', {
    _class_name: 'TextToVideoSDPipeline',
    scheduler: ['diffusers', 'DDIMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet3DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  });
  json('unet/config.json', unetCfg);
  json('text_encoder/config.json', MS17_TEXT);
  json('vae/config.json', MS17_VAE);
  json('scheduler/scheduler_config.json', SD21_BASE_SCHEDULER_CONFIG);
  const tok = buildTokenizerFiles();
  json('tokenizer/vocab.json', tok.vocab);
  json('tokenizer/tokenizer_config.json', { ...tokenizerConfig(), pad_token: '!' });
  writeFileSync(path.join(dest, 'tokenizer', 'merges.txt'), mergesText(tok.merges));
  const text = parseClipTextConfig(MS17_TEXT, 'text_encoder/config.json');
  const unet = parseUNet3DConfig(unetCfg, 'unet/config.json');
  const vae = parseVaeConfig(MS17_VAE, 'vae/config.json');
  await writeComponent(
    path.join(dest, 'text_encoder', 'model.safetensors'),
    graphKeys((n) => buildClipTextEncoder(n, text)),
    1,
  );
  await writeComponent(
    path.join(dest, 'unet', 'diffusion_pytorch_model.safetensors'),
    graphKeys((n) => buildUNet3D(n, unet)),
    2,
  );
  await writeComponent(
    path.join(dest, 'vae', 'diffusion_pytorch_model.safetensors'),
    graphKeys((n) => buildVaeDecoder(n, vae)),
    3,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { size: { type: 'string', default: 'full' } },
  });
  if (positionals.length !== 1 || (values.size !== 'full' && values.size !== 'mid')) {
    console.error('usage: npm run make:random-checkpoint DEST [--size full|mid]');
    process.exit(2);
  }
  const t = performance.now();
  await makeRandomCheckpoint(path.resolve(positionals[0]), values.size);
  console.log(`wrote ${positionals[0]} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
