// What a ready-to-run model folder is and can do, from small files only: its family (recorded by
// the converter; the demo model; or "onnx" for an export rdflow did not make) and its limits.
// Synchronous, so the LoadVideoModel list in /object_info can carry it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ModelLimits } from './types.ts';

export interface ModelInfo {
  readonly family: string;
  readonly limits: ModelLimits;
}

/** The demo model (server/runtime/demo): 8-frame clips at 256×256 only. */
export const DEMO_LIMITS: ModelLimits = {
  latentChannels: 4,
  sizeMultiple: 8,
  frames: { min: 8, max: 8 },
  size: { width: 256, height: 256 },
};

/**
 * An export rdflow did not make: public ONNX exports trace diffusers' UNet with its 2× upsampling
 * fixed, so the latent must halve three times evenly: multiples of 64 pixels. Fixed dims of the
 * export's "sample" input are checked on top of this at validation.
 */
export const ONNX_EXPORT_LIMITS: ModelLimits = { latentChannels: 4, sizeMultiple: 64, frames: { min: 1 } };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readIndex(dir: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(readFileSync(path.join(dir, 'model_index.json'), 'utf8'));
    return isObject(v) ? v : {};
  } catch {
    return {};
  }
}

/** The family and limits of the model folder `dir` (never throws; unknown folders get export limits). */
export function readModelInfo(dir: string): ModelInfo {
  const rdflow = readIndex(dir).rdflow;
  if (isObject(rdflow) && typeof rdflow.family === 'string') {
    const limits = isObject(rdflow.limits) ? (rdflow.limits as unknown as ModelLimits) : undefined;
    if (rdflow.family === 'demo') return { family: 'demo', limits: limits ?? DEMO_LIMITS };
    if (limits !== undefined) return { family: rdflow.family, limits };
  }
  if (path.basename(dir) === 'demo' && existsSync(path.join(dir, 'demo.json'))) {
    return { family: 'demo', limits: DEMO_LIMITS };
  }
  return { family: 'onnx', limits: ONNX_EXPORT_LIMITS };
}

/** "8 frames, 256×256" / "1+ frames, ×8 px" for listings. */
export function describeLimits(l: ModelLimits): string {
  const frames =
    l.frames.max === l.frames.min
      ? `${l.frames.min} frames`
      : `${l.frames.min}${l.frames.max === undefined ? '+' : `–${l.frames.max}`} frames`;
  const size = l.size ? `${l.size.width}×${l.size.height}` : `sizes ×${l.sizeMultiple} px`;
  return `${frames}, ${size}`;
}
