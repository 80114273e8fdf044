// What VidRD's video UNet is built from: the 2-D `unet/config.json` of the Stable Diffusion 2.1-base
// folder (diffusers 0.14 UNet2DConditionModel keys), which VidRD's
// `UNet3DConditionModel.from_pretrained_2d` reads with the block types swapped for their 3-D
// versions, plus VidRD's own switches (`add_temp_conv`, `add_temp_embed`, ...). Absent keys take
// the defaults of VidRD's `UNet3DConditionModel.__init__`; keys it does not know are ignored, as
// diffusers' `from_config` ignores them. Options the released model does not use and this converter
// does not implement are refused by name rather than silently built wrong.
import { z } from 'zod';

const positiveInt = z.number().int().positive();

const schema = z.object({
  in_channels: positiveInt.default(4),
  out_channels: positiveInt.default(4),
  center_input_sample: z.boolean().default(false),
  flip_sin_to_cos: z.boolean().default(true),
  freq_shift: z.number().default(0),
  // from_pretrained_2d overwrites both lists with the four 3-D block types, so their contents
  // never matter; they are only type-checked.
  down_block_types: z.array(z.string()).optional(),
  up_block_types: z.array(z.string()).optional(),
  mid_block_type: z.string().optional(),
  only_cross_attention: z.union([z.boolean(), z.array(z.boolean())]).default(false),
  block_out_channels: z.array(positiveInt).default([320, 640, 1280, 1280]),
  layers_per_block: positiveInt.default(2),
  downsample_padding: z.number().int().nonnegative().default(1),
  mid_block_scale_factor: z.number().positive().default(1),
  act_fn: z.string().default('silu'),
  norm_num_groups: positiveInt.default(32),
  norm_eps: z.number().positive().default(1e-5),
  cross_attention_dim: positiveInt.default(1280),
  // diffusers 0.14 quirk: this is the number of heads per block, not the head width.
  attention_head_dim: z.union([positiveInt, z.array(positiveInt)]).default(8),
  dual_cross_attention: z.boolean().default(false),
  use_linear_projection: z.boolean().default(false),
  class_embed_type: z.string().nullable().default(null),
  num_class_embeds: z.number().int().nullable().default(null),
  upcast_attention: z.boolean().default(false),
  resnet_time_scale_shift: z.string().default('default'),
});

/** The 2-D UNet config as VidRD's video UNet uses it (validated, defaults filled in). */
export interface VidrdUNetConfig {
  inChannels: number;
  outChannels: number;
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  /** Four entries: VidRD's block layout is fixed at 3 cross-attention blocks + 1 plain block. */
  blockOutChannels: number[];
  layersPerBlock: number;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  normNumGroups: number;
  normEps: number;
  crossAttentionDim: number;
  /** Attention heads per down block (config `attention_head_dim`); up blocks use them reversed. */
  headsPerBlock: number[];
  /** proj_in/proj_out of the transformers are Linear (true) or 1×1 Conv2d (false). */
  useLinearProjection: boolean;
  /** Only changes float16 execution upstream; the graph computes attention in float32 either way. */
  upcastAttention: boolean;
}

/** Parses `unet/config.json` (already JSON-decoded); errors name `file` and the field. */
export function parseVidrdUNetConfig(json: unknown, file: string): VidrdUNetConfig {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (i) => `field "${i.path.length > 0 ? i.path.join('.') : '(root)'}": ${i.message}`,
    );
    throw new Error(`${file}: not a UNet config VidRD can use: ${lines.join('; ')}`);
  }
  const c = parsed.data;
  const bad = (field: string, why: string): never => {
    throw new Error(`${file}: field "${field}": ${why}`);
  };

  if (c.block_out_channels.length !== 4) {
    bad(
      'block_out_channels',
      `has ${c.block_out_channels.length} entries; VidRD's from_pretrained_2d fixes the UNet at 4 blocks`,
    );
  }
  if (c.mid_block_type !== undefined && c.mid_block_type !== 'UNetMidBlock3DCrossAttn') {
    bad(
      'mid_block_type',
      `"${c.mid_block_type}" is not supported (VidRD builds only UNetMidBlock3DCrossAttn; leave the key out)`,
    );
  }
  const onlyCross = Array.isArray(c.only_cross_attention) ? c.only_cross_attention : [c.only_cross_attention];
  if (onlyCross.some((v) => v)) bad('only_cross_attention', 'true is not supported (SD 2.1 uses false)');
  if (c.dual_cross_attention)
    bad('dual_cross_attention', 'true is not supported (VidRD raises NotImplementedError)');
  if (c.class_embed_type !== null)
    bad('class_embed_type', `"${c.class_embed_type}" is not supported (only null)`);
  if (c.num_class_embeds !== null)
    bad('num_class_embeds', `${c.num_class_embeds} is not supported (only null)`);
  if (c.resnet_time_scale_shift !== 'default') {
    bad('resnet_time_scale_shift', `"${c.resnet_time_scale_shift}" is not supported (only "default")`);
  }
  if (c.act_fn !== 'silu' && c.act_fn !== 'swish') {
    bad('act_fn', `"${c.act_fn}" is not supported (silu or swish, as SD uses)`);
  }
  if (c.downsample_padding === 0) {
    bad('downsample_padding', "0 is not supported (VidRD's Downsample3D raises NotImplementedError for it)");
  }

  const heads = Array.isArray(c.attention_head_dim)
    ? c.attention_head_dim
    : new Array<number>(4).fill(c.attention_head_dim);
  if (heads.length !== 4)
    bad('attention_head_dim', `has ${heads.length} entries, one per block (4) is needed`);
  c.block_out_channels.forEach((ch, i) => {
    if (ch % heads[i] !== 0) {
      bad('attention_head_dim', `${ch} channels of block ${i} do not split into ${heads[i]} heads`);
    }
    if (ch % c.norm_num_groups !== 0) {
      bad('norm_num_groups', `${ch} channels of block ${i} do not split into ${c.norm_num_groups} groups`);
    }
    // TemporalConvLayer's GroupNorm has 32 groups whatever the config says.
    if (ch % 32 !== 0) {
      bad('block_out_channels', `${ch} channels of block ${i} do not split into the 32 groups of temp_convs`);
    }
  });

  return {
    inChannels: c.in_channels,
    outChannels: c.out_channels,
    centerInputSample: c.center_input_sample,
    flipSinToCos: c.flip_sin_to_cos,
    freqShift: c.freq_shift,
    blockOutChannels: c.block_out_channels,
    layersPerBlock: c.layers_per_block,
    downsamplePadding: c.downsample_padding,
    midBlockScaleFactor: c.mid_block_scale_factor,
    normNumGroups: c.norm_num_groups,
    normEps: c.norm_eps,
    crossAttentionDim: c.cross_attention_dim,
    headsPerBlock: heads,
    useLinearProjection: c.use_linear_projection,
    upcastAttention: c.upcast_attention,
  };
}

/** VidRD's switches of `from_pretrained_2d` (camel-cased); defaults are the released model's. */
export interface VidrdOptions {
  /** TemporalConvLayer after every ResNet (released: true). */
  addTempConv: boolean;
  /** Sinusoidal frame-position embedding before each temporal attention (released: true). */
  addTempEmbed: boolean;
  /** Temporal attention only in the up blocks (released: false, i.e. in every block). */
  addTempAttnOnlyOnUpblocks: boolean;
  /** A TransformerTemporalModel after conv_in (released: false; not supported). */
  addTempTransformer: boolean;
  /** Sparse-causal self-attention over the first and previous frame (released: false; not supported). */
  prependFirstFrame: boolean;
}

/** The switches `configs/example.yaml` and SDVideoModel.setup pass for the released ModelT2V.pth. */
export const VIDRD_RELEASED_OPTIONS: Readonly<VidrdOptions> = Object.freeze({
  addTempConv: true,
  addTempEmbed: true,
  addTempAttnOnlyOnUpblocks: false,
  addTempTransformer: false,
  prependFirstFrame: false,
});

/** The released switches overridden by `opts`; switches this converter does not build are refused. */
export function resolveVidrdOptions(opts: Partial<VidrdOptions> = {}): VidrdOptions {
  const o = { ...VIDRD_RELEASED_OPTIONS, ...opts };
  if (o.addTempTransformer) {
    throw new Error(
      'VidRD option "addTempTransformer": true is not supported (the released model uses false)',
    );
  }
  if (o.prependFirstFrame) {
    throw new Error(
      'VidRD option "prependFirstFrame": true (sparse-causal attention) is not supported (the released model uses false)',
    );
  }
  return o;
}
