// Confines /view and /upload to their folders. A name is refused before it touches the disk if it
// could mean anything but "this file below that folder": `..`, absolute, NUL, backslashes, and
// anything still percent-encoded after the one decoding HTTP does (double encoding); then the
// resolved real path (symlinks followed) must still lie inside the folder's real path.
import fs from 'node:fs';
import path from 'node:path';

export class PathError extends Error {
  constructor(
    readonly status: 400 | 403 | 404,
    message: string,
  ) {
    super(message);
  }
}

/** Why a path fragment (filename or subfolder, already URL-decoded once) is unsafe, or undefined. */
export function unsafeFragment(value: string, opts: { allowSlash: boolean }): string | undefined {
  if (value.includes('\0')) return 'contains a NUL byte';
  if (value.includes('\\')) return 'contains a backslash';
  if (/%[0-9a-f]{2}/i.test(value)) return 'contains a percent-encoded sequence';
  if (path.isAbsolute(value) || /^[a-z]:/i.test(value)) return 'is absolute';
  if (!opts.allowSlash && value.includes('/')) return 'contains a path separator';
  if (value.split('/').some((seg) => seg === '..' || seg === '.')) return 'contains a . or .. segment';
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(value)) return 'contains a control character';
  return undefined;
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The real path of `subfolder/filename` inside `root`, for reading. Throws PathError: 400 for an
 * unsafe name, 403 for anything that resolves outside `root`, 404 when missing or not a file.
 */
export async function resolveExisting(root: string, subfolder: string, filename: string): Promise<string> {
  const target = resolveNew(root, subfolder, filename);
  let real: string;
  let realRoot: string;
  try {
    realRoot = await fs.promises.realpath(root);
    real = await fs.promises.realpath(target);
  } catch {
    throw new PathError(404, 'File not found.');
  }
  if (!isInside(realRoot, real)) throw new PathError(403, 'The path resolves outside its folder.');
  const stat = await fs.promises.stat(real);
  if (!stat.isFile()) throw new PathError(404, 'File not found.');
  return real;
}

/** The lexical path of `subfolder/filename` inside `root` (for writing); same checks, no disk access. */
export function resolveNew(root: string, subfolder: string, filename: string): string {
  const badSub = unsafeFragment(subfolder, { allowSlash: true });
  if (badSub) throw new PathError(400, `subfolder ${badSub}.`);
  const badName = unsafeFragment(filename, { allowSlash: false });
  if (badName) throw new PathError(400, `filename ${badName}.`);
  if (filename === '') throw new PathError(400, 'filename is empty.');
  const base = path.resolve(root);
  const target = path.resolve(base, subfolder, filename);
  if (!isInside(base, target) || target === base)
    throw new PathError(403, 'The path resolves outside its folder.');
  return target;
}

/**
 * Checks that a folder we are about to write into does not escape `root` through a symlink
 * (its nearest existing ancestor's real path must lie inside root's real path).
 */
export async function assertWritableInside(root: string, dir: string): Promise<void> {
  const realRoot = await fs.promises.realpath(root);
  let probe = dir;
  for (;;) {
    try {
      const real = await fs.promises.realpath(probe);
      if (!isInside(realRoot, real)) throw new PathError(403, 'The path resolves outside its folder.');
      return;
    } catch (err) {
      if (err instanceof PathError) throw err;
      const parent = path.dirname(probe);
      if (parent === probe) throw new PathError(403, 'The path resolves outside its folder.');
      probe = parent;
    }
  }
}

/**
 * Whether `subfolder/filename` names something that is not a finished file: any hidden segment
 * (every temporary name rdflow writes is hidden: `.name.tmp-<pid>-<tag>.mp4` from the video
 * writers, `.upload-<pid>-<uuid>.partial` from uploads, `.name.tmp-<pid>.npy`), anything with a
 * `.tmp-` or `.partial` marker, and the engine's spill-cache folders (`rdflow-spill-*` in temp).
 */
export function temporaryName(subfolder: string, filename: string): boolean {
  const segments = [...subfolder.split('/'), filename].filter((s) => s !== '');
  return segments.some(
    (s) =>
      s.startsWith('.') || s.includes('.tmp-') || s.endsWith('.partial') || s.startsWith('rdflow-spill-'),
  );
}
