// The demo model's three ONNX graphs, written with the runtime's ModelBuilder.
import { ModelBuilder } from '../onnx/builder.ts';
import { CLIP_ELEMENTS, CLIP_FRAMES, FRAME_ELEMENTS, type TrainingSet } from './dataset.ts';
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
 * The closed-form denoiser (see reference.ts for the formula), factored through the clips' shared
 * frames: a clip is 8 of U distinct frame latents, so z·x0_k = Σ_f z_f·frame(k, f) and
 * E[x0 | z]_f = Σ_u (Σ_{k shows u at f} w_k)·frame_u. That costs 2·B·8·U·4096 multiply-adds
 * instead of 2·B·K·32768 and stores U frames instead of K clips. Frames are stored as float16 and
 * cast once; onnxruntime folds every initializer-only node (cast, transpose, one-hot) at load.
 */
export function unetGraph(set: TrainingSet): Uint8Array {
  const K = set.clips.length;
  const U = set.frames.length / FRAME_ELEMENTS;
  const F = CLIP_FRAMES;
  const hw = LATENT_SIZE * LATENT_SIZE;
  const tables = timeTables();
  const b = new ModelBuilder({ name: 'demo_unet' });
  b.input('sample', 'float32', ['batch', LATENT_CHANNELS, F, LATENT_SIZE, LATENT_SIZE]);
  b.input('timestep', 'int64', [1]);
  b.input('encoder_hidden_states', 'float32', ['batch', MODEL_MAX_LENGTH, HIDDEN_SIZE]);

  b.initializer('frames_f16', set.framesF16, [U, FRAME_ELEMENTS]);
  // slot[k][f] = f·U + u: where clip k's frame f sits in the flattened [frame, U] dot products.
  b.initializer('slot', i64(Array.from(set.clipFrames, (u, i) => (i % F) * U + u)), [K, F]);
  b.initializer('clip_frames', i64(Array.from(set.clipFrames)), [K, F]);
  b.initializer('frame_count', i64([U]));
  b.initializer('selection_shape', i64([K, F * U]));
  b.initializer('one_hot_values', new Float32Array([0, 1]));
  b.initializer('x0_sq_norm', set.sqNorms, [K]);
  b.initializer('prior', set.prior, [HIDDEN_SIZE, K]);
  b.initializer('t_cross', tables.cross);
  b.initializer('t_norm', tables.norm);
  b.initializer('t_sample', tables.sample);
  b.initializer('t_mean', tables.mean);
  b.initializer('flat_shape', i64([-1, CLIP_ELEMENTS]));
  b.initializer('split_shape', i64([-1, LATENT_CHANNELS, F, hw]));
  b.initializer('by_frame_shape', i64([-1, F, FRAME_ELEMENTS]));
  b.initializer('frame_split_shape', i64([-1, F, LATENT_CHANNELS, hw]));
  b.initializer('slots_shape', i64([-1, F * U]));
  b.initializer('frame_slots_shape', i64([-1, F, U]));
  b.initializer('axis_1', i64([1]));
  b.initializer('axis_2', i64([2]));
  b.initializer('zero', new Float32Array([0]), []);
  b.initializer('one', new Float32Array([1]), []);

  const frames = b.op('Cast', ['frames_f16'], { to: 1 /* FLOAT */ });
  const framesT = b.op('Transpose', [frames], { perm: [1, 0] });
  // selection[k][f·U + u] = 1 when clip k shows frame u at f.
  // selection[k][f·U + u] = 1 when clip k shows frame u at f (one-hot rows, flattened).
  const oneHot = b.op('OneHot', ['clip_frames', 'frame_count', 'one_hot_values'], { axis: -1 }); // [K, 8, U]
  const selection = b.op('Reshape', [oneHot, 'selection_shape']); // [K, 8U]

  // [B,4,8,32,32] → [B,8,4·32·32]: frame-major, so each frame's latent is one row.
  const split = b.op('Reshape', ['sample', 'split_shape']);
  const zByFrame = b.op('Reshape', [b.op('Transpose', [split], { perm: [0, 2, 1, 3] }), 'by_frame_shape']);
  const frameDots = b.op('Reshape', [b.op('MatMul', [zByFrame, framesT]), 'slots_shape']); // [B, 8U]
  const dotsByFrame = b.op('Gather', [frameDots, 'slot'], { axis: 1 }); // [B, K, 8]
  const dots = b.op('ReduceSum', [dotsByFrame, 'axis_2'], { keepdims: 0 }); // [B, K]

  // logits_k = √ā/(1−ā)·z·x0_k − ā/(2(1−ā))·‖x0_k‖² + prior_k  (‖z‖² cancels in the softmax)
  const crossTerm = b.op('Mul', [dots, b.op('Gather', ['t_cross', 'timestep'], { axis: 0 })]);
  const normTerm = b.op('Mul', ['x0_sq_norm', b.op('Gather', ['t_norm', 'timestep'], { axis: 0 })]);
  const pooled = b.op('ReduceSum', ['encoder_hidden_states', 'axis_1'], { keepdims: 0 });
  const prior = b.op('MatMul', [b.op('Clip', [pooled, 'zero', 'one']), 'prior']);
  const logits = b.op('Add', [b.op('Add', [crossTerm, normTerm]), prior]);
  const weights = b.op('Softmax', [logits], { axis: -1 });

  // E[x0 | z] frame by frame: weight of each distinct frame at each position, then the frames.
  const frameWeights = b.op('Reshape', [b.op('MatMul', [weights, selection]), 'frame_slots_shape']); // [B, 8, U]
  const meanByFrame = b.op('MatMul', [frameWeights, frames]); // [B, 8, 4·32·32]
  const meanSplit = b.op('Reshape', [meanByFrame, 'frame_split_shape']); // [B, 8, 4, 32·32]
  const mean = b.op('Reshape', [b.op('Transpose', [meanSplit], { perm: [0, 2, 1, 3] }), 'flat_shape']);

  // ε̂ = z/√(1−ā) − √ā/√(1−ā)·E[x0 | z]
  const z = b.op('Reshape', ['sample', 'flat_shape']);
  const eps = b.op('Sub', [
    b.op('Mul', [z, b.op('Gather', ['t_sample', 'timestep'], { axis: 0 })]),
    b.op('Mul', [mean, b.op('Gather', ['t_mean', 'timestep'], { axis: 0 })]),
  ]);
  b.node('Reshape', [eps, b.op('Shape', ['sample'])], ['out_sample']);
  b.output('out_sample', 'float32', ['batch', LATENT_CHANNELS, F, LATENT_SIZE, LATENT_SIZE]);
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
