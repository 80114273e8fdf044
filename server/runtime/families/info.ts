// What a ready-to-run model folder is and can do, from small files only: its family (recorded by
// the converter; the demo model; or "onnx" for an export rdflow did not make) and its limits.
// Synchronous, so the LoadVideoModel list in /object_info can carry it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isModelscopeSource, modelscopeFamily } from './modelscope/index.ts';
import { WORDS } from '../demo/vocab.ts';
import type { ModelLimits } from './types.ts';
import { findParts, vidrdFamily } from './vidrd/index.ts';

export interface ModelInfo {
  readonly family: string;
  readonly limits: ModelLimits;
  /**
   * The prompt words the model knows, where it knows only a few (the demo model): sent in
   * /object_info so the editor, like the CLI, can name the words of a prompt that do nothing.
   */
  readonly vocabulary?: readonly string[];
}

/** The demo model (server/runtime/demo): 8-frame clips at 256×256 only. */
const DEMO_LIMITS: ModelLimits = {
  latentChannels: 4,
  sizeMultiple: 8,
  frames: { min: 8, max: 8 },
  size: { width: 256, height: 256 },
};

/** The demo model's family, limits and the words it knows. */
function demoInfo(limits: ModelLimits = DEMO_LIMITS): ModelInfo {
  return { family: 'demo', limits, vocabulary: Object.keys(WORDS) };
}

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

const isCount = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;

/** Recorded limits as validation and listings read them (a hand-edited index may hold anything). */
function isLimits(v: unknown): v is ModelLimits {
  if (!isObject(v) || !isCount(v.latentChannels, 1) || !isCount(v.sizeMultiple, 1)) return false;
  const { frames, size } = v;
  if (!isObject(frames) || !isCount(frames.min, 1)) return false;
  if (frames.max !== undefined && !isCount(frames.max, frames.min)) return false;
  return size === undefined || (isObject(size) && isCount(size.width, 1) && isCount(size.height, 1));
}

/** Family and limits of a source checkpoint (converted on first use), from its configs. */
function sourceInfo(dir: string): ModelInfo | undefined {
  const parts = findParts(dir);
  const unetConfig = parts
    ? path.join(parts.sd, 'unet', 'config.json')
    : path.join(dir, 'unet', 'config.json');
  const family = parts ? vidrdFamily : isModelscopeSource(dir) ? modelscopeFamily : undefined;
  if (family === undefined) return undefined;
  let cfg: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(readFileSync(unetConfig, 'utf8'));
    if (isObject(v)) cfg = v;
  } catch {
    // the conversion will name the problem; the listing shows the family's defaults
  }
  return { family: family.id, limits: family.limits(cfg) };
}

/**
 * The family and limits of the model folder `dir`, ready to run or a checkpoint to convert (never
 * throws; unknown folders get the limits of exports rdflow did not make).
 */
export function readModelInfo(dir: string): ModelInfo {
  if (!existsSync(path.join(dir, 'unet', 'model.onnx'))) {
    const source = sourceInfo(dir);
    if (source !== undefined) return source;
    if (path.basename(dir) === 'demo') return demoInfo();
  }
  const rdflow = readIndex(dir).rdflow;
  if (isObject(rdflow) && typeof rdflow.family === 'string') {
    const limits = isLimits(rdflow.limits) ? rdflow.limits : undefined;
    if (rdflow.family === 'demo') return demoInfo(limits);
    if (limits !== undefined) return { family: rdflow.family, limits };
  }
  if (path.basename(dir) === 'demo' && existsSync(path.join(dir, 'demo.json'))) return demoInfo();
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
