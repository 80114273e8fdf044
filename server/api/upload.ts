// POST /upload/image: multipart `image` (file), `subfolder`, `overwrite`, `type` (ComfyUI's fields).
// The file streams to a temp name inside the target root first (fields may come after the file:
// ComfyUI's frontend appends `subfolder` after `image`), then is renamed into place, so a
// half-received upload never appears under its name.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import type { UploadResult } from '../protocol/index.ts';
import { PathError, assertWritableInside, resolveNew } from './paths.ts';

export type { UploadResult } from '../protocol/index.ts';

export class UploadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Longest file or folder name most filesystems take (ext4, APFS, NTFS: 255 bytes or units). */
export const MAX_NAME_BYTES = 255;

/**
 * Why an uploaded file name is refused, or undefined. Names are kept as sent, in any script
 * ("vidéo 東京.png"), or refused; never silently rewritten, so the name the client gets back is
 * the one it sent. Refused: empty, over 255 UTF-8 bytes, a path separator (/ or \), a control
 * character (U+0000–U+001F, U+007F), a leading "." (hidden; /view does not serve hidden files).
 */
export function badUploadName(name: string): string | undefined {
  if (name === '') return 'the file name is empty';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `the file name is longer than ${MAX_NAME_BYTES} bytes`;
  if (name.includes('/') || name.includes('\\')) return 'the file name contains a path separator';
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(name)) return 'the file name contains a control character';
  if (name.startsWith('.')) return 'the file name starts with "." (hidden files are not served)';
  return undefined;
}

/** "name.png" → "name (1).png", "name (2).png", ... (ComfyUI's rename when not overwriting). */
function numbered(name: string, n: number): string {
  const ext = path.extname(name);
  return `${name.slice(0, name.length - ext.length)} (${n})${ext}`;
}

export async function handleUpload(
  req: IncomingMessage,
  roots: Record<'input' | 'output' | 'temp', string>,
  maxBytes: number,
): Promise<UploadResult> {
  const fields: Record<string, string> = {};
  let tempFile: string | undefined;
  let originalName: string | undefined;
  let truncated = false;
  let bb: busboy.Busboy;
  try {
    // preservePath: a client-sent "../x.png" is refused, not silently flattened.
    bb = busboy({
      headers: req.headers,
      preservePath: true,
      // Browsers and fetch send UTF-8 file names; busboy's default (latin1) turned "é" into "Ã©".
      defParamCharset: 'utf8',
      limits: { fileSize: maxBytes, files: 1, fields: 20, parts: 30 },
    });
  } catch {
    throw new UploadError(400, 'Expected a multipart/form-data body with an "image" file.');
  }
  // The temp file lives in the input root (same filesystem as the usual target, so rename works).
  const stagingRoot = roots.input;
  await fs.promises.mkdir(stagingRoot, { recursive: true });
  const writes: Promise<void>[] = [];
  bb.on('field', (name, value) => {
    fields[name] = value;
  });
  bb.on('file', (name, stream, info) => {
    if (name !== 'image' || tempFile) {
      stream.resume();
      return;
    }
    originalName = info.filename;
    // The pid lets the next server start tell a stale partial upload (process gone) from a live one.
    tempFile = path.join(stagingRoot, `.upload-${process.pid}-${crypto.randomUUID()}.partial`);
    stream.on('limit', () => {
      truncated = true;
    });
    writes.push(pipeline(stream, fs.createWriteStream(tempFile, { flags: 'wx' })));
  });
  try {
    await pipeline(req, bb);
    await Promise.all(writes);
  } catch {
    if (tempFile) await fs.promises.rm(tempFile, { force: true });
    throw new UploadError(400, 'Malformed multipart body.');
  }
  const fail = async (status: number, message: string): Promise<never> => {
    if (tempFile) await fs.promises.rm(tempFile, { force: true });
    throw new UploadError(status, message);
  };
  if (!tempFile || originalName === undefined) return fail(400, 'No "image" file in the upload.');
  if (truncated) return fail(413, `The upload exceeds ${maxBytes} bytes.`);
  const type = fields.type ?? 'input';
  if (type !== 'input' && type !== 'output' && type !== 'temp') {
    return fail(400, `type must be input, output or temp, not ${JSON.stringify(type)}.`);
  }
  const badName = badUploadName(originalName);
  if (badName) return fail(400, `Upload refused: ${badName}.`);
  const subfolder = fields.subfolder ?? '';
  if (subfolder.split('/').some((seg) => Buffer.byteLength(seg) > MAX_NAME_BYTES)) {
    return fail(400, `Upload refused: a subfolder name is longer than ${MAX_NAME_BYTES} bytes.`);
  }
  const overwrite = fields.overwrite === 'true' || fields.overwrite === '1';
  const root = path.resolve(roots[type]);
  try {
    let target = resolveNew(root, subfolder, originalName);
    await fs.promises.mkdir(root, { recursive: true });
    await assertWritableInside(root, path.dirname(target));
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    let name = originalName;
    if (!overwrite) {
      for (let n = 1; fs.existsSync(target); n++) {
        name = numbered(originalName, n);
        target = resolveNew(root, subfolder, name);
      }
      if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
        return fail(400, `Upload refused: ${name} would be longer than ${MAX_NAME_BYTES} bytes.`);
      }
    }
    const existing = await fs.promises.lstat(target).catch(() => undefined);
    // Never write through a symlink planted at the target name.
    if (existing?.isSymbolicLink()) return fail(403, 'The target is a symbolic link.');
    await fs.promises.rename(tempFile, target).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EXDEV') throw err;
      await fs.promises.copyFile(tempFile!, target);
      await fs.promises.rm(tempFile!, { force: true });
    });
    return { name, subfolder, type };
  } catch (err) {
    if (err instanceof PathError) return fail(err.status, err.message);
    if (err instanceof UploadError) throw err;
    // The client's name or folder is what the filesystem refused: that is a 4xx, not our failure.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENAMETOOLONG') return fail(400, 'Upload refused: the path is too long.');
    if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR') {
      return fail(409, 'Upload refused: a file is in the way of the subfolder or name.');
    }
    return fail(500, 'Could not store the upload.');
  }
}
