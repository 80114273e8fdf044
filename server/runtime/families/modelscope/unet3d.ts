// diffusers' UNet3DConditionModel (the ModelScope text-to-video UNet: text-to-video-ms-1.7b,
// Zeroscope) as one ONNX graph built from unet/config.json, following diffusers 0.29's
// unet_3d_condition.py / unet_3d_blocks.py. Video latents [b, c, f, h, w] run as a batch of frames
// [(b f), c, h, w] through 2-D ResNets and spatial transformers, with temporal convolutions and
// temporal transformers mixing each video's frames.
import { z } from 'zod';
import {
  conv,
  downsample2d,
  groupNorm,
  linear,
  resnet2d,
  silu,
  timestepEmbedding,
  upsample2d,
  type ResnetOptions,
} from '../../convert/layers.ts';
import type { Net } from '../../convert/net.ts';
import {
  temporalConv,
  transformer2d,
  transformerTemporal,
  type AttentionForm,
  type BlockContext,
  type VideoGraph,
} from './transformer.ts';

const DOWN_BLOCKS = ['CrossAttnDownBlock3D', 'DownBlock3D'] as const;
const UP_BLOCKS = ['CrossAttnUpBlock3D', 'UpBlock3D'] as const;
const posInt = z.number().int().positive();

/**
 * unet/config.json as diffusers 0.29 reads it (UNet3DConditionModel.__init__ arguments and their
 * defaults). Keys diffusers does not take (_class_name, _diffusers_version, ...) are dropped.
 */
export const UNet3DConfigSchema = z
  .object({
    _class_name: z
      .literal('UNet3DConditionModel', {
        error: 'must be "UNet3DConditionModel" (this is a 3-D UNet builder)',
      })
      .optional(),
    // Only the pipeline's default resolution: the graph takes any size.
    sample_size: z
      .union([posInt, z.array(posInt)])
      .nullable()
      .default(null),
    in_channels: posInt.default(4),
    out_channels: posInt.default(4),
    down_block_types: z
      .array(z.enum(DOWN_BLOCKS))
      .min(1)
      .default(['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D']),
    up_block_types: z
      .array(z.enum(UP_BLOCKS))
      .min(1)
      .default(['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D']),
    block_out_channels: z.array(posInt).min(1).default([320, 640, 1280, 1280]),
    layers_per_block: posInt.default(2),
    downsample_padding: z
      .literal(1, {
        error: 'only 1 is supported (0 means an asymmetric pad that no published 3-D UNet uses)',
      })
      .default(1),
    mid_block_scale_factor: z.number().positive().default(1),
    act_fn: z.enum(['silu', 'swish']).default('silu'),
    norm_num_groups: z
      .number({
        error: 'must be a positive integer (diffusers needs it for transformer_in, null fails there)',
      })
      .int()
      .positive()
      .default(32),
    norm_eps: z.number().positive().default(1e-5),
    cross_attention_dim: posInt.default(1024),
    // diffusers' naming quirk: with num_attention_heads null this value is passed on as the blocks'
    // "num_attention_heads", which they use as the per-head width (heads = channels / it), and
    // transformer_in takes 8 heads of this width. A per-block list fails in transformer_in upstream.
    attention_head_dim: z
      .number({ error: "must be one positive integer (a per-block list fails in diffusers' transformer_in)" })
      .int()
      .positive()
      .default(64),
    num_attention_heads: z
      .null({
        error: "must be null: diffusers' UNet3DConditionModel refuses it (attention_head_dim sets the heads)",
      })
      .default(null),
    time_cond_proj_dim: z
      .null({ error: 'must be null: a timestep condition projection (cond_proj) is not supported' })
      .default(null),
  })
  .superRefine((c, ctx) => {
    const n = c.block_out_channels.length;
    if (c.down_block_types.length !== n) {
      ctx.addIssue({
        code: 'custom',
        path: ['down_block_types'],
        message: `has ${c.down_block_types.length} entries, block_out_channels has ${n}`,
      });
    }
    if (c.up_block_types.length !== n) {
      ctx.addIssue({
        code: 'custom',
        path: ['up_block_types'],
        message: `has ${c.up_block_types.length} entries, block_out_channels has ${n}`,
      });
    }
    c.block_out_channels.forEach((ch, i) => {
      if (ch % c.norm_num_groups !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['block_out_channels', i],
          message: `${ch} channels do not split into norm_num_groups = ${c.norm_num_groups} groups`,
        });
      }
      if (ch < c.attention_head_dim) {
        ctx.addIssue({
          code: 'custom',
          path: ['block_out_channels', i],
          message: `${ch} channels give no attention head of width attention_head_dim = ${c.attention_head_dim}`,
        });
      }
    });
  });

export type UNet3DConfig = z.output<typeof UNet3DConfigSchema>;

/** Parses unet/config.json; errors name `file` and every bad field. */
export function parseUNet3DConfig(json: unknown, file: string): UNet3DConfig {
  const r = UNet3DConfigSchema.safeParse(json ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map(
    (i) => `${i.path.length > 0 ? i.path.join('.') : '(config)'}: ${i.message}`,
  );
  throw new Error(`${file}: ${problems.join('; ')}`);
}

export interface UNet3DBuildOptions {
  /**
   * Attention form. Default 'mha': on onnxruntime CPU both forms take the same time (within 5 %,
   * bench/unet3d-forms.mts), the fused operator needs half the Transposes, and onnxruntime's GPU
   * providers have fused attention kernels for it (not measured here). 'matmul' is plain ONNX, for
   * runtimes without onnxruntime's contrib operators.
   */
  attention?: AttentionForm;
}

/**
 * Adds diffusers' UNet3DConditionModel forward to `net`: inputs `sample` [batch, in_channels, frames,
 * height, width], `timestep` [batch] (or [1], broadcast), `encoder_hidden_states` [batch, sequence,
 * cross_attention_dim], all float32; output `out_sample` [batch, out_channels, frames, height, width].
 * Every weight is bound by its state-dict key (check `net.report()` / `assertStrict` afterwards).
 */
export function buildUNet3D(net: Net, cfg: UNet3DConfig, opts: UNet3DBuildOptions = {}): void {
  const ch = cfg.block_out_channels;
  const n = ch.length;
  const c0 = ch[0];
  const groups = cfg.norm_num_groups;
  const headDim = cfg.attention_head_dim;
  const tembDim = c0 * 4;

  const sample = net.b.input('sample', 'float32', ['batch', cfg.in_channels, 'frames', 'height', 'width']);
  const timestep = net.b.input('timestep', 'float32', ['batch']);
  const text = net.b.input('encoder_hidden_states', 'float32', [
    'batch',
    'sequence',
    cfg.cross_attention_dim,
  ]);

  const g: VideoGraph = {
    net,
    batch: net.shape(sample, 0, 1),
    frames: net.shape(sample, 2, 3),
    attention: opts.attention ?? 'mha',
  };
  const context: BlockContext = { value: text, dim: cfg.cross_attention_dim };

  // time_proj (flip_sin_to_cos, shift 0) → time_embedding, then one row per frame (repeat_interleave).
  const t = net.op('Expand', [timestep, g.batch]);
  let emb = linear(net, timestepEmbedding(net, t, c0, true, 0), 'time_embedding.linear_1', c0, tembDim);
  emb = linear(net, silu(net, emb), 'time_embedding.linear_2', tembDim, tembDim);
  const perFrame = net.op('Concat', [net.constI([1]), g.frames, net.constI([1])], { axis: 0 });
  const temb = net.reshape(net.op('Expand', [net.op('Unsqueeze', [emb, net.constI([1])]), perFrame]), [
    -1,
    tembDim,
  ]);

  const res = (eps: number, scale = 1): ResnetOptions => ({
    groups,
    eps,
    tembChannels: tembDim,
    outputScaleFactor: scale,
  });
  const spatialHeads = (channels: number) => Math.floor(channels / headDim);

  // [b, c, f, h, w] → [(b f), c, h, w]
  const frames = net.reshape(net.transpose(sample, [0, 2, 1, 3, 4]), [
    -1,
    cfg.in_channels,
    net.shape(sample, 3, 5),
  ]);
  let h = conv(net, frames, 'conv_in', cfg.in_channels, c0, [3, 3]);
  h = transformerTemporal(g, h, 'transformer_in', c0, groups, 8, headDim);

  const skips: { value: string; channels: number }[] = [{ value: h, channels: c0 }];
  let cur = c0;
  cfg.down_block_types.forEach((type, i) => {
    const p = `down_blocks.${i}`;
    const out = ch[i];
    for (let j = 0; j < cfg.layers_per_block; j++) {
      h = resnet2d(net, h, `${p}.resnets.${j}`, j === 0 ? cur : out, out, res(cfg.norm_eps), temb);
      h = temporalConv(g, h, `${p}.temp_convs.${j}`, out, groups);
      if (type === 'CrossAttnDownBlock3D') {
        const heads = spatialHeads(out);
        h = transformer2d(g, h, `${p}.attentions.${j}`, out, groups, heads, headDim, context);
        h = transformerTemporal(g, h, `${p}.temp_attentions.${j}`, out, groups, heads, headDim);
      }
      skips.push({ value: h, channels: out });
    }
    if (i < n - 1) {
      h = downsample2d(net, h, `${p}.downsamplers.0`, out, cfg.downsample_padding);
      skips.push({ value: h, channels: out });
    }
    cur = out;
  });

  // UNetMidBlock3DCrossAttn: resnet, temp_conv, then (attention, temporal attention, resnet, temp_conv).
  const mid = ch[n - 1];
  const midHeads = spatialHeads(mid);
  const midRes = res(cfg.norm_eps, cfg.mid_block_scale_factor);
  h = resnet2d(net, h, 'mid_block.resnets.0', mid, mid, midRes, temb);
  h = temporalConv(g, h, 'mid_block.temp_convs.0', mid, groups);
  h = transformer2d(g, h, 'mid_block.attentions.0', mid, groups, midHeads, headDim, context);
  h = transformerTemporal(g, h, 'mid_block.temp_attentions.0', mid, groups, midHeads, headDim);
  h = resnet2d(net, h, 'mid_block.resnets.1', mid, mid, midRes, temb);
  h = temporalConv(g, h, 'mid_block.temp_convs.1', mid, groups);

  const rev = [...ch].reverse();
  cur = rev[0];
  cfg.up_block_types.forEach((type, i) => {
    const p = `up_blocks.${i}`;
    const out = rev[i];
    const layers = cfg.layers_per_block + 1;
    for (let j = 0; j < layers; j++) {
      const skip = skips.pop();
      if (skip === undefined)
        throw new Error(`${p}: no skip connection left (layers_per_block inconsistency)`);
      const cin = (j === 0 ? cur : out) + skip.channels;
      h = net.op('Concat', [h, skip.value], { axis: 1 });
      h = resnet2d(net, h, `${p}.resnets.${j}`, cin, out, res(cfg.norm_eps), temb);
      h = temporalConv(g, h, `${p}.temp_convs.${j}`, out, groups);
      if (type === 'CrossAttnUpBlock3D') {
        const heads = spatialHeads(out);
        h = transformer2d(g, h, `${p}.attentions.${j}`, out, groups, heads, headDim, context);
        h = transformerTemporal(g, h, `${p}.temp_attentions.${j}`, out, groups, heads, headDim);
      }
    }
    if (i < n - 1) {
      // To the next skip's size: 2× for even sizes, and what diffusers' forward_upsample_size gives
      // for sizes the downsampling rounded up.
      const like = skips[skips.length - 1].value;
      h = upsample2d(net, h, `${p}.upsamplers.0`, out, like);
    }
    cur = out;
  });

  h = silu(net, groupNorm(net, h, 'conv_norm_out', c0, groups, cfg.norm_eps));
  h = conv(net, h, 'conv_out', c0, cfg.out_channels, [3, 3]);
  // [(b f), c, h, w] → [b, c, f, h, w]
  const video = net.reshape(h, [-1, g.frames, cfg.out_channels, net.shape(h, 2, 4)]);
  net.b.node('Transpose', [video], ['out_sample'], { perm: [0, 2, 1, 3, 4] });
  net.b.output('out_sample', 'float32', ['batch', cfg.out_channels, 'frames', 'height', 'width']);
}
