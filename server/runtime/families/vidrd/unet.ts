// VidRD's video UNet (ReuseAndDiffuse model/modules/unet.py, UNet3DConditionModel built by
// from_pretrained_2d from SD 2.1's 2-D config) as one ONNX graph: CrossAttnDownBlock3D ×3 +
// DownBlock3D, UNetMidBlock3DCrossAttn, UpBlock3D + CrossAttnUpBlock3D ×3, each ResNet followed by
// a TemporalConvLayer and each transformer block carrying a temporal attention, as the released
// ModelT2V.pth has them. Weight keys are VidRD's state-dict keys without the checkpoint's `unet.`
// prefix (give the Net `prefix: 'unet.'` for ModelT2V.pth).
import { linear, groupNorm, silu, timestepEmbedding } from '../../convert/layers.ts';
import type { Net } from '../../convert/net.ts';
import {
  clipOf,
  downsample3d,
  inflatedConv,
  resnet3d,
  temporalConvLayer,
  transformer3d,
  upsample3d,
  type Clip,
  type Transformer3dOptions,
} from './blocks.ts';
import { resolveVidrdOptions, type VidrdOptions, type VidrdUNetConfig } from './config.ts';

// The family's loader imports the config reader from here too.
export {
  parseVidrdUNetConfig,
  resolveVidrdOptions,
  VIDRD_RELEASED_OPTIONS,
  type VidrdOptions,
  type VidrdUNetConfig,
} from './config.ts';

/** Blocks with cross-attention: VidRD fixes the layout at 3 of 4 on the way down (all but the last). */
const CROSS_ATTN_DOWN_BLOCKS = 3;

interface Ctx {
  readonly net: Net;
  readonly cfg: VidrdUNetConfig;
  readonly opts: VidrdOptions;
  readonly clip: Clip;
  /** The text embeddings repeated per frame, [B·F, S, D] (VidRD's `repeat(..., "b n c -> (b f) n c")`). */
  readonly context: string;
  /** The time embedding [B, 4·C0]. */
  readonly temb: string;
}

/**
 * Builds VidRD's UNet into `net`. Graph inputs: `sample` float32 [batch, in_channels, frames,
 * height, width], `timestep` float32 [batch], `encoder_hidden_states` float32 [batch, sequence,
 * cross_attention_dim]; output `out_sample` float32 [batch, out_channels, frames, height, width].
 */
export function buildVidrdUNet(net: Net, cfg: VidrdUNetConfig, options: Partial<VidrdOptions> = {}): void {
  const opts = resolveVidrdOptions(options);
  const ch = cfg.blockOutChannels;
  const b = net.b;
  let sample = b.input('sample', 'float32', ['batch', cfg.inChannels, 'frames', 'height', 'width']);
  const timestep = b.input('timestep', 'float32', ['batch']);
  const text = b.input('encoder_hidden_states', 'float32', ['batch', 'sequence', cfg.crossAttentionDim]);

  const clip = clipOf(net, sample);
  const ctx: Ctx = {
    net,
    cfg,
    opts,
    clip,
    context: perFrameContext(net, text, clip, cfg.crossAttentionDim),
    temb: timeEmbedding(net, timestep, cfg),
  };

  if (cfg.centerInputSample) {
    sample = net.op('Sub', [net.op('Mul', [sample, net.constF([2], [])]), net.constF([1], [])]);
  }
  let h = inflatedConv(net, sample, 'conv_in', cfg.inChannels, ch[0], 3);

  const skips: string[] = [h];
  for (let i = 0; i < ch.length; i++) {
    h = downBlock(ctx, h, i, i === 0 ? ch[0] : ch[i - 1], skips);
  }
  h = midBlock(ctx, h);

  const reversed = [...ch].reverse();
  let outputChannels = reversed[0];
  for (let i = 0; i < reversed.length; i++) {
    const prev = outputChannels;
    outputChannels = reversed[i];
    const skipChannels = reversed[Math.min(i + 1, reversed.length - 1)];
    h = upBlock(ctx, h, i, prev, skipChannels, skips);
  }

  h = silu(net, groupNorm(net, h, 'conv_norm_out', ch[0], cfg.normNumGroups, cfg.normEps, 5));
  h = inflatedConv(net, h, 'conv_out', ch[0], cfg.outChannels, 3);
  b.node('Identity', [h], ['out_sample']);
  b.output('out_sample', 'float32', ['batch', cfg.outChannels, 'frames', 'height', 'width']);
}

/** [B, S, D] → [B·F, S, D], frames inner: each frame of a sample sees that sample's text. */
function perFrameContext(net: Net, text: string, clip: Clip, dim: number): string {
  const repeats = net.op('Concat', [net.constI([1]), clip.frames, net.constI([1, 1])], { axis: 0 });
  const tiled = net.op('Expand', [net.op('Unsqueeze', [text, net.constI([1])]), repeats]);
  return net.reshape(tiled, [-1, net.shape(text, 1, 2), dim]);
}

/** diffusers 0.14 Timesteps(C0, flip_sin_to_cos, freq_shift) → TimestepEmbedding (linear_1, SiLU, linear_2). */
function timeEmbedding(net: Net, timestep: string, cfg: VidrdUNetConfig): string {
  const c0 = cfg.blockOutChannels[0];
  const sinusoid = timestepEmbedding(net, timestep, c0, cfg.flipSinToCos, cfg.freqShift);
  const hidden = silu(net, linear(net, sinusoid, 'time_embedding.linear_1', c0, 4 * c0));
  return linear(net, hidden, 'time_embedding.linear_2', 4 * c0, 4 * c0);
}

function resnet(ctx: Ctx, x: string, prefix: string, cin: number, cout: number, scale = 1): string {
  const { cfg } = ctx;
  return resnet3d(ctx.net, x, prefix, cin, cout, ctx.temb, {
    groups: cfg.normNumGroups,
    eps: cfg.normEps,
    tembChannels: 4 * cfg.blockOutChannels[0],
    outputScaleFactor: scale,
  });
}

/** The TemporalConvLayer `${block}.temp_convs.{layer}` after a ResNet, when the model has them. */
function temporalConv(ctx: Ctx, x: string, block: string, layer: number, channels: number): string {
  if (!ctx.opts.addTempConv) return x;
  return temporalConvLayer(ctx.net, x, `${block}.temp_convs.${layer}`, channels, ctx.clip);
}

function transformer(
  ctx: Ctx,
  x: string,
  block: string,
  layer: number,
  channels: number,
  heads: number,
  temporalAttention: boolean,
): string {
  const o: Transformer3dOptions = {
    heads,
    crossAttentionDim: ctx.cfg.crossAttentionDim,
    groups: ctx.cfg.normNumGroups,
    linearProjection: ctx.cfg.useLinearProjection,
    temporal: temporalAttention ? { positionEmbedding: ctx.opts.addTempEmbed } : undefined,
  };
  return transformer3d(ctx.net, x, `${block}.attentions.${layer}`, channels, ctx.context, ctx.clip, o);
}

/** Down block i: (ResNet, temporal conv, transformer)× layers, then a downsampler except in the last block. */
function downBlock(ctx: Ctx, x: string, i: number, cin: number, skips: string[]): string {
  const { cfg } = ctx;
  const cout = cfg.blockOutChannels[i];
  const name = `down_blocks.${i}`;
  let h = x;
  for (let l = 0; l < cfg.layersPerBlock; l++) {
    h = resnet(ctx, h, `${name}.resnets.${l}`, l === 0 ? cin : cout, cout);
    h = temporalConv(ctx, h, name, l, cout);
    if (i < CROSS_ATTN_DOWN_BLOCKS) {
      h = transformer(ctx, h, name, l, cout, cfg.headsPerBlock[i], !ctx.opts.addTempAttnOnlyOnUpblocks);
    }
    skips.push(h);
  }
  if (i < cfg.blockOutChannels.length - 1) {
    h = downsample3d(ctx.net, h, `${name}.downsamplers.0`, cout, cfg.downsamplePadding);
    skips.push(h);
  }
  return h;
}

/** UNetMidBlock3DCrossAttn: ResNet, temporal conv, then (transformer, ResNet, temporal conv). */
function midBlock(ctx: Ctx, x: string): string {
  const { cfg } = ctx;
  const c = cfg.blockOutChannels[cfg.blockOutChannels.length - 1];
  const heads = cfg.headsPerBlock[cfg.headsPerBlock.length - 1];
  const scale = cfg.midBlockScaleFactor;
  let h = resnet(ctx, x, 'mid_block.resnets.0', c, c, scale);
  h = temporalConv(ctx, h, 'mid_block', 0, c);
  h = transformer(ctx, h, 'mid_block', 0, c, heads, !ctx.opts.addTempAttnOnlyOnUpblocks);
  h = resnet(ctx, h, 'mid_block.resnets.1', c, c, scale);
  return temporalConv(ctx, h, 'mid_block', 1, c);
}

/**
 * Up block i: layers_per_block + 1 × (concat the last skip, ResNet, temporal conv, transformer
 * except in block 0), then an upsampler to the next skip's size except in the last block.
 * Temporal attention is in every up block whatever add_temp_attn_only_on_upblocks says.
 */
function upBlock(
  ctx: Ctx,
  x: string,
  i: number,
  prev: number,
  skipChannels: number,
  skips: string[],
): string {
  const { cfg, net } = ctx;
  const n = cfg.blockOutChannels.length;
  const cout = cfg.blockOutChannels[n - 1 - i];
  const heads = cfg.headsPerBlock[n - 1 - i];
  const name = `up_blocks.${i}`;
  const layers = cfg.layersPerBlock + 1;
  let h = x;
  for (let l = 0; l < layers; l++) {
    const skip = skips.pop();
    if (skip === undefined) throw new Error(`${name}: no skip connection left for layer ${l}`);
    const resIn = (l === 0 ? prev : cout) + (l === layers - 1 ? skipChannels : cout);
    h = net.op('Concat', [h, skip], { axis: 1 });
    h = resnet(ctx, h, `${name}.resnets.${l}`, resIn, cout);
    h = temporalConv(ctx, h, name, l, cout);
    if (i > 0) h = transformer(ctx, h, name, l, cout, heads, true);
  }
  if (i < n - 1) h = upsample3d(net, h, `${name}.upsamplers.0`, cout, skips[skips.length - 1]);
  return h;
}
