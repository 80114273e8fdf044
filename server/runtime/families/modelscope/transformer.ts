// The video pieces of diffusers' UNet3DConditionModel as ONNX subgraphs over frame-batched
// feature maps x [(b f), C, H, W] (frame index fastest): TemporalConvLayer, Transformer2DModel
// (continuous input, linear projections), TransformerTemporalModel and the BasicTransformerBlock
// both use. Keys follow the diffusers modules; numbers follow their forward passes (diffusers 0.29).
import { feedForwardGeglu, groupNorm, layerNorm, linear, sdpa, silu } from '../../convert/layers.ts';
import type { Net } from '../../convert/net.ts';

/**
 * How attention is written: plain MatMul/Softmax/MatMul, or onnxruntime's fused contrib operator
 * com.microsoft.MultiHeadAttention (same numbers; which is faster depends on the runtime).
 */
export type AttentionForm = 'matmul' | 'mha';

/** The graph-wide values the video blocks need: the batch and frame counts as int64 [1] tensors. */
export interface VideoGraph {
  readonly net: Net;
  /** b, the video batch (int64 [1]). */
  readonly batch: string;
  /** f, frames per video (int64 [1]). */
  readonly frames: string;
  readonly attention: AttentionForm;
}

/** Multi-head attention of q [B, Lq, C] over k, v [B, Lk, C] in the chosen form. */
function attend(g: VideoGraph, q: string, k: string, v: string, channels: number, heads: number): string {
  if (g.attention === 'matmul') return sdpa(g.net, q, k, v, channels, heads);
  return g.net.op('MultiHeadAttention', [q, k, v], { num_heads: heads }, 'com.microsoft');
}

/** diffusers' Attention (to_q/to_k/to_v without bias, to_out.0 with) on x [B, L, C], context [B, Lk, contextDim]. */
function attentionModule(
  g: VideoGraph,
  x: string,
  prefix: string,
  channels: number,
  heads: number,
  context?: { value: string; dim: number },
): string {
  const ctx = context?.value ?? x;
  const cdim = context?.dim ?? channels;
  const q = linear(g.net, x, `${prefix}.to_q`, channels, channels, false);
  const k = linear(g.net, ctx, `${prefix}.to_k`, cdim, channels, false);
  const v = linear(g.net, ctx, `${prefix}.to_v`, cdim, channels, false);
  return linear(g.net, attend(g, q, k, v, channels, heads), `${prefix}.to_out.0`, channels, channels);
}

export interface BlockContext {
  /** encoder_hidden_states [b, L, dim], one per video (not repeated per frame). */
  value: string;
  dim: number;
}

/**
 * BasicTransformerBlock (layer_norm, eps 1e-5, GEGLU feed-forward) on x [N, L, C]: attn1 self-attention,
 * then attn2 — cross-attention over `context` when given, otherwise a second self-attention
 * (double_self_attention, as the temporal transformers build it) — then ff, each pre-normed and residual.
 *
 * With a context, the N = b·f rows of x are regrouped as [b, f·L, C] for attn2: every frame of a video
 * attends to the same text, so this equals diffusers' per-frame repetition of encoder_hidden_states
 * (softmax is per query) while projecting each video's keys and values once instead of f times.
 */
function basicTransformerBlock(
  g: VideoGraph,
  x: string,
  prefix: string,
  channels: number,
  heads: number,
  context?: BlockContext,
): string {
  const { net } = g;
  const n1 = layerNorm(net, x, `${prefix}.norm1`, channels, 1e-5);
  let h = net.op('Add', [attentionModule(g, n1, `${prefix}.attn1`, channels, heads), x]);
  const n2 = layerNorm(net, h, `${prefix}.norm2`, channels, 1e-5);
  let a2: string;
  if (context === undefined) a2 = attentionModule(g, n2, `${prefix}.attn2`, channels, heads);
  else {
    const perVideo = net.reshape(n2, [g.batch, -1, channels]);
    const out = attentionModule(g, perVideo, `${prefix}.attn2`, channels, heads, context);
    a2 = net.op('Reshape', [out, net.op('Shape', [n2])]);
  }
  h = net.op('Add', [a2, h]);
  const n3 = layerNorm(net, h, `${prefix}.norm3`, channels, 1e-5);
  return net.op('Add', [feedForwardGeglu(net, n3, `${prefix}.ff`, channels), h]);
}

/** [(b f), C, H, W] → [b, C, f, H, W]. */
function toVideo(g: VideoGraph, x: string, channels: number): string {
  const v = g.net.reshape(x, [-1, g.frames, channels, g.net.shape(x, 2, 4)]);
  return g.net.transpose(v, [0, 2, 1, 3, 4]);
}

/**
 * TemporalConvLayer on x [(b f), C, H, W]: four (GroupNorm over channels·frames·pixels, SiLU,
 * Conv3d kernel (3, 1, 1) padding (1, 0, 0)) stages, plus the input. The (3, 1, 1) convolutions run
 * as 2-D (3, 1) convolutions over [b, C, f, H·W], the same arithmetic.
 */
export function temporalConv(
  g: VideoGraph,
  x: string,
  prefix: string,
  channels: number,
  groups: number,
): string {
  const { net } = g;
  const video = toVideo(g, x, channels);
  const identity = net.reshape(video, [0, 0, 0, -1]); // [b, C, f, H·W]
  let h = identity;
  const stages: [string, string][] = [
    ['conv1.0', 'conv1.2'],
    ['conv2.0', 'conv2.3'],
    ['conv3.0', 'conv3.3'],
    ['conv4.0', 'conv4.3'],
  ];
  for (const [norm, cv] of stages) {
    h = silu(net, groupNorm(net, h, `${prefix}.${norm}`, channels, groups, 1e-5));
    const w = net.param(`${prefix}.${cv}.weight`, [channels, channels, 3, 1, 1], {
      reshape: [channels, channels, 3, 1],
    });
    const b = net.param(`${prefix}.${cv}.bias`, [channels]);
    h = net.op('Conv', [h, w, b], { kernel_shape: [3, 1], pads: [1, 0, 1, 0] });
  }
  const sum = net.transpose(net.op('Add', [identity, h]), [0, 2, 1, 3]); // [b, f, C, H·W]
  return net.reshape(sum, [-1, channels, net.shape(x, 2, 4)]);
}

/** Both transformers' core on tokens [N, L, C]: proj_in to heads·headDim, the one block, proj_out. */
function projectedBlock(
  g: VideoGraph,
  tokens: string,
  prefix: string,
  channels: number,
  heads: number,
  headDim: number,
  context?: BlockContext,
): string {
  const inner = heads * headDim;
  const h = linear(g.net, tokens, `${prefix}.proj_in`, channels, inner);
  const blocked = basicTransformerBlock(g, h, `${prefix}.transformer_blocks.0`, inner, heads, context);
  return linear(g.net, blocked, `${prefix}.proj_out`, inner, channels);
}

/**
 * Transformer2DModel (continuous input, use_linear_projection, one block) on x [(b f), C, H, W]:
 * GroupNorm (eps 1e-6), pixels as tokens, proj_in to heads·headDim, the block with cross-attention
 * to the text, proj_out, plus the input.
 */
export function transformer2d(
  g: VideoGraph,
  x: string,
  prefix: string,
  channels: number,
  groups: number,
  heads: number,
  headDim: number,
  context: BlockContext,
): string {
  const { net } = g;
  const normed = groupNorm(net, x, `${prefix}.norm`, channels, groups, 1e-6);
  const tokens = net.reshape(net.transpose(normed, [0, 2, 3, 1]), [0, -1, channels]); // [(b f), H·W, C]
  const h = projectedBlock(g, tokens, prefix, channels, heads, headDim, context);
  const hw = net.shape(x, 2, 4);
  const back = net.transpose(net.reshape(h, [0, hw, channels]), [0, 3, 1, 2]);
  return net.op('Add', [back, x]);
}

/**
 * TransformerTemporalModel (one block, self-attention twice, no positional embedding) on
 * x [(b f), C, H, W]: GroupNorm (eps 1e-6) over each video's frames together, each pixel's f frames
 * as a token sequence [(b H W), f, C], proj_in to heads·headDim, the block, proj_out, plus the input.
 */
export function transformerTemporal(
  g: VideoGraph,
  x: string,
  prefix: string,
  channels: number,
  groups: number,
  heads: number,
  headDim: number,
): string {
  const { net } = g;
  const video = toVideo(g, x, channels); // [b, C, f, H, W]
  const normed = groupNorm(net, video, `${prefix}.norm`, channels, groups, 1e-6, 5);
  const seq = net.reshape(net.transpose(normed, [0, 3, 4, 2, 1]), [-1, g.frames, channels]); // [(b H W), f, C]
  const h = projectedBlock(g, seq, prefix, channels, heads, headDim);
  const hw = net.shape(x, 2, 4);
  const grid = net.reshape(h, [-1, hw, g.frames, channels]); // [b, H, W, f, C]
  const frames = net.reshape(net.transpose(grid, [0, 3, 4, 1, 2]), [-1, channels, hw]);
  return net.op('Add', [frames, x]);
}
