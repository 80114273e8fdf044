// The demo UNet's training set: short clips (8 frames) of one object walking along a grid of 8
// positions, one step per frame, encoded by the demo VAE. The set is closed under time reversal
// and covers every start position, and a walk may turn once around its middle (frames 3–4) as
// well as at the walls: so for any clip, the reversal of its last 4 frames followed by 4 new
// frames is again a training clip, in more than one way. VidRD's next clip starts with the
// previous clip's last frames reversed, so a smooth continuation always exists and the sampler
// has a choice of where to go next.
import { float16ToFloat32, float32ToFloat16 } from '../../../nodes/lib/half.ts';
import { backgroundPlanes, objectPlanes } from './render.ts';
import { IMAGE_SIZE, LATENT_CHANNELS, LATENT_SIZE, downsampleMatrix, encodeImage } from './vae.ts';
import {
  COLOURS,
  CONCEPTS,
  HIDDEN_SIZE,
  MOTIONS,
  SHAPES,
  conceptIndex,
  type ColourName,
  type DirectionName,
  type MotionName,
  type ShapeName,
} from './vocab.ts';

export const CLIP_FRAMES = 8;
export const GRID_POSITIONS = 8;
/** Frames at which a walk may turn away from the walls (at most once); walls always reflect. */
const FREE_TURN_FRAMES = [3, 4];
/** Elements of one clip latent [4, 8, 32, 32]. */
export const CLIP_ELEMENTS = LATENT_CHANNELS * CLIP_FRAMES * LATENT_SIZE * LATENT_SIZE;

export interface TrainingClip {
  readonly index: number;
  readonly colour: ColourName;
  readonly shape: ShapeName;
  readonly motion: MotionName;
  /** Grid position (0 … GRID_POSITIONS-1) of the object in each frame. */
  readonly walk: readonly number[];
  /** Net direction (last position vs first), none when the walk ends where it began. */
  readonly direction: DirectionName | undefined;
}

export interface TrainingSet {
  readonly clips: readonly TrainingClip[];
  /** Clip latents [K, 4, 8, 32, 32] in the sampler's units (raw · scalingFactor). */
  readonly latents: Float32Array;
  /** The same latents as float16 bits (what the UNet file stores). */
  readonly latentsF16: Uint16Array;
  /** ‖x0_k‖² per clip, from the float32 latents. */
  readonly sqNorms: Float32Array;
  /** Log prior weight of concept c for clip k: PRIOR[c][k], shape [HIDDEN_SIZE, K]. */
  readonly prior: Float32Array;
  readonly scalingFactor: number;
}

/**
 * How strongly each matched prompt concept favours a clip (nats). Colour and shape dominate any
 * noise; direction words steer weakly: enough to break the symmetry between a clip and its time
 * reversal (else FNR's reversed noise alone replays the last clip backwards and DSG has nothing to
 * do), weak enough that DSG's reference frames win over them.
 */
export const PRIOR_WEIGHT = { colour: 40, shape: 40, motion: 20, direction: 5 } as const;

/** Pixel centre of grid position i along a walk's axis. */
export function gridCentre(i: number): number {
  const margin = 36;
  return margin + (i * (IMAGE_SIZE - 2 * margin)) / (GRID_POSITIONS - 1);
}

/** All walks: ±1 steps inside the grid, reflecting at walls, at most one turn elsewhere. */
export function enumerateWalks(): number[][] {
  const walks: number[][] = [];
  const steps = CLIP_FRAMES - 1;
  for (let p0 = 0; p0 < GRID_POSITIONS; p0++) {
    for (let mask = 0; mask < 1 << steps; mask++) {
      const walk = [p0];
      let freeTurns = 0;
      let valid = true;
      for (let j = 0; j < steps && valid; j++) {
        const d = (mask >> j) & 1 ? 1 : -1;
        const p = walk[j];
        if (j > 0 && d !== walk[j] - walk[j - 1] && p !== 0 && p !== GRID_POSITIONS - 1) {
          freeTurns += FREE_TURN_FRAMES.includes(j) ? 1 : Infinity;
        }
        const next = p + d;
        valid = next >= 0 && next < GRID_POSITIONS && freeTurns <= 1;
        walk.push(next);
      }
      if (valid) walks.push(walk);
    }
  }
  return walks;
}

/** Grid positions grow rightward (sideways) and downward (updown, image rows grow down). */
const DIRECTION_OF: Record<MotionName, readonly [DirectionName, DirectionName]> = {
  sideways: ['leftward', 'rightward'],
  updown: ['upward', 'downward'],
};

export function buildTrainingSet(): TrainingSet {
  const walks = enumerateWalks();
  const clips: TrainingClip[] = [];
  for (const colour of Object.keys(COLOURS) as ColourName[]) {
    for (const shape of SHAPES) {
      for (const motion of MOTIONS) {
        for (const walk of walks) {
          const net = walk[walk.length - 1] - walk[0];
          const direction = net === 0 ? undefined : DIRECTION_OF[motion][net > 0 ? 1 : 0];
          clips.push({ index: clips.length, colour, shape, motion, walk, direction });
        }
      }
    }
  }

  // Frames depend only on (colour, shape, motion, position): encode each once. The background's
  // latent is shared and the object's part is fitted over its bounding box only (linearity).
  const down = downsampleMatrix();
  const bg = backgroundPlanes();
  const bgLatent = encodeImage(bg, down);
  const frameCache = new Map<string, Float64Array>();
  const frameLatent = (clip: TrainingClip, position: number): Float64Array => {
    const key = `${clip.colour}/${clip.shape}/${clip.motion}/${position}`;
    let z = frameCache.get(key);
    if (!z) {
      const along = gridCentre(position);
      const [cx, cy] = clip.motion === 'sideways' ? [along, IMAGE_SIZE / 2] : [IMAGE_SIZE / 2, along];
      const delta = encodeImage(objectPlanes(clip.shape, COLOURS[clip.colour], cx, cy, bg), down);
      z = delta.map((v, i) => v + bgLatent[i]);
      frameCache.set(key, z);
    }
    return z;
  };

  // Stable Diffusion's convention: scale latents to unit standard deviation over the data. Clips
  // share frames, so the statistics come from per-frame sums weighted by use.
  const frameOf = clips.map((clip) => clip.walk.map((p) => frameLatent(clip, p)));
  let sum = 0;
  let sumSq = 0;
  const stats = new Map<Float64Array, [number, number]>();
  for (const frames of frameOf) {
    for (const z of frames) {
      let st = stats.get(z);
      if (!st) {
        st = [0, 0];
        for (const v of z) {
          st[0] += v;
          st[1] += v * v;
        }
        stats.set(z, st);
      }
      sum += st[0];
      sumSq += st[1];
    }
  }
  const count = clips.length * CLIP_ELEMENTS;
  const variance = sumSq / count - (sum / count) ** 2;
  const scalingFactor = Number((1 / Math.sqrt(variance)).toPrecision(5));

  // The UNet file stores the clips as float16; the clips *are* those values, here as in the graph.
  const half = new Map<Float64Array, { f16: Uint16Array; f32: Float32Array; sq: number }>();
  for (const z of stats.keys()) {
    const f16 = float32ToFloat16(Float32Array.from(z, (v) => v * scalingFactor));
    const f32 = float16ToFloat32(f16);
    let sq = 0;
    for (const v of f32) sq += v * v;
    half.set(z, { f16, f32, sq });
  }
  const hw = LATENT_SIZE * LATENT_SIZE;
  const latents = new Float32Array(clips.length * CLIP_ELEMENTS);
  const latentsF16 = new Uint16Array(clips.length * CLIP_ELEMENTS);
  const sqNorms = new Float32Array(clips.length);
  for (const clip of clips) {
    let sq = 0;
    frameOf[clip.index].forEach((z, f) => {
      const h = half.get(z) as { f16: Uint16Array; f32: Float32Array; sq: number };
      sq += h.sq;
      for (let l = 0; l < LATENT_CHANNELS; l++) {
        const at = clip.index * CLIP_ELEMENTS + (l * CLIP_FRAMES + f) * hw;
        latents.set(h.f32.subarray(l * hw, (l + 1) * hw), at);
        latentsF16.set(h.f16.subarray(l * hw, (l + 1) * hw), at);
      }
    });
    sqNorms[clip.index] = sq;
  }

  const K = clips.length;
  const prior = new Float32Array(HIDDEN_SIZE * K);
  for (const clip of clips) {
    prior[conceptIndex(clip.colour) * K + clip.index] = PRIOR_WEIGHT.colour;
    prior[conceptIndex(clip.shape) * K + clip.index] = PRIOR_WEIGHT.shape;
    prior[conceptIndex(clip.motion) * K + clip.index] = PRIOR_WEIGHT.motion;
    if (clip.direction) prior[conceptIndex(clip.direction) * K + clip.index] = PRIOR_WEIGHT.direction;
  }
  if (CONCEPTS.length > HIDDEN_SIZE) throw new Error('demo model: more concepts than hidden size');
  return { clips, latents, latentsF16, sqNorms, prior, scalingFactor };
}
