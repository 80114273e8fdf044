// Model folders in the diffusers / optimum ONNX layout: where each part lives, listing the folders
// under a models directory, and validating one before any run (files present, JSON readable, the
// ONNX models' inputs and outputs fit), with messages that name the file and what is wrong.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseSchedulerConfig } from '../core/ddim.ts';
import { checkTextEncoder, checkUNet, checkVae, type Checked } from './io.ts';
import { readOnnxHeader, type OnnxHeader } from './onnx/header.ts';

/** Paths of a folder's parts, relative to the folder (posix separators, as messages show them). */
export const LAYOUT = {
  index: 'model_index.json',
  tokenizerDir: 'tokenizer',
  tokenizerJson: 'tokenizer/tokenizer.json',
  vocab: 'tokenizer/vocab.json',
  merges: 'tokenizer/merges.txt',
  tokenizerConfig: 'tokenizer/tokenizer_config.json',
  textEncoder: 'text_encoder/model.onnx',
  unet: 'unet/model.onnx',
  vae: 'vae_decoder/model.onnx',
  vaeConfig: 'vae_decoder/config.json',
  scheduler: 'scheduler/scheduler_config.json',
} as const;

export const DEFAULT_SCALING_FACTOR = 0.18215;

/** Said with a missing ONNX part: the folder is made whole by converting the upstream checkpoint. */
const HOW_TO_MAKE =
  'a model folder needs text_encoder/, unet/ and vae_decoder/ ONNX models; make them from a diffusers ' +
  'or VidRD checkpoint with "rdflow convert <diffusers folder> <dest>"';

/** Folders under `modelsDir` that look like model folders (have model_index.json), sorted. */
export function listModelFolders(modelsDir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(modelsDir);
  } catch {
    return [];
  }
  return entries
    .filter((name) => {
      try {
        return (
          statSync(path.join(modelsDir, name)).isDirectory() &&
          existsSync(path.join(modelsDir, name, LAYOUT.index))
        );
      } catch {
        return false;
      }
    })
    .sort();
}

/** Parses a JSON file, or throws an Error whose message names the file and the reason. */
export async function readJsonFile(dir: string, rel: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path.join(dir, rel), 'utf8');
  } catch {
    throw new Error(`${rel}: missing`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${rel}: not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** vae_decoder/config.json's scaling_factor, or the SD default when the file or key is absent. */
export async function readScalingFactor(dir: string): Promise<number> {
  if (!existsSync(path.join(dir, LAYOUT.vaeConfig))) return DEFAULT_SCALING_FACTOR;
  const cfg = await readJsonFile(dir, LAYOUT.vaeConfig);
  const f = isObject(cfg) ? cfg.scaling_factor : undefined;
  if (f === undefined) return DEFAULT_SCALING_FACTOR;
  if (typeof f !== 'number' || !(f > 0))
    throw new Error(`${LAYOUT.vaeConfig}: scaling_factor must be a positive number`);
  return f;
}

/** Checks one ONNX file with a role check; problems come back prefixed with the file. */
async function inspectOnnx<T>(
  dir: string,
  rel: string,
  check: (io: OnnxHeader) => Checked<T>,
  externals: string[],
): Promise<{ problems: string[]; io?: T }> {
  const file = path.join(dir, rel);
  if (!existsSync(file)) return { problems: [`${rel}: missing (${HOW_TO_MAKE})`] };
  let header: OnnxHeader;
  try {
    header = await readOnnxHeader(file);
  } catch (e) {
    return { problems: [`${rel}: cannot be read as ONNX (${e instanceof Error ? e.message : String(e)})`] };
  }
  const problems: string[] = [];
  for (const ext of header.externalFiles) {
    externals.push(path.join(path.dirname(file), ext));
    if (!existsSync(path.join(path.dirname(file), ext))) {
      problems.push(`${path.posix.join(path.posix.dirname(rel), ext)}: missing (external weights of ${rel})`);
    }
  }
  const checked = check(header);
  if (!checked.ok) return { problems: [...problems, ...checked.problems.map((p) => `${rel}: ${p}`)] };
  return { problems, io: checked.io };
}

/** mtime and size of each file (absent ones too): changes when any of them does. */
function filesStamp(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        const st = statSync(file);
        return `${st.mtimeMs}:${st.size}`;
      } catch {
        return '-';
      }
    })
    .join('|');
}

/**
 * Inspections by folder, reused while every file they read (the layout's files and the external
 * weights the ONNX headers name) is unchanged: a workflow validates its model folder on every run,
 * and re-reading the headers and JSON files (tokenizer.json is megabytes in real models) each time
 * is wasted work.
 */
const inspections = new Map<string, { files: string[]; stamp: string; problems: string[] }>();

/**
 * Everything wrong with a model folder, one message per problem naming the file and the reason;
 * [] when it can be loaded. Reads only small files and the ONNX headers (no weights, no sessions).
 */
export async function inspectModelFolder(dir: string): Promise<string[]> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [`${dir}: not a folder`];
  const root = path.resolve(dir);
  const hit = inspections.get(root);
  if (hit && filesStamp(hit.files) === hit.stamp) return [...hit.problems];
  const layoutFiles = Object.values(LAYOUT).map((rel) => path.join(root, rel));
  // Stamped before reading: a file changed meanwhile gets a new stamp, so it is read again next time.
  const stamp = filesStamp(layoutFiles);
  const externals: string[] = [];
  const problems = await inspectUncached(dir, externals);
  const files = [...layoutFiles, ...externals];
  const full = externals.length > 0 ? `${stamp}|${filesStamp(externals)}` : stamp;
  inspections.set(root, { files, stamp: full, problems });
  return [...problems];
}

async function inspectUncached(dir: string, externals: string[]): Promise<string[]> {
  const problems: string[] = [];
  const json = async (rel: string): Promise<unknown> => {
    try {
      return await readJsonFile(dir, rel);
    } catch (e) {
      problems.push((e as Error).message);
      return undefined;
    }
  };
  await json(LAYOUT.index);
  const scheduler = await json(LAYOUT.scheduler);
  if (scheduler !== undefined) {
    try {
      parseSchedulerConfig(scheduler);
    } catch (e) {
      problems.push(`${LAYOUT.scheduler}: ${(e as Error).message}`);
    }
  }
  await json(LAYOUT.tokenizerConfig);
  if (existsSync(path.join(dir, LAYOUT.tokenizerJson))) {
    await json(LAYOUT.tokenizerJson);
  } else {
    for (const rel of [LAYOUT.vocab, LAYOUT.merges]) {
      if (!existsSync(path.join(dir, rel))) {
        problems.push(
          `${rel}: missing (the tokenizer needs ${LAYOUT.tokenizerJson}, or vocab.json and merges.txt)`,
        );
      }
    }
    if (existsSync(path.join(dir, LAYOUT.vocab))) await json(LAYOUT.vocab);
  }
  try {
    await readScalingFactor(dir);
  } catch (e) {
    problems.push((e as Error).message);
  }
  const text = await inspectOnnx(dir, LAYOUT.textEncoder, checkTextEncoder, externals);
  const unet = await inspectOnnx(dir, LAYOUT.unet, checkUNet, externals);
  const vae = await inspectOnnx(dir, LAYOUT.vae, checkVae, externals);
  problems.push(...text.problems, ...unet.problems, ...vae.problems);
  const width = text.io?.width;
  const takes = unet.io?.hiddenWidth;
  if (typeof width === 'number' && typeof takes === 'number' && width !== takes) {
    problems.push(
      `${LAYOUT.unet}: input "${unet.io?.hidden}" takes width ${takes}, but ${LAYOUT.textEncoder} outputs width ${width}`,
    );
  }
  return problems;
}
