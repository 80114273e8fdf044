// Output file names the way ComfyUI's save nodes pick them: a user `filename_prefix` (which may name
// a subfolder, "videos/clip") resolved inside the output folder, plus the next free 5-digit counter:
// clip_00001.mp4, clip_00002.mp4, ...
import { mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import { leftByDeadProcess } from '../process.ts';

export interface OutputTarget {
  /** Absolute path of the file to write. */
  path: string;
  /** Its file name, e.g. "clip_00003.mp4". */
  filename: string;
  /** Folder relative to the output folder with "/" separators; "" at the top. */
  subfolder: string;
}

export class OutputPathError extends Error {
  override name = 'OutputPathError';
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Splits and checks a prefix: relative, "/"-or-"\"-separated, no empty, "." or ".." parts, no NUL. */
export function checkFilenamePrefix(prefix: string): string[] {
  if (prefix.includes('\0')) throw new OutputPathError('filename_prefix must not contain a NUL character');
  if (prefix.trim() === '') throw new OutputPathError('filename_prefix is empty');
  if (path.isAbsolute(prefix) || /^[a-zA-Z]:/.test(prefix) || /^[\\/]/.test(prefix)) {
    throw new OutputPathError(
      `filename_prefix "${prefix}" must be relative to the output folder, not absolute`,
    );
  }
  const parts = prefix.split(/[\\/]/);
  if (parts.some((p) => p === '..')) {
    throw new OutputPathError(
      `filename_prefix "${prefix}" must not contain ".." (it must stay in the output folder)`,
    );
  }
  if (parts.some((p) => p === '' || p === '.')) {
    throw new OutputPathError(`filename_prefix "${prefix}" has an empty or "." path part`);
  }
  return parts;
}

/**
 * Resolves `prefix` under `outputDir` (creating its subfolder) and picks the next free counter for
 * extension `ext`: one more than the highest counter of existing `name_NNNNN.ext` files, counting
 * files still being written under their temporary names, so parallel runs do not collide. Temp
 * files of processes that no longer exist (killed mid-write) are deleted on the way.
 * For PNG frame sequences the writer numbers frames on from the returned counter.
 */
export function resolveOutputPath(outputDir: string, prefix: string, ext: string): OutputTarget {
  const parts = checkFilenamePrefix(prefix);
  const cleanExt = ext.replace(/^\./, '');
  if (!/^[a-zA-Z0-9]+$/.test(cleanExt)) throw new OutputPathError(`invalid file extension "${ext}"`);
  const root = path.resolve(outputDir);
  const base = parts[parts.length - 1];
  const dir = path.resolve(root, ...parts.slice(0, -1));
  if (!inside(root, dir))
    throw new OutputPathError(`filename_prefix "${prefix}" lies outside the output folder`);
  mkdirSync(dir, { recursive: true });
  // A symlinked subfolder must not lead out of the output folder either.
  if (!inside(realpathSync(root), realpathSync(dir))) {
    throw new OutputPathError(`filename_prefix "${prefix}" resolves outside the output folder (symlink)`);
  }
  const re = new RegExp(
    `^\\.?${escapeRegExp(base)}_(\\d{5,})(?:\\.tmp-(\\d+)-[^.]*)?\\.${escapeRegExp(cleanExt)}$`,
  );
  let max = 0;
  for (const name of readdirSync(dir)) {
    const m = re.exec(name);
    if (!m) continue;
    if (m[2] !== undefined && leftByDeadProcess(Number(m[2]))) {
      // Left by a writer whose process was killed before it could clean up: no one will finish it.
      rmSync(path.join(dir, name), { force: true });
      continue;
    }
    max = Math.max(max, Number(m[1]));
  }
  const filename = `${base}_${String(max + 1).padStart(5, '0')}.${cleanExt}`;
  const subfolder = parts.slice(0, -1).join('/');
  return { path: path.join(dir, filename), filename, subfolder };
}
