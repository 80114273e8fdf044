// Output file names the way ComfyUI's save nodes pick them: a user `filename_prefix` (which may name
// a subfolder, "videos/clip") resolved inside the output folder, plus the next free 5-digit counter:
// clip_00001.mp4, clip_00002.mp4, ...
import { lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { leftByDeadProcess } from '../../core/process.ts';

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
 * `mkdir -p` that fails instead of spinning: Node 20's `mkdirSync(dir, { recursive: true })` loops
 * forever when mkdir answers ENOENT under a folder that exists (/proc/x), so `rdflow run --out
 * /proc/x` hung. Creates each missing component in turn; throws the filesystem's error
 * (ENOENT, EACCES, ENOTDIR, EROFS...) for the first one that cannot be made.
 */
export function makeDirs(dir: string): void {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    const st = lstatSync(cur, { throwIfNoEntry: false });
    if (st !== undefined) {
      if (!st.isDirectory() && !(st.isSymbolicLink() && isDirFollowing(cur))) {
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${cur}'`), { code: 'ENOTDIR' });
      }
      break;
    }
    const parent = path.dirname(cur);
    missing.push(cur);
    if (parent === cur) break;
    cur = parent;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function isDirFollowing(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function escapeError(prefix: string): OutputPathError {
  return new OutputPathError(`filename_prefix "${prefix}" resolves outside the output folder (symlink)`);
}

/**
 * Creates `root/folders...` one component at a time without ever creating anything outside
 * `root`: each existing component is looked at with lstat, and one that is a link must resolve
 * inside root's real path (a plain `mkdir -p` would follow a planted link and create the rest of
 * the folders wherever it points). Returns the real path of the last folder.
 */
function makeFoldersInside(root: string, folders: readonly string[], prefix: string): string {
  makeDirs(root);
  const realRoot = realpathSync(root);
  let cur = realRoot;
  for (const name of folders) {
    const next = path.join(cur, name);
    let st = lstatSync(next, { throwIfNoEntry: false });
    if (st === undefined) {
      try {
        // Not recursive: `cur` is a real folder inside root, so this creates exactly `next`.
        mkdirSync(next);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      st = lstatSync(next);
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = realpathSync(next);
      } catch {
        throw escapeError(prefix);
      }
      if (!inside(realRoot, real)) throw escapeError(prefix);
      cur = real;
    } else if (st.isDirectory()) {
      cur = next;
    } else {
      throw new OutputPathError(`filename_prefix "${prefix}": "${name}" is a file, not a folder`);
    }
  }
  // Whatever changed meanwhile: the folder written into must still resolve inside root.
  if (!inside(realRoot, realpathSync(cur))) throw escapeError(prefix);
  return cur;
}

/**
 * Throws OutputPathError unless `file`'s folder still resolves (links followed) inside the real
 * output folder: writers call it right before renaming a finished temp file into place, since a
 * subfolder may have been swapped for a link while they wrote.
 */
export function assertStillInside(outputDir: string, file: string): void {
  let realRoot: string;
  let realDir: string;
  try {
    realRoot = realpathSync(outputDir);
    realDir = realpathSync(path.dirname(file));
  } catch {
    throw new OutputPathError(`the output subfolder of ${path.basename(file)} is gone`);
  }
  if (!inside(realRoot, realDir)) {
    throw new OutputPathError(`the folder of ${path.basename(file)} now resolves outside the output folder`);
  }
}

/**
 * Resolves `prefix` under `outputDir` (creating its subfolders, never through a link that leads
 * out) and picks the next free counter for
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
  const realDir = makeFoldersInside(root, parts.slice(0, -1), prefix);
  const re = new RegExp(
    `^\\.?${escapeRegExp(base)}_(\\d{5,})(?:\\.tmp-(\\d+)-[^.]*)?\\.${escapeRegExp(cleanExt)}$`,
  );
  let max = 0;
  for (const name of readdirSync(realDir)) {
    const m = re.exec(name);
    if (!m) continue;
    if (m[2] !== undefined && leftByDeadProcess(Number(m[2]))) {
      // Left by a writer whose process was killed before it could clean up: no one will finish it.
      rmSync(path.join(realDir, name), { force: true });
      continue;
    }
    max = Math.max(max, Number(m[1]));
  }
  const filename = `${base}_${String(max + 1).padStart(5, '0')}.${cleanExt}`;
  const subfolder = parts.slice(0, -1).join('/');
  return { path: path.join(dir, filename), filename, subfolder };
}
