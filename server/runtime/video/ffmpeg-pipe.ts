// One ffmpeg process fed raw frames on stdin, with backpressure: write() resolves once the pipe has
// room again, so a slow encoder pauses the producer instead of growing a queue in memory.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

export interface FfmpegPipe {
  /** Queues bytes on ffmpeg's stdin; waits for 'drain' when the pipe is full. Rejects if ffmpeg died. */
  write(bytes: Uint8Array, onFlushed?: () => void): Promise<void>;
  /** Closes stdin and waits for ffmpeg to exit; rejects with its last stderr lines on failure. */
  end(): Promise<void>;
  /** Kills ffmpeg (SIGKILL) and waits for it to exit. */
  kill(): Promise<void>;
  readonly pid: number | undefined;
}

const STDERR_KEEP = 8192;
const STDERR_LINES = 8;

export class FfmpegError extends Error {
  override name = 'FfmpegError';
}

/** Starts `bin args`; `what` names the output in error messages ("clip_00001.mp4"). */
export function startFfmpeg(bin: string, args: readonly string[], what: string): FfmpegPipe {
  // Own process group: a terminal Ctrl-C reaches the host, which aborts the writer (kill + delete);
  // ffmpeg does not finalise a half-written temp file behind its back.
  const child = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  let spawnError: Error | undefined;
  let killed = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => {
      spawnError = e;
      resolve({ code: null, signal: null });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((info) => {
    exitInfo = info;
  });
  // EPIPE when ffmpeg exits early: the exit status and stderr say why, so report those instead.
  child.stdin.on('error', () => {});

  function failure(info: { code: number | null; signal: NodeJS.Signals | null }): FfmpegError {
    if (spawnError)
      return new FfmpegError(`could not start ffmpeg (${bin}) for ${what}: ${spawnError.message}`);
    if (killed) return new FfmpegError(`ffmpeg writing ${what} was stopped`);
    const tail = stderr
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .slice(-STDERR_LINES)
      .join('\n  ');
    const how =
      info.code === null ? `was killed by ${info.signal ?? 'a signal'}` : `exited with code ${info.code}`;
    return new FfmpegError(
      `ffmpeg failed writing ${what}: it ${how}${tail ? `. Its last messages:\n  ${tail}` : ' and printed nothing'}`,
    );
  }

  return {
    get pid() {
      return child.pid;
    },
    async write(bytes, onFlushed) {
      if (exitInfo) throw failure(exitInfo);
      // onFlushed: the stream no longer holds `bytes` (handed to the OS, or failed), so it may be reused.
      if (child.stdin.write(bytes, onFlushed && (() => onFlushed()))) return;
      const drained = once(child.stdin, 'drain').then(
        () => true,
        () => false, // EPIPE: ffmpeg is gone; its exit status says why
      );
      const ok = await Promise.race([drained, exited.then(() => false)]);
      if (!ok) throw failure(exitInfo ?? (await exited));
    },
    async end() {
      child.stdin.end();
      const info = await exited;
      if (spawnError || info.code !== 0) throw failure(info);
    },
    async kill() {
      if (!exitInfo) {
        killed = true;
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}
