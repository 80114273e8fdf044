// File-system helpers shared by the nodes that read models and inputs: resolving a user-given name
// inside one root folder (never outside it), and a change fingerprint from file sizes and mtimes.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Resolves `name` (a relative name with `/` separators) inside `root`. Rejects empty segments,
 * `.` and `..` and absolute names, so the result is always under `root`.
 */
export function resolveInside(root: string, name: string): string {
  const parts = name.split(/[\\/]/);
  if (name === '' || path.isAbsolute(name) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`"${name}" is not a plain name inside ${root} (no "..", no empty or absolute parts)`);
  }
  const resolved = path.resolve(root, ...parts);
  const rel = path.relative(path.resolve(root), resolved);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`"${name}" lies outside ${root}`);
  return resolved;
}

/**
 * `resolveInside` for a file that must exist, also checked after following symlinks: a link in the
 * folder must not lead out of it.
 */
export async function resolveExistingInside(root: string, name: string): Promise<string> {
  const file = resolveInside(root, name);
  const [realRoot, realFile] = await Promise.all([realpath(root), realpath(file)]);
  const rel = path.relative(realRoot, realFile);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`"${name}" links outside ${root}`);
  return file;
}

/** Every regular file under `dir` (relative paths with `/`), sorted; [] when `dir` is missing. */
export async function listFilesRecursive(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(child);
      else if (e.isFile() || (e.isSymbolicLink() && (await isFile(path.join(dir, child))))) out.push(child);
    }
  }
  await walk('');
  return out.sort();
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Synchronous listing of files ending in `ext` under `dir` (COMBO option lists are synchronous). */
export function listFilesWithExt(dir: string, ext: string): string[] {
  const out: string[] = [];
  function walk(rel: string): void {
    let entries;
    try {
      entries = readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) walk(child);
      else if (!e.isDirectory() && e.name.toLowerCase().endsWith(ext)) out.push(child);
    }
  }
  walk('');
  return out.sort();
}

/** A short hash of size and mtime of each file under `dir` (or of `dir` itself when a file). */
export async function filesFingerprint(target: string): Promise<string> {
  const hash = createHash('sha256');
  let s;
  try {
    s = await stat(target);
  } catch {
    return 'missing';
  }
  if (s.isFile()) {
    hash.update(`${s.size}:${s.mtimeMs}`);
  } else {
    for (const rel of await listFilesRecursive(target)) {
      const fs = await stat(path.join(target, rel));
      hash.update(`${rel}:${fs.size}:${fs.mtimeMs}\n`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}
