// The demo UNet's training set: short clips (8 frames) of one object walking along a grid of 8
// positions, one step per frame, encoded by the demo VAE. The set is closed under time reversal
// and covers every start position, and a walk may turn once around its middle (frames 3–4) as
// well as at the walls: so for any clip, the reversal of its last 4 frames followed by 4 new
// frames is again a training clip, in more than one way. VidRD's next clip starts with the
// previous clip's last frames reversed, so a smooth continuation always exists and the sampler
// has a choice of where to go next.
import { float16ToFloat32, float32ToFloat16 } from '../../core/half.ts';
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
/** Elements of one frame latent [4, 32, 32] and of one clip latent [4, 8, 32, 32]. */
export const FRAME_ELEMENTS = LATENT_CHANNELS * LATENT_SIZE * LATENT_SIZE;
export const CLIP_ELEMENTS = FRAME_ELEMENTS * CLIP_FRAMES;

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
  /** The distinct frame latents [U, 4, 32, 32] the clips are made of, in the sampler's units (raw · scalingFactor). */
  readonly frames: Float32Array;
  /** The same frames as float16 bits (what the UNet file stores). */
  readonly framesF16: Uint16Array;
  /** clipFrames[k·8 + f] = the frame (index into frames) shown in frame f of clip k. */
  readonly clipFrames: Int32Array;
  /** ‖x0_k‖² per clip, from the float32 frames (float64 sums). */
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
  const rawFrames: Float64Array[] = [];
  const frameIds = new Map<string, number>();
  const frameId = (clip: TrainingClip, position: number): number => {
    const key = `${clip.colour}/${clip.shape}/${clip.motion}/${position}`;
    let id = frameIds.get(key);
    if (id === undefined) {
      const along = gridCentre(position);
      const [cx, cy] = clip.motion === 'sideways' ? [along, IMAGE_SIZE / 2] : [IMAGE_SIZE / 2, along];
      const delta = encodeImage(objectPlanes(clip.shape, COLOURS[clip.colour], cx, cy, bg), down);
      id = rawFrames.push(delta.map((v, i) => v + bgLatent[i])) - 1;
      frameIds.set(key, id);
    }
    return id;
  };
  const clipFrames = new Int32Array(clips.length * CLIP_FRAMES);
  for (const clip of clips)
    clip.walk.forEach((p, f) => (clipFrames[clip.index * CLIP_FRAMES + f] = frameId(clip, p)));

  // Stable Diffusion's convention: scale latents to unit standard deviation over the data (clips
  // share frames, so each frame's sums count once per use).
  const uses = new Float64Array(rawFrames.length);
  for (const u of clipFrames) uses[u]++;
  let sum = 0;
  let sumSq = 0;
  rawFrames.forEach((z, u) => {
    for (const v of z) {
      sum += uses[u] * v;
      sumSq += uses[u] * v * v;
    }
  });
  const count = clips.length * CLIP_ELEMENTS;
  const variance = sumSq / count - (sum / count) ** 2;
  const scalingFactor = Number((1 / Math.sqrt(variance)).toPrecision(5));

  // The UNet file stores the frames as float16; the clips *are* those values, here as in the graph.
  const framesF16 = new Uint16Array(rawFrames.length * FRAME_ELEMENTS);
  rawFrames.forEach((z, u) =>
    framesF16.set(float32ToFloat16(Float32Array.from(z, (v) => v * scalingFactor)), u * FRAME_ELEMENTS),
  );
  const frames = float16ToFloat32(framesF16);
  const frameSq = rawFrames.map((_, u) => {
    let sq = 0;
    for (let i = u * FRAME_ELEMENTS; i < (u + 1) * FRAME_ELEMENTS; i++) sq += frames[i] * frames[i];
    return sq;
  });
  const sqNorms = new Float32Array(clips.length);
  for (const clip of clips) {
    for (let f = 0; f < CLIP_FRAMES; f++)
      sqNorms[clip.index] += frameSq[clipFrames[clip.index * CLIP_FRAMES + f]];
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
  return {
    clips,
    frames,
    framesF16,
    clipFrames,
    sqNorms,
    prior,
    scalingFactor,
  };
}

/** Clip k's latent [4, 8, 32, 32] (sampler units), assembled from its frames. */
export function clipLatent(set: TrainingSet, k: number): Float32Array {
  const hw = LATENT_SIZE * LATENT_SIZE;
  const out = new Float32Array(CLIP_ELEMENTS);
  for (let f = 0; f < CLIP_FRAMES; f++) {
    const u = set.clipFrames[k * CLIP_FRAMES + f];
    for (let l = 0; l < LATENT_CHANNELS; l++) {
      const from = u * FRAME_ELEMENTS + l * hw;
      out.set(set.frames.subarray(from, from + hw), (l * CLIP_FRAMES + f) * hw);
    }
  }
  return out;
}
