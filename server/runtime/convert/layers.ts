// The building blocks every converted architecture shares, as ONNX subgraphs over float32 values,
// each reading its weights by the state-dict keys PyTorch modules use (`prefix` + ".weight"...).
// Shapes are dynamic wherever the upstream module's are; fixed sizes come from the config.
import type { Net } from './net.ts';

/** nn.Linear over the last axis: x [..., inF] → [..., outF]. */
export function linear(net: Net, x: string, prefix: string, inF: number, outF: number, bias = true): string {
  const w = net.param(`${prefix}.weight`, [outF, inF], { transpose: true });
  const y = net.op('MatMul', [x, w]);
  return bias ? net.op('Add', [y, net.param(`${prefix}.bias`, [outF])]) : y;
}

export interface ConvOptions {
  stride?: number;
  /** Symmetric padding per spatial axis (default: kernel // 2). */
  pad?: readonly number[];
  bias?: boolean;
}

/** nn.Conv2d / nn.Conv3d: weight [cout, cin, ...kernel] on x [N, cin, ...spatial]. */
export function conv(
  net: Net,
  x: string,
  prefix: string,
  cin: number,
  cout: number,
  kernel: readonly number[],
  opts: ConvOptions = {},
): string {
  const pad = opts.pad ?? kernel.map((k) => Math.floor(k / 2));
  const w = net.param(`${prefix}.weight`, [cout, cin, ...kernel]);
  const inputs = [x, w];
  if (opts.bias ?? true) inputs.push(net.param(`${prefix}.bias`, [cout]));
  return net.op('Conv', inputs, {
    kernel_shape: [...kernel],
    strides: kernel.map(() => opts.stride ?? 1),
    pads: [...pad, ...pad],
  });
}

/**
 * nn.GroupNorm(groups, C, eps) with affine weights on x [N, C, ...]: statistics per (sample, group)
 * over the group's channels and every position, written as InstanceNormalization over [N, G, rest]
 * (the form onnxruntime runs fastest on CPU), then the per-channel affine.
 */
export function groupNorm(
  net: Net,
  x: string,
  prefix: string,
  channels: number,
  groups: number,
  eps: number,
  rank = 4,
): string {
  if (channels % groups !== 0)
    throw new Error(`${prefix}: ${channels} channels do not split into ${groups} groups`);
  const grouped = net.reshape(x, [0, groups, -1]);
  const ones = net.constF(new Float32Array(groups).fill(1));
  const zeros = net.constF(new Float32Array(groups));
  const normed = net.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: eps });
  const back = net.op('Reshape', [normed, net.op('Shape', [x])]);
  const bshape = [channels, ...new Array<number>(rank - 2).fill(1)];
  const gamma = net.param(`${prefix}.weight`, [channels], { reshape: bshape });
  const beta = net.param(`${prefix}.bias`, [channels], { reshape: bshape });
  return net.op('Add', [net.op('Mul', [back, gamma]), beta]);
}

/** nn.LayerNorm(C, eps) over the last axis. */
export function layerNorm(net: Net, x: string, prefix: string, channels: number, eps: number): string {
  const gamma = net.param(`${prefix}.weight`, [channels]);
  const beta = net.param(`${prefix}.bias`, [channels]);
  return net.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: eps });
}

export function silu(net: Net, x: string): string {
  return net.op('Mul', [x, net.op('Sigmoid', [x])]);
}

/**
 * Exact GELU, x·Φ(x) with erf. Written as x / √2 (not x · 1/√2): onnxruntime's GeluFusion only
 * matches the Div form, and then runs one Gelu kernel instead of five elementwise passes.
 */
export function gelu(net: Net, x: string): string {
  const erf = net.op('Erf', [net.op('Div', [x, net.constF([Math.SQRT2], [])])]);
  const half = net.op('Mul', [x, net.constF([0.5], [])]);
  return net.op('Mul', [half, net.op('Add', [erf, net.constF([1], [])])]);
}

/** CLIP's quick_gelu: x·sigmoid(1.702·x). */
function quickGelu(net: Net, x: string): string {
  return net.op('Mul', [x, net.op('Sigmoid', [net.op('Mul', [x, net.constF([1.702], [])])])]);
}

/** The activation a config names (transformers' ACT2FN / diffusers' get_activation). */
export function activation(net: Net, x: string, name: string): string {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu(net, x);
    case 'gelu':
      return gelu(net, x);
    case 'quick_gelu':
      return quickGelu(net, x);
    case 'relu':
      return net.op('Relu', [x]);
    default:
      throw new Error(`activation "${name}" is not supported (silu, gelu, quick_gelu, relu are)`);
  }
}

/**
 * Scaled dot-product attention, `heads` heads over q [B, Lq, C] and k, v [B, Lk, C] → [B, Lq, C]:
 * softmax(q·kᵀ / √d + mask)·v per head, d = C / heads. `mask` is added to the [B, H, Lq, Lk] scores.
 */
export function sdpa(
  net: Net,
  q: string,
  k: string,
  v: string,
  channels: number,
  heads: number,
  mask?: string,
): string {
  const d = channels / heads;
  if (!Number.isInteger(d)) throw new Error(`${channels} channels do not split into ${heads} heads`);
  const split = (t: string, perm: number[]): string => net.transpose(net.reshape(t, [0, 0, heads, d]), perm);
  const qh = split(q, [0, 2, 1, 3]); // [B, H, Lq, d]
  const kt = split(k, [0, 2, 3, 1]); // [B, H, d, Lk]
  const vh = split(v, [0, 2, 1, 3]); // [B, H, Lk, d]
  let scores = net.op('Mul', [net.op('MatMul', [qh, kt]), net.constF([1 / Math.sqrt(d)], [])]);
  if (mask !== undefined) scores = net.op('Add', [scores, mask]);
  const probs = net.op('Softmax', [scores], { axis: -1 });
  const out = net.transpose(net.op('MatMul', [probs, vh]), [0, 2, 1, 3]);
  return net.reshape(out, [0, 0, channels]);
}

export interface AttentionOptions {
  /** Width of `context` (cross-attention); self-attention when absent. */
  contextDim?: number;
  /** Whether to_q/to_k/to_v have biases (diffusers: false in UNets, true in the VAE). */
  qkvBias?: boolean;
  /** Output projection key suffix: diffusers `to_out.0`. */
  outKey?: string;
}

/** diffusers' Attention module (to_q, to_k, to_v, to_out.0) on x [B, L, C], context [B, Lk, contextDim]. */
export function attention(
  net: Net,
  x: string,
  prefix: string,
  channels: number,
  heads: number,
  context?: string,
  opts: AttentionOptions = {},
): string {
  const ctx = context ?? x;
  const cdim = context === undefined ? channels : (opts.contextDim ?? channels);
  const bias = opts.qkvBias ?? false;
  const q = linear(net, x, `${prefix}.to_q`, channels, channels, bias);
  const k = linear(net, ctx, `${prefix}.to_k`, cdim, channels, bias);
  const v = linear(net, ctx, `${prefix}.to_v`, cdim, channels, bias);
  const o = sdpa(net, q, k, v, channels, heads);
  return linear(net, o, `${prefix}.${opts.outKey ?? 'to_out.0'}`, channels, channels);
}

/** diffusers' FeedForward with GEGLU (`net.0.proj` → value·gelu(gate), `net.2`), inner = mult·C. */
export function feedForwardGeglu(net: Net, x: string, prefix: string, channels: number, mult = 4): string {
  const inner = channels * mult;
  const proj = linear(net, x, `${prefix}.net.0.proj`, channels, inner * 2);
  const [value, gate] = [0, 1].map((i) =>
    net.op('Slice', [proj, net.constI([i * inner]), net.constI([(i + 1) * inner]), net.constI([-1])]),
  );
  return linear(net, net.op('Mul', [value, gelu(net, gate)]), `${prefix}.net.2`, inner, channels);
}

export interface ResnetOptions {
  groups: number;
  /** GroupNorm groups of the output norm (diffusers: same as `groups` unless given). */
  groupsOut?: number;
  eps: number;
  /** Width of the time embedding; absent: the block takes none (the VAE's). */
  tembChannels?: number;
  outputScaleFactor?: number;
}

/**
 * diffusers' ResnetBlock2D on x [N, cin, H, W] (temb [N, tembChannels]): norm1, SiLU, conv1,
 * + time_emb_proj(SiLU(temb)), norm2, SiLU, conv2, + shortcut (1×1 `conv_shortcut` when cin ≠ cout).
 */
export function resnet2d(
  net: Net,
  x: string,
  prefix: string,
  cin: number,
  cout: number,
  opts: ResnetOptions,
  temb?: string,
): string {
  let h = silu(net, groupNorm(net, x, `${prefix}.norm1`, cin, opts.groups, opts.eps));
  h = conv(net, h, `${prefix}.conv1`, cin, cout, [3, 3]);
  if (temb !== undefined && opts.tembChannels !== undefined) {
    const t = linear(net, silu(net, temb), `${prefix}.time_emb_proj`, opts.tembChannels, cout);
    h = net.op('Add', [h, net.op('Unsqueeze', [t, net.constI([2, 3])])]);
  }
  h = silu(net, groupNorm(net, h, `${prefix}.norm2`, cout, opts.groupsOut ?? opts.groups, opts.eps));
  h = conv(net, h, `${prefix}.conv2`, cout, cout, [3, 3]);
  const skip = cin === cout ? x : conv(net, x, `${prefix}.conv_shortcut`, cin, cout, [1, 1], { pad: [0, 0] });
  const sum = net.op('Add', [skip, h]);
  const scale = opts.outputScaleFactor ?? 1;
  return scale === 1 ? sum : net.op('Div', [sum, net.constF([scale], [])]);
}

/** diffusers' Upsample2D with a conv: nearest upsampling of H and W to `like`'s H, W (or ×2), then 3×3 conv. */
export function upsample2d(net: Net, x: string, prefix: string, channels: number, like?: string): string {
  const up =
    like === undefined
      ? net.op('Resize', [x, '', net.constF([1, 1, 2, 2])], {
          mode: 'nearest',
          coordinate_transformation_mode: 'asymmetric',
          nearest_mode: 'floor',
        })
      : net.op(
          'Resize',
          [x, '', '', net.op('Concat', [net.shape(x, 0, 2), net.shape(like, 2, 4)], { axis: 0 })],
          { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
        );
  return conv(net, up, `${prefix}.conv`, channels, channels, [3, 3]);
}

/** diffusers' Downsample2D with a conv: 3×3, stride 2, padding `pad` (1 in the UNets). */
export function downsample2d(net: Net, x: string, prefix: string, channels: number, pad = 1): string {
  return conv(net, x, `${prefix}.conv`, channels, channels, [3, 3], { stride: 2, pad: [pad, pad] });
}

/**
 * diffusers' get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift) for t [N]
 * (any numeric type): [N, dim] of cos|sin (flipped) or sin|cos of t·exp(-ln(10000)·k/(half - shift)).
 */
export function timestepEmbedding(
  net: Net,
  t: string,
  dim: number,
  flipSinToCos: boolean,
  shift: number,
): string {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  // float32 steps as torch computes them: exponent = (-ln(10000)·k) / (half - shift), then exp.
  const lnMax = Math.fround(-Math.log(10000));
  for (let k = 0; k < half; k++) {
    freqs[k] = Math.fround(Math.exp(Math.fround(Math.fround(lnMax * k) / (half - shift))));
  }
  const tf = net.op('Cast', [t], { to: 1 });
  const args = net.op('Mul', [net.op('Unsqueeze', [tf, net.constI([1])]), net.constF(freqs, [1, half])]);
  const sin = net.op('Sin', [args]);
  const cos = net.op('Cos', [args]);
  const emb = net.op('Concat', flipSinToCos ? [cos, sin] : [sin, cos], { axis: -1 });
  if (dim % 2 === 0) return emb;
  return net.op('Pad', [emb, net.constI([0, 0, 0, 1])]);
}
