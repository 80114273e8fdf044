// Frames as 8-bit RGB for resume checkpoints: the very bytes a video writer encodes (imagesToRgb8),
// a quarter of the float32 frames. Decoded, they are floats b/255 that imagesToRgb8 turns back into
// exactly b (float32(b/255)·255 is within 2e-5 of b), so a writer fed the decoded frames writes the
// same file as one fed the originals.
import type { CheckpointCodec } from '../../engine/define.ts';
import type { Tensor } from '../../core/tensor-type.ts';
import { imageDims, imagesToRgb8 } from './png.ts';

interface StoredFrames {
  shape: number[];
  rgb: Uint8Array;
}

export function framesToRgb8(images: Tensor): StoredFrames {
  const { frames, height, width } = imageDims(images);
  const n = height * width * 3;
  const rgb = new Uint8Array(frames * n);
  for (let f = 0; f < frames; f++) imagesToRgb8(images, f, rgb.subarray(f * n, (f + 1) * n));
  return { shape: [...images.shape], rgb };
}

export function rgb8ToFrames(stored: StoredFrames): Tensor {
  const data = new Float32Array(stored.rgb.length);
  for (let i = 0; i < data.length; i++) data[i] = stored.rgb[i] / 255;
  return { data, shape: stored.shape };
}

export const rgb8Codec: CheckpointCodec = {
  name: 'rgb8',
  encode: (v) => framesToRgb8(v as Tensor),
  decode: (v) => rgb8ToFrames(v as StoredFrames),
};
