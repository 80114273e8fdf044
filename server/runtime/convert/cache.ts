// LoadVideoModel pointed at a source checkpoint (a diffusers or VidRD folder) converts it once into
// a cache under the models folder and reuses that after; a source whose files changed (sizes or
// mtimes, recorded in the converted folder) or an older converter's output is converted again.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FAMILIES, planConversion } from '../families/index.ts';
import type { ModelLimits } from '../families/types.ts';
import { findParts } from '../families/vidrd/index.ts';
import {
  CONVERTER_VERSION,
  convertModel,
  sourceStamp,
  type ConvertedInfo,
  type ConvertProgress,
} from './index.ts';

/** The cache folder under the models folder (hidden: not listed as a model of its own). */
export const CONVERTED_DIR = '.converted';

/** Whether `dir` is a source checkpoint some family converts (and not an ONNX folder). */
export async function isConvertibleSource(dir: string): Promise<boolean> {
  if (existsSync(path.join(dir, 'unet', 'model.onnx'))) return false;
  for (const f of FAMILIES) {
    try {
      if (await f.recognise(dir)) return true;
    } catch {
      // unreadable config: not ours to convert
    }
  }
  return false;
}

/** Where the conversion of `srcDir` lives: its name plus a hash of its absolute path. */
export function convertedPath(srcDir: string, modelsDir: string): string {
  const abs = path.resolve(srcDir);
  const hash = createHash('sha256').update(abs).digest('hex').slice(0, 10);
  return path.join(modelsDir, CONVERTED_DIR, `${path.basename(abs)}-${hash}`);
}

/** Whether the cached conversion of `srcDir` exists and matches the source's files and converter. */
export async function isUpToDate(srcDir: string, dest: string): Promise<boolean> {
  let info: ConvertedInfo | undefined;
  try {
    const index = JSON.parse(await readFile(path.join(dest, 'model_index.json'), 'utf8')) as {
      rdflow?: ConvertedInfo;
    };
    info = index.rdflow;
  } catch {
    return false;
  }
  // A hand-edited or foreign index: anything but a stamp object means convert again.
  if (info?.converter !== CONVERTER_VERSION || typeof info.stamp !== 'object' || info.stamp === null) {
    return false;
  }
  const plan = await planConversion(path.resolve(srcDir));
  const now = sourceStamp(plan);
  const keys = Object.keys(now);
  return keys.length === Object.keys(info.stamp).length && keys.every((k) => info.stamp[k] === now[k]);
}

/** A conversion in progress, shared by every caller that asked for the same DEST. */
interface Shared {
  readonly job: Promise<string>;
  /** Aborts the conversion: only once every caller waiting for it has been aborted. */
  readonly stop: AbortController;
  readonly listeners: Set<(p: ConvertProgress) => void>;
  waiting: number;
}

const inFlight = new Map<string, Shared>();

/**
 * The ONNX folder for source `srcDir`: the cached conversion when up to date, else a new one
 * (float32 weights). Concurrent callers share one conversion; each gets its progress, and one
 * caller's abort ends only its own wait (the conversion stops when no caller is left).
 */
export function ensureConverted(
  srcDir: string,
  modelsDir: string,
  opts: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal } = {},
): Promise<string> {
  const dest = convertedPath(srcDir, modelsDir);
  let shared = inFlight.get(dest);
  if (shared === undefined) {
    const stop = new AbortController();
    const listeners = new Set<(p: ConvertProgress) => void>();
    const job = (async () => {
      if (await isUpToDate(srcDir, dest)) return dest;
      await convertModel(srcDir, dest, {
        force: true,
        signal: stop.signal,
        onProgress: (p) => listeners.forEach((f) => f(p)),
      });
      return dest;
    })();
    const s: Shared = { job, stop, listeners, waiting: 0 };
    const clear = () => {
      if (inFlight.get(dest) === s) inFlight.delete(dest);
    };
    job.then(clear, clear);
    inFlight.set(dest, s);
    shared = s;
  }
  return wait(shared, dest, opts);
}

function wait(
  s: Shared,
  dest: string,
  opts: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal },
): Promise<string> {
  const { signal, onProgress } = opts;
  return new Promise<string>((resolve, reject) => {
    const leave = () => {
      if (onProgress) s.listeners.delete(onProgress);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      leave();
      if (--s.waiting === 0) {
        // Nobody waits any more: stop it, and let a later caller start afresh rather than join it.
        if (inFlight.get(dest) === s) inFlight.delete(dest);
        s.stop.abort(signal?.reason);
      }
      reject(signal?.reason as Error);
    };
    s.waiting++;
    if (onProgress) s.listeners.add(onProgress);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    s.job.then(
      (v) => {
        leave();
        resolve(v);
      },
      (e: unknown) => {
        leave();
        reject(e as Error);
      },
    );
  });
}

/**
 * Folders under `modelsDir` that are VidRD releases (they have no model_index.json of their own, so
 * the ONNX folder listing misses them); hidden folders (the conversion cache) are skipped.
 */
export function listReleaseFolders(modelsDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(modelsDir).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  return names.filter((name) => {
    const dir = path.join(modelsDir, name);
    try {
      return statSync(dir).isDirectory() && findParts(dir) !== null;
    } catch {
      return false;
    }
  });
}

/** Family and limits of a source checkpoint, from its configs (what its conversion will record). */
export async function sourceInfo(srcDir: string): Promise<{ family: string; limits: ModelLimits }> {
  const plan = await planConversion(path.resolve(srcDir));
  return { family: plan.family, limits: plan.limits };
}
