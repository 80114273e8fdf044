// What nodes declare about their values before they run: tensor shapes as stand-ins (infer), the
// cost of a clip against the host's limits, what a model folder's UNet can take (the fixed dims of
// its ONNX "sample" input), and how long a written file's name may get.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Cost, ValidationIssue } from '../server/engine/define.ts';
import { checkUNet } from '../server/runtime/io.ts';
import { readOnnxHeader } from '../server/runtime/onnx/header.ts';
import { LAYOUT } from '../server/runtime/folder.ts';
import { readModelInfo } from '../server/runtime/families/info.ts';
import type { ModelLimits } from '../server/runtime/families/types.ts';

/** The shape of a tensor or of its stand-in, when known. */
export function shapeOf(v: unknown): readonly number[] | undefined {
  const shape = (v as { shape?: unknown } | null | undefined)?.shape;
  return Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? (shape as number[]) : undefined;
}

/** Same shape as the input (for nodes whose output is shaped like their input). */
export function sameShape(v: unknown): { shape: readonly number[] } | undefined {
  const shape = shapeOf(v);
  return shape ? { shape } : undefined;
}

/**
 * The costs of one clip of `frames` frames of width × height pixels, `batch` at once: its decoded
 * pixel-frames (clipPixels) and its frames, counted once per loop iteration (totalFrames).
 */
export function clipCosts(
  input: string,
  clip: { frames: number; width: number; height: number; batch: number },
): Cost[] {
  const { frames, width, height, batch } = clip;
  return [
    {
      resource: 'clipPixels',
      input,
      amount: frames * width * height * batch,
      what: `${frames} frames × ${width}×${height} × batch ${batch}`,
      unit: 'pixel-frames',
    },
    {
      resource: 'totalFrames',
      input,
      amount: frames * batch,
      what: `${frames * batch} frames`,
      unit: 'frames',
      per: 'clip',
    },
  ];
}

/**
 * What validation knows of a UNet before loading it: its "sample" input's dims (names where
 * dynamic) and its model family's limits (frames, size multiples, latent channels).
 */
export interface UNetStandIn {
  sampleShape: readonly (number | string)[];
  family?: string;
  limits?: ModelLimits;
}

export function unetLimits(v: unknown): { family?: string; limits?: ModelLimits } {
  const s = v as Partial<UNetStandIn> | null | undefined;
  return { family: s?.family, limits: s?.limits };
}

export function unetSampleShape(v: unknown): readonly (number | string)[] | undefined {
  const s = (v as Partial<UNetStandIn> | null | undefined)?.sampleShape;
  return Array.isArray(s) ? s : undefined;
}

const headers = new Map<string, { stamp: string; standIn: UNetStandIn | undefined }>();

/**
 * The UNet stand-in of a model folder, from unet/model.onnx's header (a few small reads, cached
 * while the file is unchanged); undefined when the header says nothing usable (validation of the
 * folder reports why).
 */
export async function unetStandIn(dir: string): Promise<UNetStandIn | undefined> {
  const file = path.join(dir, LAYOUT.unet);
  const st = await stat(file);
  const stamp = `${st.mtimeMs}:${st.size}`;
  const hit = headers.get(file);
  if (hit?.stamp === stamp) return hit.standIn;
  const checked = checkUNet(await readOnnxHeader(file));
  const standIn = checked.ok ? { sampleShape: checked.io.sampleShape, ...readModelInfo(dir) } : undefined;
  headers.set(file, { stamp, standIn });
  return standIn;
}

/** Pixels per latent cell of the SD VAE. */
const SCALE = 8;

/**
 * Where a latent [B,4,F,h,w] does not fit the model's fixed "sample" dims: frames, and the size
 * in pixels (latent × 8). Dynamic dims (named in the ONNX file) take any size.
 */
export function modelFitIssues(
  input: string,
  latent: readonly number[],
  sample: readonly (number | string)[],
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const fixed = (i: number): number | undefined => (typeof sample[i] === 'number' ? sample[i] : undefined);
  const frames = fixed(2);
  if (frames !== undefined && latent[2] !== frames) {
    issues.push({
      input,
      message: `the model takes clips of exactly ${frames} frames (its UNet's "sample" input is fixed at [${sample.join(', ')}]), but the clip has ${latent[2]}`,
    });
  }
  const h = fixed(3);
  const w = fixed(4);
  if ((h !== undefined && latent[3] !== h) || (w !== undefined && latent[4] !== w)) {
    const want = `${w === undefined ? 'any width' : w * SCALE} × ${h === undefined ? 'any height' : h * SCALE}`;
    issues.push({
      input,
      message: `the model takes ${want} pixels (its UNet's "sample" input is fixed at [${sample.join(', ')}]), but the clip is ${latent[4] * SCALE} × ${latent[3] * SCALE}`,
    });
  }
  return issues;
}

/**
 * Where a latent [B,C,F,h,w] is outside what the model's family can generate: latent channels,
 * frames per clip, and width/height in pixels (latent × 8) as multiples or a fixed size. The
 * messages name the allowed values.
 */
export function familyLimitIssues(
  input: string,
  latent: readonly number[],
  model: { family?: string; limits?: ModelLimits },
): ValidationIssue[] {
  const l = model.limits;
  if (l === undefined) return [];
  const who = `the ${model.family ?? ''} model`.replace('  ', ' ');
  const issues: ValidationIssue[] = [];
  if (latent[1] !== l.latentChannels) {
    issues.push({
      input,
      message: `${who} takes ${l.latentChannels} latent channels, but the noise has ${latent[1]}`,
    });
  }
  const frames = latent[2];
  if (frames < l.frames.min || (l.frames.max !== undefined && frames > l.frames.max)) {
    const allowed =
      l.frames.max === undefined
        ? `at least ${l.frames.min}`
        : l.frames.max === l.frames.min
          ? `exactly ${l.frames.min}`
          : `${l.frames.min} to ${l.frames.max}`;
    issues.push({ input, message: `${who} takes clips of ${allowed} frames, but the clip has ${frames}` });
  }
  const width = latent[4] * SCALE;
  const height = latent[3] * SCALE;
  if (l.size !== undefined && (width !== l.size.width || height !== l.size.height)) {
    issues.push({
      input,
      message: `${who} takes ${l.size.width} × ${l.size.height} pixels only, but the clip is ${width} × ${height}`,
    });
  } else if (width % l.sizeMultiple !== 0 || height % l.sizeMultiple !== 0) {
    issues.push({
      input,
      message: `${who} takes widths and heights that are multiples of ${l.sizeMultiple} pixels, but the clip is ${width} × ${height}`,
    });
  }
  return issues;
}

/** Longest file name most filesystems (ext4, APFS, NTFS) take, in bytes. */
export const MAX_NAME_BYTES = 255;
/**
 * What writers add to the last part of a prefix: "_NNNNN" (or more digits), and while writing a
 * hidden temporary name ".<name>_NNNNN.tmp-<pid>-<8 hex>.<ext>".
 */
export const NAME_SUFFIX_BYTES = 40;

/**
 * A filename_prefix whose file names cannot be created: a folder part over 255 bytes, or a last
 * part that leaves no room for the counter, temporary suffix and extension within 255 bytes.
 */
export function fileNameIssues(prefix: string | undefined): ValidationIssue[] {
  if (prefix === undefined) return [];
  const parts = prefix.split(/[\\/]/);
  const issues: ValidationIssue[] = [];
  parts.forEach((part, i) => {
    const bytes = Buffer.byteLength(part, 'utf8');
    const last = i === parts.length - 1;
    const max = last ? MAX_NAME_BYTES - NAME_SUFFIX_BYTES : MAX_NAME_BYTES;
    if (bytes <= max) return;
    const shown = part.length > 40 ? `${part.slice(0, 37)}...` : part;
    issues.push({
      input: 'filename_prefix',
      message: last
        ? `the file name part "${shown}" is ${bytes} bytes in UTF-8; file names are limited to ${MAX_NAME_BYTES} bytes and the writer adds up to ${NAME_SUFFIX_BYTES} (counter, temporary suffix, extension), so it may have at most ${max}`
        : `the folder name "${shown}" is ${bytes} bytes in UTF-8; at most ${MAX_NAME_BYTES} are allowed`,
    });
  });
  return issues;
}

/** `reference_frames` (M) over the frames of the clip it refers to. */
export function referenceFrameIssues(noise: unknown, referenceFrames: number | undefined): ValidationIssue[] {
  const frames = shapeOf(noise)?.[2];
  if (frames === undefined || referenceFrames === undefined || referenceFrames <= frames) return [];
  return [
    {
      input: 'reference_frames',
      message: `${referenceFrames} exceeds the ${frames} frames of the noise (allowed: 0 to ${frames})`,
    },
  ];
}
