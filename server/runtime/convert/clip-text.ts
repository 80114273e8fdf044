// transformers' CLIPTextModel (CLIPTextTransformer: token + position embeddings, pre-LN encoder
// layers under a causal mask, final_layer_norm, the pooled <|endoftext|> state) as an ONNX graph
// built from text_encoder/config.json, reading weights by the state-dict keys transformers writes
// (`text_model.embeddings.token_embedding.weight`, ...). Called as the diffusion pipelines call
// it: input_ids only, no attention_mask.
import { z } from 'zod';
import { tensorValue } from '../onnx/builder.ts';
import { activation, layerNorm, linear, sdpa } from './layers.ts';
import type { Net } from './net.ts';

const positiveInt = z.number().int().positive();

/** The activations the graph builds (transformers' ACT2FN names). */
const ACTIVATIONS = ['gelu', 'quick_gelu', 'relu', 'silu', 'swish'] as const;

/**
 * CLIPTextConfig as config.json writes it (transformers 4.30 to 4.57), with the constructor's
 * defaults. Keys not listed are allowed, as transformers keeps them as plain attributes.
 */
export const ClipTextConfigSchema = z
  .looseObject({
    model_type: z
      .literal('clip_text_model', {
        error: (iss) => `${JSON.stringify(iss.input)} is not supported (only "clip_text_model" is)`,
      })
      .optional(),
    architectures: z
      .array(z.string())
      .refine((a) => a.includes('CLIPTextModel'), {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not supported (the graph is a CLIPTextModel; a projection head would be left out)`,
      })
      .optional(),
    vocab_size: positiveInt.default(49408),
    hidden_size: positiveInt.default(512),
    intermediate_size: positiveInt.default(2048),
    projection_dim: positiveInt.default(512),
    num_hidden_layers: positiveInt.default(12),
    num_attention_heads: positiveInt.default(8),
    max_position_embeddings: positiveInt.default(77),
    hidden_act: z
      .enum(ACTIVATIONS, {
        error: (iss) => `${JSON.stringify(iss.input)} is not supported (${ACTIVATIONS.join(', ')} are)`,
      })
      .default('quick_gelu'),
    layer_norm_eps: z.number().positive().default(1e-5),
    // Training-only or informational: dropout is off at inference, init ranges are unused.
    attention_dropout: z.number().min(0).max(1).default(0),
    initializer_range: z.number().optional(),
    initializer_factor: z.number().optional(),
    pad_token_id: z.number().int().nullable().default(1),
    bos_token_id: z.number().int().nullable().default(49406),
    eos_token_id: z.number().int().default(49407),
    dtype: z.string().nullable().optional(),
    torch_dtype: z.string().nullable().optional(),
    transformers_version: z.string().optional(),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['num_attention_heads'],
        message: `${cfg.num_attention_heads} heads do not split hidden_size = ${cfg.hidden_size}`,
      });
    }
    if (cfg.eos_token_id < 0 || cfg.eos_token_id >= cfg.vocab_size) {
      ctx.addIssue({
        code: 'custom',
        path: ['eos_token_id'],
        message: `${cfg.eos_token_id} is not a token id of the vocabulary (vocab_size = ${cfg.vocab_size})`,
      });
    }
  });

export type ClipTextConfig = z.output<typeof ClipTextConfigSchema>;

/** Parses a text encoder config.json object; throws one error naming `file` and each bad field. */
export function parseClipTextConfig(json: unknown, file: string): ClipTextConfig {
  const r = ClipTextConfigSchema.safeParse(json);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const where = i.path.length > 0 ? i.path.map(String).join('.') : '(config)';
    return `${where}: ${i.message}`;
  });
  throw new Error(`${file}: ${problems.join('; ')}`);
}

/**
 * Keys of a CLIPTextModel checkpoint that are buffers, not weights: `position_ids` (0..P-1),
 * which transformers up to 4.30 saved (VidRD's ModelT2V.pth and .bin files carry it).
 */
export function clipIgnore(key: string): boolean {
  return key === 'text_model.embeddings.position_ids';
}

/** torch.finfo(float32).min: the value transformers' causal mask adds above the diagonal. */
const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * Adds CLIPTextModel to `net`: input `input_ids` int64 [batch, sequence] (sequence ≤
 * max_position_embeddings), outputs `last_hidden_state` [batch, sequence, hidden] and
 * `pooler_output` [batch, hidden], both float32.
 */
export function buildClipTextEncoder(net: Net, cfg: ClipTextConfig): void {
  const d = cfg.hidden_size;
  const eps = cfg.layer_norm_eps;
  const ids = net.b.input('input_ids', 'int64', ['batch', 'sequence']);
  const len = net.shape(ids, 1, 2); // [1]: L

  // Embeddings: token rows, plus position rows 0..L-1 (transformers' position_ids[:, :L]).
  const tokenTable = net.param('text_model.embeddings.token_embedding.weight', [cfg.vocab_size, d]);
  const posTable = net.param('text_model.embeddings.position_embedding.weight', [
    cfg.max_position_embeddings,
    d,
  ]);
  const positions = net.op('Slice', [posTable, net.constI([0]), len, net.constI([0])]);
  let h = net.op('Add', [net.op('Gather', [tokenTable, ids], { axis: 0 }), positions]);

  const mask = causalMask(net, len); // shared by every layer
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    const attn = selfAttention(
      net,
      layerNorm(net, h, `${p}.layer_norm1`, d, eps),
      `${p}.self_attn`,
      cfg,
      mask,
    );
    h = net.op('Add', [h, attn]);
    let m = linear(
      net,
      layerNorm(net, h, `${p}.layer_norm2`, d, eps),
      `${p}.mlp.fc1`,
      d,
      cfg.intermediate_size,
    );
    m = linear(net, activation(net, m, cfg.hidden_act), `${p}.mlp.fc2`, cfg.intermediate_size, d);
    h = net.op('Add', [h, m]);
  }
  const last = layerNorm(net, h, 'text_model.final_layer_norm', d, eps);
  net.b.node('Identity', [last], ['last_hidden_state']);
  net.b.output('last_hidden_state', 'float32', ['batch', 'sequence', d]);

  // Pooling as transformers 4.31+ does it: configs still carrying the pre-#24773 eos_token_id 2
  // (SD 2.x among them) take the position of the largest id (CLIP's <|endoftext|> is the last of
  // the vocabulary); others the first position holding eos_token_id (position 0 if none does).
  // ArgMax returns the first maximum; int32 as transformers casts before its argmax.
  const key =
    cfg.eos_token_id === 2
      ? net.op('Cast', [ids], { to: 6 })
      : net.op('Cast', [net.op('Equal', [ids, net.constI([cfg.eos_token_id], [])])], { to: 6 });
  const at = net.op('ArgMax', [key], { axis: 1, keepdims: 1 }); // [B, 1]
  net.b.node('GatherND', [last, at], ['pooler_output'], { batch_dims: 1 });
  net.b.output('pooler_output', 'float32', ['batch', d]);
}

/**
 * [L, L] float32: 0 on and below the diagonal, float32 min above it (a token sees itself and the
 * tokens before it), built for the run's L: ConstantOfShape then Trilu keeps `sequence` dynamic
 * without a max_position_embeddings² constant.
 */
function causalMask(net: Net, len: string): string {
  const square = net.op('Concat', [len, len], { axis: 0 });
  const filled = net.op('ConstantOfShape', [square], {
    value: tensorValue(Float32Array.of(FLOAT32_MIN), [1]),
  });
  return net.op('Trilu', [filled, net.constI([1], [])], { upper: 1 });
}

/**
 * CLIPAttention: q/k/v/out_proj Linear layers with biases, softmax(q·kᵀ·d^-½ + causal)·v per head.
 * Plain MatMul/Softmax nodes rather than onnxruntime's com.microsoft MultiHeadAttention/Attention:
 * on CPU those gave the same numbers and no measurable speed-up (at L = 77 the attention core is a
 * few percent of the encoder), and standard ops run on every execution provider.
 */
function selfAttention(net: Net, x: string, prefix: string, cfg: ClipTextConfig, mask: string): string {
  const d = cfg.hidden_size;
  const q = linear(net, x, `${prefix}.q_proj`, d, d);
  const k = linear(net, x, `${prefix}.k_proj`, d, d);
  const v = linear(net, x, `${prefix}.v_proj`, d, d);
  return linear(net, sdpa(net, q, k, v, d, cfg.num_attention_heads, mask), `${prefix}.out_proj`, d, d);
}
