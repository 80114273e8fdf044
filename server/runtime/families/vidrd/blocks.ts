// The layers of VidRD's inflated 3-D UNet (ReuseAndDiffuse model/modules/{resnet,attention,
// unet_blocks}.py) as ONNX subgraphs on video tensors laid out as VidRD keeps them,
// [batch, channels, frames, height, width]. Spatial layers run per frame; nn.GroupNorm applied to a
// 5-D tensor (ResNet norms, temporal-conv norms, conv_norm_out) takes its statistics over all frames
// of a clip, while the transformer's norm runs on (batch·frames) images, i.e. per frame.
import {
  attention,
  conv,
  feedForwardGeglu,
  groupNorm,
  layerNorm,
  linear,
  silu,
} from '../../convert/layers.ts';
import type { Net } from '../../convert/net.ts';

/** Values of the clip being processed, computed once per graph and shared by every block. */
export interface Clip {
  /** int64 [1]: the batch size. */
  readonly batch: string;
  /** int64 [1]: the number of frames. */
  readonly frames: string;
  /**
   * float32 [1]: 1 when the clip has more than one frame, else 0. VidRD multiplies the temporal
   * layers' contribution by 0 for single images (`identity + 0.0 * hidden_states`).
   */
  readonly temporalGate: string;
  /** Sinusoidal frame-position tables already built, by channel count. */
  readonly positionTables: Map<number, string>;
}

/** The Clip values of `sample` [B, C, F, H, W]. */
export function clipOf(net: Net, sample: string): Clip {
  const frames = net.shape(sample, 2, 3);
  const many = net.op('Greater', [frames, net.constI([1])]);
  return {
    batch: net.shape(sample, 0, 1),
    frames,
    temporalGate: net.op('Cast', [many], { to: 1 }),
    positionTables: new Map(),
  };
}

export interface InflatedConvOptions {
  stride?: number;
  /** Padding of height and width (default kernel // 2). */
  pad?: number;
}

/**
 * VidRD's InflatedConv3d: an nn.Conv2d (weight [cout, cin, k, k]) applied to every frame, written as
 * one Conv over [B, C, F, H, W] with a 1×k×k kernel (the same sums, no frame/batch reshuffling).
 */
export function inflatedConv(
  net: Net,
  x: string,
  prefix: string,
  cin: number,
  cout: number,
  kernel: number,
  opts: InflatedConvOptions = {},
): string {
  const pad = opts.pad ?? Math.floor(kernel / 2);
  const stride = opts.stride ?? 1;
  const w = net.param(`${prefix}.weight`, [cout, cin, kernel, kernel], {
    reshape: [cout, cin, 1, kernel, kernel],
  });
  const b = net.param(`${prefix}.bias`, [cout]);
  return net.op('Conv', [x, w, b], {
    kernel_shape: [1, kernel, kernel],
    strides: [1, stride, stride],
    pads: [0, pad, pad, 0, pad, pad],
  });
}

export interface Resnet3dOptions {
  groups: number;
  eps: number;
  tembChannels: number;
  outputScaleFactor?: number;
}

/**
 * VidRD's ResnetBlock3D (time_embedding_norm "default", pre-norm): norm1 (over all frames), SiLU,
 * conv1, + time_emb_proj(SiLU(temb)), norm2 (over all frames), SiLU, conv2, + shortcut (per-frame
 * 1×1 `conv_shortcut` when cin ≠ cout), divided by the output scale factor.
 */
export function resnet3d(
  net: Net,
  x: string,
  prefix: string,
  cin: number,
  cout: number,
  temb: string,
  opts: Resnet3dOptions,
): string {
  let h = silu(net, groupNorm(net, x, `${prefix}.norm1`, cin, opts.groups, opts.eps, 5));
  h = inflatedConv(net, h, `${prefix}.conv1`, cin, cout, 3);
  const t = linear(net, silu(net, temb), `${prefix}.time_emb_proj`, opts.tembChannels, cout);
  h = net.op('Add', [h, net.op('Unsqueeze', [t, net.constI([2, 3, 4])])]);
  h = silu(net, groupNorm(net, h, `${prefix}.norm2`, cout, opts.groups, opts.eps, 5));
  h = inflatedConv(net, h, `${prefix}.conv2`, cout, cout, 3);
  const skip = cin === cout ? x : inflatedConv(net, x, `${prefix}.conv_shortcut`, cin, cout, 1, { pad: 0 });
  const sum = net.op('Add', [skip, h]);
  const scale = opts.outputScaleFactor ?? 1;
  return scale === 1 ? sum : net.op('Div', [sum, net.constF([scale], [])]);
}

/** GroupNorm groups of TemporalConvLayer: fixed at 32 in VidRD's code, whatever the config says. */
const TEMPORAL_CONV_GROUPS = 32;
/** nn.GroupNorm's default eps, which TemporalConvLayer's norms keep. */
const TORCH_GROUP_NORM_EPS = 1e-5;

/**
 * VidRD's TemporalConvLayer(C, C) with its 4 stages of [GroupNorm(32) over all frames, SiLU, Dropout,
 * Conv3d kernel (3, 1, 1), padding (1, 0, 0)], stored as `convs.{0,3}`, `convs.{4,7}`,
 * `convs.{8,11}`, `convs.{12,15}`; output x + convs(x) (x alone for single-frame clips).
 */
export function temporalConvLayer(net: Net, x: string, prefix: string, channels: number, clip: Clip): string {
  let h = x;
  for (let stage = 0; stage < 4; stage++) {
    const i = stage * 4;
    h = silu(
      net,
      groupNorm(net, h, `${prefix}.convs.${i}`, channels, TEMPORAL_CONV_GROUPS, TORCH_GROUP_NORM_EPS, 5),
    );
    h = conv(net, h, `${prefix}.convs.${i + 3}`, channels, channels, [3, 1, 1]);
  }
  return net.op('Add', [x, net.op('Mul', [h, clip.temporalGate])]);
}

/**
 * VidRD's get_sin_pos_embedding(C, F) as float32 [F, C]: pe[f, 2k] = sin(f·d_k), pe[f, 2k+1] =
 * cos(f·d_k), d_k = exp(2k · -(ln 10000 / C)) computed in float32 as torch does.
 */
function framePositionTable(net: Net, clip: Clip, channels: number): string {
  const cached = clip.positionTables.get(channels);
  if (cached !== undefined) return cached;
  if (channels % 2 !== 0) throw new Error(`frame position embedding needs an even width, got ${channels}`);
  const half = channels / 2;
  const step = Math.fround(-(Math.log(10000) / channels));
  const div = new Float32Array(half);
  for (let k = 0; k < half; k++) div[k] = Math.fround(Math.exp(Math.fround(Math.fround(2 * k) * step)));
  const count = net.op('Squeeze', [clip.frames, net.constI([0])]);
  const positions = net.op('Range', [net.constI([0], []), count, net.constI([1], [])]);
  const angles = net.op('Mul', [
    net.op('Unsqueeze', [net.op('Cast', [positions], { to: 1 }), net.constI([1])]),
    net.constF(div, [1, half]),
  ]);
  const pair = (fn: string): string => net.op('Unsqueeze', [net.op(fn, [angles]), net.constI([2])]);
  // [F, C/2, 2] flattened: sin and cos interleaved along the channels.
  const table = net.reshape(net.op('Concat', [pair('Sin'), pair('Cos')], { axis: 2 }), [-1, channels]);
  clip.positionTables.set(channels, table);
  return table;
}

export interface TemporalAttentionOptions {
  heads: number;
  /** Add the frame-position table first (VidRD's add_temp_embed). */
  positionEmbedding: boolean;
}

/**
 * The temporal part of VidRD's BasicTransformerBlock on tokens [B·F, HW, C]: (+ frame positions,
 * which stay in the residual stream), then for every spatial position self-attention over the
 * frames, `temp_norm` → `temp_attn`, added back. Single-frame clips keep only the positions: VidRD
 * adds them in place (`+=` on a view), so its saved `identity` carries them too.
 */
export function temporalAttention(
  net: Net,
  h: string,
  prefix: string,
  channels: number,
  clip: Clip,
  opts: TemporalAttentionOptions,
): string {
  // [B·F, HW, C] → [B, HW, F, C]
  let t = net.transpose(net.reshape(h, [clip.batch, clip.frames, -1, channels]), [0, 2, 1, 3]);
  if (opts.positionEmbedding) t = net.op('Add', [t, framePositionTable(net, clip, channels)]);
  const seq = net.reshape(t, [-1, clip.frames, channels]); // [B·HW, F, C]
  const normed = layerNorm(net, seq, `${prefix}.temp_norm`, channels, 1e-5);
  const attended = attention(net, normed, `${prefix}.temp_attn`, channels, opts.heads);
  const out = net.op('Add', [seq, net.op('Mul', [attended, clip.temporalGate])]);
  // [B·HW, F, C] → [B, HW, F, C] → [B, F, HW, C] → [B·F, HW, C]
  const back = net.transpose(net.reshape(out, [clip.batch, -1, clip.frames, channels]), [0, 2, 1, 3]);
  return net.op('Reshape', [back, net.op('Shape', [h])]);
}

export interface TransformerBlockOptions {
  heads: number;
  crossAttentionDim: number;
  /** Temporal attention in this block (VidRD's add_temp_attn), with or without frame positions. */
  temporal?: { positionEmbedding: boolean };
}

/**
 * VidRD's BasicTransformerBlock (diffusers 0.14 layout, GEGLU feed-forward, LayerNorm eps 1e-5) on
 * tokens [B·F, HW, C]: self-attention within each frame, cross-attention to the per-frame copy of
 * the text `context` [B·F, S, D], then the temporal attention, then the feed-forward.
 */
function transformerBlock(
  net: Net,
  h: string,
  prefix: string,
  channels: number,
  context: string,
  clip: Clip,
  opts: TransformerBlockOptions,
): string {
  const self = attention(
    net,
    layerNorm(net, h, `${prefix}.norm1`, channels, 1e-5),
    `${prefix}.attn1`,
    channels,
    opts.heads,
  );
  h = net.op('Add', [self, h]);
  const cross = attention(
    net,
    layerNorm(net, h, `${prefix}.norm2`, channels, 1e-5),
    `${prefix}.attn2`,
    channels,
    opts.heads,
    context,
    { contextDim: opts.crossAttentionDim },
  );
  h = net.op('Add', [cross, h]);
  if (opts.temporal !== undefined) {
    h = temporalAttention(net, h, prefix, channels, clip, {
      heads: opts.heads,
      positionEmbedding: opts.temporal.positionEmbedding,
    });
  }
  const ff = feedForwardGeglu(
    net,
    layerNorm(net, h, `${prefix}.norm3`, channels, 1e-5),
    `${prefix}.ff`,
    channels,
  );
  return net.op('Add', [ff, h]);
}

/**
 * Transformer3DModel's proj_in / proj_out on tokens [N, L, C]: nn.Linear when the config says
 * `use_linear_projection`, else a 1×1 nn.Conv2d (weight [C, C, 1, 1]), which on channels-last
 * tokens is the same matrix product.
 */
function projection(net: Net, h: string, prefix: string, channels: number, linearLayer: boolean): string {
  if (linearLayer) return linear(net, h, prefix, channels, channels);
  const w = net.param(`${prefix}.weight`, [channels, channels, 1, 1], { transpose: true });
  return net.op('Add', [net.op('MatMul', [h, w]), net.param(`${prefix}.bias`, [channels])]);
}

export interface Transformer3dOptions extends TransformerBlockOptions {
  groups: number;
  linearProjection: boolean;
}

/**
 * VidRD's Transformer3DModel (one block) on x [B, C, F, H, W]: GroupNorm(eps 1e-6) per frame,
 * proj_in, the block on [B·F, HW, C] tokens, proj_out, + x.
 */
export function transformer3d(
  net: Net,
  x: string,
  prefix: string,
  channels: number,
  context: string,
  clip: Clip,
  opts: Transformer3dOptions,
): string {
  const spatial = net.shape(x, 3, 5); // [H, W]
  const frames = net.reshape(net.transpose(x, [0, 2, 1, 3, 4]), [-1, channels, spatial]); // [B·F, C, H, W]
  const normed = groupNorm(net, frames, `${prefix}.norm`, channels, opts.groups, 1e-6);
  let h = net.reshape(net.transpose(normed, [0, 2, 3, 1]), [0, -1, channels]); // [B·F, HW, C]
  h = projection(net, h, `${prefix}.proj_in`, channels, opts.linearProjection);
  h = transformerBlock(net, h, `${prefix}.transformer_blocks.0`, channels, context, clip, opts);
  h = projection(net, h, `${prefix}.proj_out`, channels, opts.linearProjection);
  const video = net.reshape(h, [clip.batch, -1, spatial, channels]); // [B, F, H, W, C]
  return net.op('Add', [net.transpose(video, [0, 4, 1, 2, 3]), x]);
}

/** VidRD's Downsample3D (conv, stride 2, per frame): `${prefix}.conv`. */
export function downsample3d(net: Net, x: string, prefix: string, channels: number, padding: number): string {
  return inflatedConv(net, x, `${prefix}.conv`, channels, channels, 3, { stride: 2, pad: padding });
}

/**
 * VidRD's Upsample3D: nearest interpolation of height and width (frames kept) to the size of the
 * skip connection `like` [B, C', F, H', W'], then the per-frame 3×3 `${prefix}.conv`. Upstream
 * scales by 2 unless the latent size is not a multiple of 2^upsamplers, when it passes the skip's
 * size; both give the skip's size, so the graph always resizes to it.
 */
export function upsample3d(net: Net, x: string, prefix: string, channels: number, like: string): string {
  const sizes = net.op('Concat', [net.shape(x, 0, 3), net.shape(like, 3, 5)], { axis: 0 });
  const up = net.op('Resize', [x, '', '', sizes], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
  return inflatedConv(net, up, `${prefix}.conv`, channels, channels, 3);
}
