// Where the ffmpeg/ffprobe binaries are: the ones shipped inside the @ffmpeg-installer and
// @ffprobe-installer npm packages (no system ffmpeg needed). RDFLOW_FFMPEG / RDFLOW_FFPROBE override
// the path (tests use them to simulate a missing or failing binary).
import { execFile } from 'node:child_process';
import { accessSync, chmodSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export class FfmpegMissingError extends Error {
  override name = 'FfmpegMissingError';
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves a binary from an env override or an installer package; makes it executable if needed. */
function locate(tool: 'ffmpeg' | 'ffprobe', envVar: string, pkg: string): string {
  const override = process.env[envVar];
  let file: string;
  if (override !== undefined && override !== '') {
    file = override;
  } else {
    try {
      // The installer packages are CommonJS and throw (sometimes a bare string) when the
      // platform package or its binary is missing.
      file = (require(pkg) as { path: string }).path;
    } catch (e) {
      throw new FfmpegMissingError(
        `${tool} not found: the npm package ${pkg} has no binary for ${process.platform}-${process.arch} ` +
          `(${e instanceof Error ? e.message : String(e)}). Run "npm install" or set ${envVar}.`,
      );
    }
  }
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    // reported below
  }
  if (!isFile)
    throw new FfmpegMissingError(`${tool} not found at ${file} (set ${envVar} or reinstall ${pkg})`);
  if (!executable(file)) {
    // npm skips the package's `chmod u+x` postinstall under --ignore-scripts.
    try {
      chmodSync(file, statSync(file).mode | 0o755);
    } catch {
      // reported below
    }
    if (!executable(file)) throw new FfmpegMissingError(`${tool} at ${file} is not executable (chmod +x it)`);
  }
  return file;
}

const cache = new Map<string, string>();

function cached(key: string, find: () => string): string {
  const env = `${process.env.RDFLOW_FFMPEG ?? ''}|${process.env.RDFLOW_FFPROBE ?? ''}`;
  const k = `${key}|${env}`;
  let v = cache.get(k);
  if (v === undefined) {
    v = find();
    cache.set(k, v);
  }
  return v;
}

/** Absolute path of an executable ffmpeg; throws FfmpegMissingError with the reason otherwise. */
export function ffmpegPath(): string {
  return cached('ffmpeg', () => locate('ffmpeg', 'RDFLOW_FFMPEG', '@ffmpeg-installer/ffmpeg'));
}

/** Absolute path of an executable ffprobe; throws FfmpegMissingError with the reason otherwise. */
export function ffprobePath(): string {
  return cached('ffprobe', () => locate('ffprobe', 'RDFLOW_FFPROBE', '@ffprobe-installer/ffprobe'));
}

/** ffmpeg's path, or undefined when it is unavailable (callers that have a fallback). */
export function tryFfmpegPath(): string | undefined {
  try {
    return ffmpegPath();
  } catch (e) {
    if (e instanceof FfmpegMissingError) return undefined;
    throw e;
  }
}

const encoderCache = new Map<string, Promise<Set<string>>>();

/** Names of the video encoders the given ffmpeg binary was built with (`ffmpeg -encoders`). */
export function ffmpegEncoders(bin: string = ffmpegPath()): Promise<Set<string>> {
  let p = encoderCache.get(bin);
  if (p === undefined) {
    p = new Promise((resolve) => {
      execFile(bin, ['-hide_banner', '-encoders'], { maxBuffer: 4 << 20 }, (err, stdout) => {
        // A binary that cannot even list encoders supports nothing.
        if (err) return resolve(new Set());
        const names = new Set<string>();
        for (const line of stdout.split('\n')) {
          const m = /^\s*V[A-Z.]{5}\s+(\S+)/.exec(line);
          if (m) names.add(m[1]);
        }
        resolve(names);
      });
    });
    encoderCache.set(bin, p);
  }
  return p;
}
