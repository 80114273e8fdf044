// diffusers' AutoencoderKL decoder (the `vae.decode(z).sample` path: post_quant_conv, then the
// Decoder) as an ONNX graph built from vae/config.json, for diffusers 0.29 checkpoints and for the
// diffusers 0.14 ones VidRD's TemporalAutoencoderKL (vae/vae.py) writes. Only decoding is built:
// the encoder's keys, and VidRD's decoder temporal convolutions (which never act in its pipeline),
// are skipped on purpose and counted, so the converter can say what it left out and why.
import { z } from 'zod';
import { conv, groupNorm, linear, resnet2d, sdpa, silu, upsample2d } from './layers.ts';
import type { Net } from './net.ts';

/** diffusers builds every VAE norm (resnets, mid-block attention, conv_norm_out) with eps 1e-6. */
const VAE_EPS = 1e-6;

const positiveInt = z.number().int().positive();

/**
 * AutoencoderKL's config.json (diffusers 0.14 to 0.29), defaults as diffusers' constructor has
 * them. Keys not listed (`_name_or_path`, ...) are allowed, as diffusers ignores them too; options
 * the graph cannot honour are refused by name.
 */
export const VaeConfigSchema = z
  .looseObject({
    _class_name: z
      .enum(['AutoencoderKL', 'TemporalAutoencoderKL'], {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not supported (AutoencoderKL, or VidRD's TemporalAutoencoderKL, is)`,
      })
      .default('AutoencoderKL'),
    _diffusers_version: z.string().optional(),
    in_channels: positiveInt.default(3),
    out_channels: positiveInt.default(3),
    down_block_types: z.array(z.string()).default(['DownEncoderBlock2D']),
    up_block_types: z
      .array(
        z.literal('UpDecoderBlock2D', {
          error: (iss) =>
            `${JSON.stringify(iss.input)} is not supported (the decoder is built from UpDecoderBlock2D only)`,
        }),
      )
      .min(1)
      .default(['UpDecoderBlock2D']),
    block_out_channels: z.array(positiveInt).min(1).default([64]),
    layers_per_block: z.number().int().min(0).default(1),
    act_fn: z
      .enum(['silu', 'swish'], {
        error: (iss) => `${JSON.stringify(iss.input)} is not supported (only silu/swish is)`,
      })
      .default('silu'),
    latent_channels: positiveInt.default(4),
    norm_num_groups: positiveInt.default(32),
    sample_size: z.union([positiveInt, z.array(positiveInt)]).optional(),
    scaling_factor: z.number().positive().default(0.18215),
    // The runtime decodes z / scaling_factor; a shift or per-channel statistics would be ignored
    // there and give wrong colours silently, so such VAEs are refused here.
    shift_factor: z
      .null({ error: 'is not supported (the runtime decodes z / scaling_factor, without a shift)' })
      .optional(),
    latents_mean: z
      .null({ error: 'is not supported (the runtime decodes z / scaling_factor only)' })
      .optional(),
    latents_std: z
      .null({ error: 'is not supported (the runtime decodes z / scaling_factor only)' })
      .optional(),
    // Irrelevant: the graph computes in float32 whatever the weights' storage type.
    force_upcast: z.boolean().optional(),
    use_quant_conv: z.boolean().default(true),
    use_post_quant_conv: z.boolean().default(true),
    mid_block_add_attention: z.boolean().default(true),
    norm_type: z
      .literal('group', {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not supported (only "group": SpatialNorm needs the MoVQ decoder)`,
      })
      .optional(),
    // VidRD's TemporalAutoencoderKL: TemporalConvLayer after each decoder up-block resnet.
    add_temp_conv: z.boolean().default(false),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.up_block_types.length !== cfg.block_out_channels.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['up_block_types'],
        message: `has ${cfg.up_block_types.length} entries but block_out_channels has ${cfg.block_out_channels.length}`,
      });
    }
    cfg.block_out_channels.forEach((c, i) => {
      if (c % cfg.norm_num_groups !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['block_out_channels', i],
          message: `${c} channels do not split into norm_num_groups = ${cfg.norm_num_groups} groups`,
        });
      }
    });
    if (cfg.add_temp_conv && cfg._class_name !== 'TemporalAutoencoderKL') {
      ctx.addIssue({
        code: 'custom',
        path: ['add_temp_conv'],
        message: `is only an option of TemporalAutoencoderKL (this config is ${cfg._class_name})`,
      });
    }
  });

export type VaeConfig = z.output<typeof VaeConfigSchema>;

/** Parses a VAE config.json object; throws one error naming `file` and each bad field. */
export function parseVaeConfig(json: unknown, file: string): VaeConfig {
  const r = VaeConfigSchema.safeParse(json);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const where =
      i.path.length > 0
        ? i.path
            .map((p, k) => (typeof p === 'number' ? `[${p}]` : k > 0 ? `.${String(p)}` : String(p)))
            .join('')
        : '(config)';
    return `${where}: ${i.message}`;
  });
  throw new Error(`${file}: ${problems.join('; ')}`);
}

const ENCODER_KEY = /^(encoder\.|quant_conv\.)/;
const TEMPORAL_KEY = /^decoder\.up_blocks\.\d+\.temp_convs\./;

/**
 * The state-dict keys a decoder-only build skips on purpose (pass as the Net's `ignore`): the
 * encoder and quant_conv, and with VidRD's add_temp_conv the decoder's temporal convolutions.
 */
export function vaeDecoderIgnore(cfg: VaeConfig): (key: string) => boolean {
  return (key) => ENCODER_KEY.test(key) || (cfg.add_temp_conv && TEMPORAL_KEY.test(key));
}

/**
 * The mid-block self-attention over the H·W positions, one head of the full width (diffusers'
 * Decoder passes attention_head_dim = channels): group_norm, q/k/v with biases, output projection,
 * + residual. diffusers 0.14 (VidRD) stores it as AttentionBlock (query, key, value, proj_attn),
 * later versions as Attention (to_q, to_k, to_v, to_out.0); the checkpoint says which.
 */
function midAttention(net: Net, x: string, prefix: string, channels: number, groups: number): string {
  const legacy = net.has(`${prefix}.query.weight`);
  const [qk, kk, vk, ok] = legacy
    ? ['query', 'key', 'value', 'proj_attn']
    : ['to_q', 'to_k', 'to_v', 'to_out.0'];
  const normed = groupNorm(net, x, `${prefix}.group_norm`, channels, groups, VAE_EPS);
  const seq = net.transpose(net.reshape(normed, [0, channels, -1]), [0, 2, 1]); // [N, H·W, C]
  const q = linear(net, seq, `${prefix}.${qk}`, channels, channels);
  const k = linear(net, seq, `${prefix}.${kk}`, channels, channels);
  const v = linear(net, seq, `${prefix}.${vk}`, channels, channels);
  const attn = linear(net, sdpa(net, q, k, v, channels, 1), `${prefix}.${ok}`, channels, channels);
  const back = net.op('Reshape', [net.transpose(attn, [0, 2, 1]), net.op('Shape', [x])]);
  return net.op('Add', [back, x]);
}

export interface VaeDecoderBuild {
  /** Keys of the checkpoint deliberately left out, by reason (for the converter's summary). */
  ignored: { keys: number; reason: string }[];
}

/**
 * Builds `vae.decode(latent_sample).sample` into `net`: input `latent_sample` float32
 * [batch, latent_channels, height_latent, width_latent], output `sample` float32
 * [batch, out_channels, height, width] (raw decoder output, about [-1, 1]). The Net should be made
 * with `ignore: vaeDecoderIgnore(cfg)` so the skipped keys are not reported as unexpected.
 */
export function buildVaeDecoder(net: Net, cfg: VaeConfig): VaeDecoderBuild {
  const blocks = cfg.block_out_channels;
  const top = blocks[blocks.length - 1];
  const groups = cfg.norm_num_groups;
  const latent = cfg.latent_channels;
  const res = { groups, eps: VAE_EPS };
  net.b.input('latent_sample', 'float32', ['batch', latent, 'height_latent', 'width_latent']);

  let x = 'latent_sample';
  if (cfg.use_post_quant_conv) x = conv(net, x, 'post_quant_conv', latent, latent, [1, 1]);
  x = conv(net, x, 'decoder.conv_in', latent, top, [3, 3]);

  x = resnet2d(net, x, 'decoder.mid_block.resnets.0', top, top, res);
  if (cfg.mid_block_add_attention) x = midAttention(net, x, 'decoder.mid_block.attentions.0', top, groups);
  x = resnet2d(net, x, 'decoder.mid_block.resnets.1', top, top, res);

  // Up blocks run the channels in reverse; each has layers_per_block + 1 resnets and, except the
  // last, a 2× nearest upsampler with a conv.
  const reversed = [...blocks].reverse();
  let channels = reversed[0];
  reversed.forEach((out, i) => {
    for (let j = 0; j <= cfg.layers_per_block; j++) {
      x = resnet2d(net, x, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? channels : out, out, res);
    }
    channels = out;
    if (i < reversed.length - 1) x = upsample2d(net, x, `decoder.up_blocks.${i}.upsamplers.0`, out);
  });

  x = silu(net, groupNorm(net, x, 'decoder.conv_norm_out', blocks[0], groups, VAE_EPS));
  x = conv(net, x, 'decoder.conv_out', blocks[0], cfg.out_channels, [3, 3]);
  net.b.node('Identity', [x], ['sample']);
  net.b.output('sample', 'float32', ['batch', cfg.out_channels, 'height', 'width']);

  const keys = net.keys();
  const encoder = keys.filter((k) => ENCODER_KEY.test(k)).length;
  const temporal = cfg.add_temp_conv ? keys.filter((k) => TEMPORAL_KEY.test(k)).length : 0;
  const ignored: VaeDecoderBuild['ignored'] = [];
  if (encoder > 0) {
    ignored.push({
      keys: encoder,
      reason: 'encoder (encoder.*, quant_conv.*): text-to-video only decodes',
    });
  }
  if (temporal > 0) {
    ignored.push({
      keys: temporal,
      reason:
        "decoder temporal convolutions (decoder.up_blocks.*.temp_convs.*): VidRD's pipeline decodes each frame as a 1-frame clip, where they return their input unchanged",
    });
  }
  return { ignored };
}
