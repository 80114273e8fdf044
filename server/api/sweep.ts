// What a killed server (kill -9, power loss) leaves on disk, removed when the next one starts:
// video and latent temp files of writers whose process is gone, half-received uploads, and the
// engine's spill cache. Nothing here is ever a finished file: every name swept is a temporary one.
import fs from 'node:fs';
import path from 'node:path';
import { leftByDeadProcess } from '../core/process.ts';

/** `.clip_00001.tmp-<pid>-<tag>.mp4` (video writers), `.clip_00001.tmp-<pid>.npy` (SaveLatent). */
const WRITER_TEMP = /^\..*\.tmp-(\d+)(?:-[^.]*)?(?:\.[A-Za-z0-9]+)?$/;
/** `.upload-<pid>-<uuid>.partial`; older servers wrote `.upload-<uuid>.partial` (no pid). */
const UPLOAD_TEMP = /^\.upload-(?:(\d+)-)?[0-9a-f-]{36}\.partial$/;
const SPILL_DIR = /^rdflow-spill-/;

/** Folder depth the sweep descends to (output subfolders come from filename_prefix). */
const MAX_DEPTH = 16;

export interface SweepResult {
  files: number;
  bytes: number;
}

function removeFile(file: string, result: SweepResult): void {
  try {
    const st = fs.lstatSync(file);
    fs.rmSync(file, { force: true });
    result.files += 1;
    result.bytes += st.size;
  } catch {
    // Gone already, or not ours to remove: leave it.
  }
}

function dirBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    files += 1;
    try {
      bytes += fs.lstatSync(path.join(e.parentPath, e.name)).size;
    } catch {
      // raced with something else: not counted
    }
  }
  return { files, bytes };
}

/** Walks `dir` without following links, removing temp files whose writer process has exited. */
function sweepTree(dir: string, depth: number, result: SweepResult, match: (name: string) => boolean): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory() && depth < MAX_DEPTH) sweepTree(full, depth + 1, result, match);
    else if (e.isFile() && match(e.name)) removeFile(full, result);
  }
}

function deadWriter(name: string): boolean {
  const m = WRITER_TEMP.exec(name);
  return m !== null && leftByDeadProcess(Number(m[1]));
}

function deadUpload(name: string): boolean {
  const m = UPLOAD_TEMP.exec(name);
  return m !== null && (m[1] === undefined || leftByDeadProcess(Number(m[1])));
}

/**
 * Removes leftovers under the server's folders. Called at start, while this server holds the data
 * dir's lock and before it runs anything: the spill cache folders in `temp` belong to the server
 * of this data dir, so all of them are stale; temp files in `output` and `input` are removed only
 * when the process named in them has exited (a CLI run may be writing into the same output folder).
 */
export function sweepLeftovers(paths: { output: string; input: string; temp: string }): SweepResult {
  const result: SweepResult = { files: 0, bytes: 0 };
  sweepTree(paths.output, 0, result, deadWriter);
  sweepTree(paths.input, 0, result, (name) => deadUpload(name) || deadWriter(name));
  let temps: fs.Dirent[] = [];
  try {
    temps = fs.readdirSync(paths.temp, { withFileTypes: true });
  } catch {
    // no temp folder yet
  }
  for (const e of temps) {
    if (!e.isDirectory() || !SPILL_DIR.test(e.name)) continue;
    const dir = path.join(paths.temp, e.name);
    try {
      const size = dirBytes(dir);
      fs.rmSync(dir, { recursive: true, force: true });
      result.files += size.files;
      result.bytes += size.bytes;
    } catch {
      // left for the next start
    }
  }
  sweepTree(paths.temp, 0, result, deadWriter);
  return result;
}
