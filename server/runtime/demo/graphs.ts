// The demo model's three ONNX graphs, written with the runtime's ModelBuilder.
import { ModelBuilder } from '../onnx/builder.ts';
import { CLIP_ELEMENTS, CLIP_FRAMES, type TrainingSet } from './dataset.ts';
import { timeTables } from './schedule.ts';
import { MODEL_MAX_LENGTH } from './tokenizer-files.ts';
import { IMAGE_SIZE, LATENT_CHANNELS, LATENT_SIZE, MIX, upsampleMatrix } from './vae.ts';
import { CONCEPTS, HIDDEN_SIZE, WORDS, conceptIndex } from './vocab.ts';

const i64 = (values: readonly number[]): BigInt64Array => BigInt64Array.from(values.map((v) => BigInt(v)));

/**
 * input_ids [1,77] int64 → last_hidden_state [1,77,D]: an embedding lookup. A vocabulary word's
 * token embeds as the unit vectors of the concepts it names; every other token (specials, padding,
 * unknown words spelled out in byte symbols) embeds as zero.
 */
export function textEncoderGraph(vocabSize: number, wordIds: Readonly<Record<string, number>>): Uint8Array {
  const table = new Float32Array(vocabSize * HIDDEN_SIZE);
  for (const [word, concepts] of Object.entries(WORDS)) {
    for (const c of concepts) table[wordIds[word] * HIDDEN_SIZE + conceptIndex(c)] = 1;
  }
  const b = new ModelBuilder({ name: 'demo_text_encoder' });
  b.input('input_ids', 'int64', [1, MODEL_MAX_LENGTH]);
  b.initializer('embedding', table, [vocabSize, HIDDEN_SIZE]);
  b.node('Gather', ['embedding', 'input_ids'], ['last_hidden_state'], { axis: 0 });
  b.output('last_hidden_state', 'float32', [1, MODEL_MAX_LENGTH, HIDDEN_SIZE]);
  return b.toBytes();
}

/**
 * The closed-form denoiser (see reference.ts for the formula). Training latents are stored as
 * float16 (half the file) and cast once; onnxruntime folds the cast at load.
 */
export function unetGraph(set: TrainingSet): Uint8Array {
  const K = set.clips.length;
  const tables = timeTables();
  const b = new ModelBuilder({ name: 'demo_unet' });
  b.input('sample', 'float32', ['batch', LATENT_CHANNELS, CLIP_FRAMES, LATENT_SIZE, LATENT_SIZE]);
  b.input('timestep', 'int64', [1]);
  b.input('encoder_hidden_states', 'float32', ['batch', MODEL_MAX_LENGTH, HIDDEN_SIZE]);

  b.initializer('x0_f16', set.latentsF16, [K, CLIP_ELEMENTS]);
  b.initializer('x0_sq_norm', set.sqNorms, [K]);
  b.initializer('prior', set.prior, [HIDDEN_SIZE, K]);
  b.initializer('t_cross', tables.cross);
  b.initializer('t_norm', tables.norm);
  b.initializer('t_sample', tables.sample);
  b.initializer('t_mean', tables.mean);
  b.initializer('flat_shape', i64([-1, CLIP_ELEMENTS]));
  b.initializer('token_axis', i64([1]));
  b.initializer('zero', new Float32Array([0]), []);
  b.initializer('one', new Float32Array([1]), []);

  const x0 = b.op('Cast', ['x0_f16'], { to: 1 /* FLOAT */ });
  const z = b.op('Reshape', ['sample', 'flat_shape']);
  // logits_k = √ā/(1−ā)·z·x0_k − ā/(2(1−ā))·‖x0_k‖² + prior_k  (‖z‖² cancels in the softmax)
  const dots = b.op('Gemm', [z, x0], { transB: 1 });
  const crossTerm = b.op('Mul', [dots, b.op('Gather', ['t_cross', 'timestep'], { axis: 0 })]);
  const normTerm = b.op('Mul', ['x0_sq_norm', b.op('Gather', ['t_norm', 'timestep'], { axis: 0 })]);
  const pooled = b.op('ReduceSum', ['encoder_hidden_states', 'token_axis'], { keepdims: 0 });
  const prior = b.op('MatMul', [b.op('Clip', [pooled, 'zero', 'one']), 'prior']);
  const logits = b.op('Add', [b.op('Add', [crossTerm, normTerm]), prior]);
  const weights = b.op('Softmax', [logits], { axis: -1 });
  const mean = b.op('MatMul', [weights, x0]);
  // ε̂ = z/√(1−ā) − √ā/√(1−ā)·E[x0 | z]
  const eps = b.op('Sub', [
    b.op('Mul', [z, b.op('Gather', ['t_sample', 'timestep'], { axis: 0 })]),
    b.op('Mul', [mean, b.op('Gather', ['t_mean', 'timestep'], { axis: 0 })]),
  ]);
  b.node('Reshape', [eps, b.op('Shape', ['sample'])], ['out_sample']);
  b.output('out_sample', 'float32', ['batch', LATENT_CHANNELS, CLIP_FRAMES, LATENT_SIZE, LATENT_SIZE]);
  if (CONCEPTS.length > HIDDEN_SIZE) throw new Error('demo model: more concepts than hidden size');
  return b.toBytes();
}

/** latent_sample [n,4,32,32] → sample [n,3,256,256]: channel mix, then bilinear ×8 as UP·X·UPᵀ. */
export function vaeDecoderGraph(): Uint8Array {
  const up = Float32Array.from(upsampleMatrix());
  const upT = new Float32Array(LATENT_SIZE * IMAGE_SIZE);
  for (let o = 0; o < IMAGE_SIZE; o++) {
    for (let j = 0; j < LATENT_SIZE; j++) upT[j * IMAGE_SIZE + o] = up[o * LATENT_SIZE + j];
  }
  const mix = new Float32Array(3 * LATENT_CHANNELS);
  for (let c = 0; c < 3; c++)
    for (let l = 0; l < LATENT_CHANNELS; l++) mix[c * LATENT_CHANNELS + l] = MIX[l][c];
  const b = new ModelBuilder({ name: 'demo_vae_decoder' });
  b.input('latent_sample', 'float32', ['batch', LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE]);
  b.initializer('mix', mix, [3, LATENT_CHANNELS, 1, 1]);
  b.initializer('up', up, [IMAGE_SIZE, LATENT_SIZE]);
  b.initializer('up_t', upT, [LATENT_SIZE, IMAGE_SIZE]);
  const rgb = b.op('Conv', ['latent_sample', 'mix'], { kernel_shape: [1, 1] });
  const rows = b.op('MatMul', [rgb, 'up_t']);
  b.node('MatMul', ['up', rows], ['sample']);
  b.output('sample', 'float32', ['batch', 3, IMAGE_SIZE, IMAGE_SIZE]);
  return b.toBytes();
}
