// The demo UNet's formula evaluated directly (float64 accumulation), the yardstick the ONNX graph
// is tested against: the optimal noise predictor for the finite training set,
//   ε̂(z, t) = (z − √ā·E[x0 | z, text]) / √(1 − ā),
//   E[x0 | z, text] = Σ_k softmax_k(−‖z − √ā·x0_k‖² / 2(1 − ā) + prior_k(text)) · x0_k,
// with prior_k = Σ_c clip(Σ_tokens h[token, c], 0, 1) · PRIOR[c][k]. The ‖z‖² term is the same
// for every k and cancels in the softmax.
import type { Tensor } from '../../core/tensor-type.ts';
import { CLIP_ELEMENTS, CLIP_FRAMES, FRAME_ELEMENTS, type TrainingSet } from './dataset.ts';
import { LATENT_CHANNELS, LATENT_SIZE } from './vae.ts';
import { timeTables, type TimeTables } from './schedule.ts';

let tables: TimeTables | undefined;
const PLANE = LATENT_SIZE * LATENT_SIZE;

/** Visits clip k's x0 one [32×32] plane at a time: offset in the clip latent, offset in frames. */
function forEachFrame(set: TrainingSet, k: number, visit: (at: number, from: number) => void): void {
  for (let f = 0; f < CLIP_FRAMES; f++) {
    const u = set.clipFrames[k * CLIP_FRAMES + f];
    for (let l = 0; l < LATENT_CHANNELS; l++)
      visit((l * CLIP_FRAMES + f) * PLANE, u * FRAME_ELEMENTS + l * PLANE);
  }
}

/** Posterior weights over training clips for one latent [CLIP_ELEMENTS] and hidden states [L, D]. */
export function demoPosterior(
  set: TrainingSet,
  z: Float32Array,
  timestep: number,
  hidden: Float32Array,
  hiddenWidth: number,
): Float64Array {
  tables ??= timeTables();
  const K = set.clips.length;
  const tokens = hidden.length / hiddenWidth;
  const logits = new Float64Array(K);
  for (let c = 0; c < hiddenWidth; c++) {
    let pooled = 0;
    for (let l = 0; l < tokens; l++) pooled += hidden[l * hiddenWidth + c];
    pooled = Math.min(Math.max(pooled, 0), 1);
    if (pooled === 0) continue;
    for (let k = 0; k < K; k++) logits[k] += pooled * set.prior[c * K + k];
  }
  const cross = tables.cross[timestep];
  const norm = tables.norm[timestep];
  for (let k = 0; k < K; k++) {
    let dot = 0;
    forEachFrame(set, k, (at, from) => {
      for (let p = 0; p < PLANE; p++) dot += z[at + p] * set.frames[from + p];
    });
    logits[k] += cross * dot + norm * set.sqNorms[k];
  }
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let total = 0;
  for (let k = 0; k < K; k++) {
    logits[k] = Math.exp(logits[k] - max);
    total += logits[k];
  }
  for (let k = 0; k < K; k++) logits[k] /= total;
  return logits;
}

/**
 * ε̂ for a batch: sample [B,4,8,32,32], hidden [B,L,D] → [B,4,8,32,32], exactly what the demo
 * UNet's ONNX graph computes.
 */
export function demoEpsReference(set: TrainingSet, sample: Tensor, timestep: number, hidden: Tensor): Tensor {
  tables ??= timeTables();
  const B = sample.shape[0];
  const D = hidden.shape[hidden.shape.length - 1];
  const perHidden = hidden.data.length / B;
  if (sample.data.length !== B * CLIP_ELEMENTS) {
    throw new Error(`demo UNet: sample shape [${sample.shape.join(',')}] is not [B,4,8,32,32]`);
  }
  const out = new Float32Array(sample.data.length);
  const a = tables.sample[timestep];
  const m = tables.mean[timestep];
  for (let b = 0; b < B; b++) {
    const z = sample.data.subarray(b * CLIP_ELEMENTS, (b + 1) * CLIP_ELEMENTS);
    const w = demoPosterior(set, z, timestep, hidden.data.subarray(b * perHidden, (b + 1) * perHidden), D);
    const mean = new Float64Array(CLIP_ELEMENTS);
    for (let k = 0; k < w.length; k++) {
      if (w[k] < 1e-12) continue;
      forEachFrame(set, k, (at, from) => {
        for (let p = 0; p < PLANE; p++) mean[at + p] += w[k] * set.frames[from + p];
      });
    }
    for (let i = 0; i < CLIP_ELEMENTS; i++) out[b * CLIP_ELEMENTS + i] = a * z[i] - m * mean[i];
  }
  return { data: out, shape: [...sample.shape] };
}
