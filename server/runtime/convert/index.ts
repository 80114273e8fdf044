// `rdflow convert`: a source checkpoint folder (diffusers text-to-video pipeline, VidRD release)
// → the ONNX folder layout LoadVideoModel opens. Every component's graph is built and every key
// accounted for before a byte is written; weights then stream one tensor at a time into each
// component's external data file, inside a temporary folder renamed to DEST only when complete,
// so an interrupted or failed conversion leaves nothing that looks like a model.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { leftByDeadProcess } from '../../core/process.ts';
import { planConversion } from '../families/index.ts';
import { folderBytes } from './catalog.ts';
import { planVidrd, type VidrdParts } from '../families/vidrd/index.ts';
import type { ModelLimits } from '../families/types.ts';
import type { WeightSource } from '../weights/types.ts';
import { assertStrict, type Net, type WeightDType } from './net.ts';
import type { ConversionPlan } from './plan.ts';

/** Bumped when the converter's output changes, so cached conversions are redone. */
export const CONVERTER_VERSION = 1;

export type ConvertProgress =
  | { phase: 'start'; family: string; components: { name: string; bytes: number; parameters: number }[] }
  | { phase: 'write'; component: string; done: number; total: number }
  | { phase: 'component-done'; component: string; bytes: number; seconds: number };

export interface ConvertOptions {
  dtype?: WeightDType;
  /** Replace an existing DEST. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: ConvertProgress) => void;
  /** A VidRD release whose parts lie apart (then `src` is only where the stamp paths are relative to). */
  vidrdParts?: VidrdParts;
}

export interface ComponentSummary {
  readonly name: string;
  readonly parameters: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly notes: readonly string[];
}

export interface ConvertSummary {
  readonly family: string;
  readonly source: string;
  readonly dest: string;
  readonly dtype: WeightDType;
  readonly components: readonly ComponentSummary[];
  readonly notes: readonly string[];
  readonly seconds: number;
  /** Size of DEST on disk. */
  readonly bytes: number;
}

/** What model_index.json's "rdflow" block records about a converted folder. */
export interface ConvertedInfo {
  family: string;
  dtype: WeightDType;
  source: string;
  converter: number;
  /** "relative path": "size:mtimeMs" of each source file the conversion read. */
  stamp: Record<string, string>;
  limits: ModelLimits;
}

/** Sizes and mtimes of the files that identify a source: a changed source converts again. */
export function sourceStamp(plan: Pick<ConversionPlan, 'source' | 'stampFiles'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of plan.stampFiles) {
    const rel = path.relative(plan.source, file).split(path.sep).join('/');
    try {
      const st = statSync(file);
      out[rel] = `${st.size}:${Math.round(st.mtimeMs)}`;
    } catch {
      out[rel] = '-';
    }
  }
  return out;
}

function partialPrefix(dest: string): string {
  return `.${path.basename(dest)}.partial-`;
}

/**
 * Cleans up after converter processes killed earlier beside `dest`: their temporary folders
 * (`<prefix><pid>-<random>`) are removed; an `.old` folder (a replaced model, moved aside for the
 * instant between two renames) is put back when the process died before the new one took DEST.
 */
async function sweepPartials(dest: string): Promise<void> {
  const parent = path.dirname(dest);
  const prefix = partialPrefix(dest);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = /^(\d+)/.exec(name.slice(prefix.length))?.[1];
    if (pid === undefined || !leftByDeadProcess(Number(pid))) continue;
    const at = path.join(parent, name);
    if (name.endsWith('.old') && !existsSync(dest)) await rename(at, dest);
    else await rm(at, { recursive: true, force: true });
  }
}

function describeFsError(e: unknown, what: string): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') return new Error(`disk full while writing ${what}`, { cause: e });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new Error(`cannot write ${what}: permission denied`, { cause: e });
  }
  return e instanceof Error ? e : new Error(String(e));
}

/** Converts SRC into DEST. Throws (leaving nothing at DEST) on any problem, naming file, key and reason. */
export async function convertModel(
  src: string,
  dest: string,
  opts: ConvertOptions = {},
): Promise<ConvertSummary> {
  const started = performance.now();
  const dtype = opts.dtype ?? 'float32';
  const source = path.resolve(src);
  const target = path.resolve(dest);
  const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer + path.sep);
  if (within(target, source)) {
    throw new Error(`${dest} is inside the source folder ${src}; choose another destination`);
  }
  // DEST is replaced as a whole (--force, or the conversion cache): one that holds the source
  // would take the source with it.
  const parts = opts.vidrdParts === undefined ? [] : Object.values(opts.vidrdParts);
  for (const part of [source, ...parts.map((p) => path.resolve(p))]) {
    if (within(part, target)) {
      throw new Error(`${dest} contains the source ${part}; choose another destination`);
    }
  }
  if (existsSync(target) && !opts.force)
    throw new Error(`${dest} already exists (use --force to replace it)`);
  const plan =
    opts.vidrdParts === undefined
      ? await planConversion(source)
      : await planVidrd(
          {
            sd: path.resolve(opts.vidrdParts.sd),
            checkpoint: path.resolve(opts.vidrdParts.checkpoint),
            vae: path.resolve(opts.vidrdParts.vae),
          },
          source,
        );

  // Taken before any weight is read: a source that changes while it is read must not be recorded
  // as the state the output was made from (the cache would then reuse a mixed conversion).
  const stamp = sourceStamp(plan);

  // Build every graph and check every key before writing anything.
  const opened: WeightSource[] = [];
  const built: { name: string; net: Net; notes: string[] }[] = [];
  try {
    const problems: string[] = [];
    for (const job of plan.components) {
      let src: WeightSource;
      try {
        src = await job.open();
      } catch (e) {
        problems.push(`${job.label}: ${(e as Error).message}`);
        continue;
      }
      opened.push(src);
      try {
        const { net, notes } = job.build(src, dtype);
        // Collected, not thrown: every component's problems are listed in one error.
        try {
          assertStrict(job.label, net.report());
        } catch (e) {
          problems.push((e as Error).message);
        }
        built.push({ name: job.dir, net, notes });
      } catch (e) {
        problems.push(`${job.label}: ${(e as Error).message}`);
      }
    }
    if (problems.length > 0) throw new Error(problems.join('\n'));
    opts.onProgress?.({
      phase: 'start',
      family: plan.family,
      components: built.map((b) => ({
        name: b.name,
        bytes: b.net.b.lazyBytes(),
        parameters: b.net.parameters(),
      })),
    });

    await mkdir(path.dirname(target), { recursive: true });
    await sweepPartials(target);
    // Unique per call: two conversions into one DEST in this process must not share (and delete)
    // each other's temporary folder.
    const tmp = path.join(
      path.dirname(target),
      `${partialPrefix(target)}${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    const components: ComponentSummary[] = [];
    let bytes = 0;
    try {
      await mkdir(tmp, { recursive: true });
      for (const { name, net, notes } of built) {
        const t0 = performance.now();
        const total = net.b.lazyBytes();
        let done = 0;
        const file = path.join(tmp, name, 'model.onnx');
        try {
          await net.b.saveStreaming(file, {
            externalData: 'model.onnx_data',
            onWeight: (_w, bytes) => {
              opts.signal?.throwIfAborted();
              done += bytes;
              opts.onProgress?.({ phase: 'write', component: name, done: Math.min(done, total), total });
            },
          });
        } catch (e) {
          throw describeFsError(e, `${name}/model.onnx`);
        }
        const seconds = (performance.now() - t0) / 1000;
        const bytes = (await stat(file)).size + (await stat(path.join(tmp, name, 'model.onnx_data'))).size;
        opts.onProgress?.({ phase: 'component-done', component: name, bytes, seconds });
        components.push({ name, parameters: net.parameters(), bytes, seconds, notes });
      }
      for (const { from, to } of plan.copies) {
        await mkdir(path.dirname(path.join(tmp, to)), { recursive: true });
        await copyFile(from, path.join(tmp, to));
      }
      const info: ConvertedInfo = {
        family: plan.family,
        dtype,
        source,
        converter: CONVERTER_VERSION,
        stamp,
        limits: plan.limits,
      };
      for (const [rel, value] of Object.entries(plan.json)) {
        const v = rel === 'model_index.json' ? { ...(value as object), rdflow: info } : value;
        await mkdir(path.dirname(path.join(tmp, rel)), { recursive: true });
        await writeFile(path.join(tmp, rel), `${JSON.stringify(v, null, 2)}\n`);
      }
      opts.signal?.throwIfAborted();
      const now = sourceStamp(plan);
      const changed = Object.keys(now).filter((k) => now[k] !== stamp[k]);
      if (changed.length > 0) {
        throw new Error(
          `${src}: the source changed while it was being converted (${changed.join(', ')}); convert it again`,
        );
      }
      // Measured before the rename: once at DEST, a concurrent conversion may replace it.
      bytes = await folderBytes(tmp);
      await replaceFolder(tmp, target);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return {
      family: plan.family,
      source,
      dest: target,
      dtype,
      components,
      notes: plan.notes,
      seconds: (performance.now() - started) / 1000,
      bytes,
    };
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
}

/** Puts the finished folder at `target`, replacing what is there only once the new one is whole. */
async function replaceFolder(tmp: string, target: string): Promise<void> {
  const olds: string[] = [];
  const code = (e: unknown) => (e as NodeJS.ErrnoException).code;
  for (let attempt = 0; ; attempt++) {
    try {
      // Takes an absent or empty target in one step.
      await rename(tmp, target);
      break;
    } catch (e) {
      // Something is there (a concurrent conversion into the same DEST may have put it there).
      if (!['ENOTEMPTY', 'EEXIST', 'ENOTDIR'].includes(code(e) ?? '') || attempt >= 5) throw e;
    }
    const old = `${tmp}-${attempt}.old`;
    try {
      await rename(target, old);
      olds.push(old);
    } catch (e) {
      // Another conversion moved it aside first: try to take the place again.
      if (code(e) !== 'ENOENT') throw e;
    }
  }
  for (const old of olds) await rm(old, { recursive: true, force: true });
}
