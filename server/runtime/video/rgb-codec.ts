// Frames as 8-bit RGB for resume checkpoints: the very bytes a video writer encodes (imagesToRgb8),
// a quarter of the float32 frames. Decoded, they are floats b/255 that imagesToRgb8 turns back into
// exactly b (float32(b/255)·255 is within 2e-5 of b), so a writer fed the decoded frames writes the
// same file as one fed the originals.
// The conversion is made once per clip: the engine encodes a writer's input for the checkpoint just
// before the writer runs, and the writer then takes these bytes (sharedRgb8) instead of converting
// the frames again; every writer fed the same frames shares them too.
import type { CheckpointCodec } from '../../engine/define.ts';
import type { Tensor } from '../../core/tensor-type.ts';
import { imageDims, imagesToRgb8 } from './png.ts';

interface StoredFrames {
  shape: number[];
  rgb: Uint8Array;
}

/**
 * The RGB bytes known for a frames tensor, by the tensor object: IMAGE tensors are not changed
 * once made (a recycled buffer goes into a new tensor), so the bytes stay those of the frames.
 * Weak: the entry goes with the tensor.
 */
const known = new WeakMap<Tensor, StoredFrames>();

export function framesToRgb8(images: Tensor): StoredFrames {
  const { frames, height, width } = imageDims(images);
  const n = height * width * 3;
  const rgb = new Uint8Array(frames * n);
  for (let f = 0; f < frames; f++) imagesToRgb8(images, f, rgb.subarray(f * n, (f + 1) * n));
  const stored = { shape: [...images.shape], rgb };
  known.set(images, stored);
  return stored;
}

export function rgb8ToFrames(stored: StoredFrames): Tensor {
  const data = new Float32Array(stored.rgb.length);
  for (let i = 0; i < data.length; i++) data[i] = stored.rgb[i] / 255;
  const frames = { data, shape: stored.shape };
  // A resumed run's writers encode the stored bytes themselves: they are exactly imagesToRgb8's.
  known.set(frames, stored);
  return frames;
}

/**
 * The 8-bit RGB of all of `images`' frames ([F·H·W·3], frame after frame) when it was made already
 * (framesToRgb8, rgb8ToFrames), else undefined. Read only: a checkpoint holds the same bytes.
 */
export function sharedRgb8(images: Tensor): Uint8Array | undefined {
  const stored = known.get(images);
  if (stored === undefined || stored.rgb.length !== images.data.length) return undefined;
  // Only for the shape the bytes were made with (a reshaped object is not trusted).
  const same =
    stored.shape.length === images.shape.length && stored.shape.every((d, i) => d === images.shape[i]);
  return same ? stored.rgb : undefined;
}

export const rgb8Codec: CheckpointCodec = {
  name: 'rgb8',
  encode: (v) => framesToRgb8(v as Tensor),
  decode: (v) => rgb8ToFrames(v as StoredFrames),
};
