// What is in a models folder, for `rdflow models`, LoadVideoModel's list and /object_info: each
// ONNX folder with its family, weight type, size and source, and each source checkpoint (a
// diffusers or VidRD folder) that LoadVideoModel converts on first use.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FAMILIES } from '../families/index.ts';
import { LAYOUT } from '../folder.ts';
import { readOnnxHeader } from '../onnx/header.ts';
import { readModelInfo } from '../families/info.ts';
import type { ModelLimits } from '../families/types.ts';
import type { ConvertedInfo } from './index.ts';

export interface ModelListing {
  readonly name: string;
  /** modelscope, vidrd, demo, or "onnx" for an export rdflow did not make. */
  readonly family: string;
  /** Weight type of the UNet (float32, float16), or "source" for a checkpoint still to convert. */
  readonly dtype: string;
  /** Bytes on disk. */
  readonly bytes: number;
  /** Where a converted model came from. */
  readonly source?: string;
  /** "onnx" (ready to run) or "checkpoint" (converted on first use). */
  readonly kind: 'onnx' | 'checkpoint';
  /** What it can generate (frames, sizes). */
  readonly limits: ModelLimits;
}

/**
 * Bytes of the files under `dir`. Links to files count as their targets (a Hugging Face cache
 * snapshot is all links to blobs); links to folders are not followed (they could loop).
 */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await folderBytes(p);
    else if (entry.isFile() || entry.isSymbolicLink()) {
      const st = await stat(p).catch(() => undefined);
      if (st?.isFile()) total += st.size;
    }
  }
  return total;
}

async function rdflowInfo(dir: string): Promise<Partial<ConvertedInfo> & { demo?: boolean }> {
  try {
    const index = JSON.parse(await readFile(path.join(dir, LAYOUT.index), 'utf8')) as Record<string, unknown>;
    const info = index.rdflow;
    return typeof info === 'object' && info !== null ? (info as Partial<ConvertedInfo>) : {};
  } catch {
    return {};
  }
}

/** One folder's listing, or null when it is neither an ONNX model nor a checkpoint rdflow converts. */
async function describeModel(dir: string, name = path.basename(dir)): Promise<ModelListing | null> {
  const { family, limits } = readModelInfo(dir);
  if (existsSync(path.join(dir, LAYOUT.unet))) {
    const info = await rdflowInfo(dir);
    let dtype = info.dtype ?? 'unknown';
    if (info.dtype === undefined) {
      try {
        const header = await readOnnxHeader(path.join(dir, LAYOUT.unet));
        dtype = header.inputs.find((i) => i.name === 'sample')?.type ?? header.inputs[0]?.type ?? 'unknown';
      } catch {
        dtype = 'unreadable';
      }
    }
    return { name, family, dtype, bytes: await folderBytes(dir), source: info.source, kind: 'onnx', limits };
  }
  for (const f of FAMILIES) {
    if (await f.recognise(dir).catch(() => false)) {
      return { name, family, dtype: 'source', bytes: await folderBytes(dir), kind: 'checkpoint', limits };
    }
  }
  return null;
}

/** The models of a models folder, sorted by name (hidden folders, such as the conversion cache, skipped). */
export async function listModels(modelsDir: string): Promise<ModelListing[]> {
  let names: string[];
  try {
    names = readdirSync(modelsDir).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  const out: ModelListing[] = [];
  for (const name of names.sort()) {
    const dir = path.join(modelsDir, name);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    const m = await describeModel(dir, name);
    if (m !== null) out.push(m);
  }
  return out;
}
