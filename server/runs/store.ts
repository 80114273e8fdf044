// Checkpoints on disk: one folder per workflow key under the data folder (`.rdflow/runs/` beside
// the output), holding what the engine saves after each finished clip (server/engine/resume.ts).
//
//   state.json                 progress, signatures, the prompt it was made with (written last)
//   out-<loop>-<clip>.bin      what the loop's output nodes received in that clip (v8-serialized)
//   carried-<loop>-<clip>.bin  the values carried into the next clip (only the newest is kept)
//
// Every file is written under a temporary name and renamed, and state.json is renamed only after
// the files it names exist, so a kill -9 at any point leaves the state of the last finished clip.
// A finished run keeps its checkpoint so that it can be extended (`--extend N`) until it is cleared
// (`rdflow runs --clear`) or pushed out by the disk bound, finished runs first, oldest first.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import v8 from 'node:v8';
import type { ApiPrompt } from '../engine/types.ts';
import type { IterationState, LoopCheckpoints, SavedLoop } from '../engine/resume.ts';
import { promptChanges, workflowKey, type NodeKinds } from './key.ts';

/** Default bound of all checkpoints' disk use together. */
export const DEFAULT_CHECKPOINT_BYTES = 4 * 1024 ** 3;

export type RunStatus = 'running' | 'stopped' | 'finished';

interface LoopRecord {
  next: number;
  iterations: number;
  clipSigs: string[];
  carriedSigs: string[];
  carriedFile: string;
}

interface StateFile {
  version: 1;
  key: string;
  /** The workflow file or job it came from (shown by `rdflow runs`, used to find it again). */
  source?: string;
  prompt: ApiPrompt;
  status: RunStatus;
  /** pid of the process writing it: a 'running' state of a dead process is a stopped run. */
  pid: number;
  /**
   * The machine of that process (absent in older files: this one). A pid means nothing on another
   * machine, so a run marked running elsewhere counts as running until its owner's lock says not.
   */
  host?: string;
  createdAt: number;
  updatedAt: number;
  loops: Record<string, LoopRecord>;
  /** Time spent saving clips so far, ms (what checkpoints cost the run). */
  saveMs?: number;
}

/** One checkpoint as `rdflow runs` and the server list it. */
export interface RunInfo {
  key: string;
  source?: string;
  status: RunStatus;
  /** Clips finished and the loop length, per loop (LoopStart id). */
  loops: Record<string, { done: number; total: number }>;
  bytes: number;
  createdAt: number;
  updatedAt: number;
  /** Time spent saving its clips, ms. */
  saveMs: number;
  prompt: ApiPrompt;
}

function atomicWrite(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Whether the process that wrote a 'running' state may still be writing it. */
function ownerAlive(state: Pick<StateFile, 'pid' | 'host'>): boolean {
  if (state.host !== undefined && state.host !== os.hostname()) return true;
  return alive(state.pid);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    try {
      n += fs.statSync(path.join(dir, name)).size;
    } catch {
      // removed meanwhile
    }
  }
  return n;
}

/** "500M", "2G", "1.5GiB", "1000000" → bytes; undefined when it is not a size. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A run's checkpoint while it runs: the engine's LoopCheckpoints plus the host's finish calls. */
export interface RunCheckpoint extends LoopCheckpoints {
  readonly key: string;
  /** The run finished: kept (status 'finished') so it can be extended. */
  finish(): void;
  /** The run stopped (interrupt, error): kept for --resume. */
  stop(): void;
  /** Set when the bound forced this run's own checkpoint out: it cannot be resumed. */
  readonly dropped?: string;
}

export interface OpenOptions {
  source?: string;
  /** Continue the saved state (resume / extend); otherwise an older checkpoint of the key is replaced. */
  resume?: boolean;
  /** With resume: the checkpoint to continue when it is not this prompt's key (a changed workflow). */
  from?: string;
  /**
   * The caller holds the job's lock on a shared queue, so whoever marked the checkpoint running
   * (a worker on any machine) has lost the job: its mark is stale and the run continues here.
   */
  takeOver?: boolean;
}

export class CheckpointStore {
  constructor(
    readonly dir: string,
    readonly kinds: NodeKinds,
    readonly maxBytes = DEFAULT_CHECKPOINT_BYTES,
    /** Told when the bound removes a checkpoint (the CLI prints it). */
    readonly onEvict: (key: string, why: string) => void = () => {},
  ) {}

  key(prompt: ApiPrompt): string {
    return workflowKey(prompt, this.kinds);
  }

  private readState(key: string): StateFile | undefined {
    try {
      const state = JSON.parse(fs.readFileSync(path.join(this.dir, key, 'state.json'), 'utf8')) as StateFile;
      if (state.version !== 1) return undefined;
      if (state.status === 'running' && !ownerAlive(state)) state.status = 'stopped';
      return state;
    } catch {
      return undefined;
    }
  }

  /** Every checkpoint, newest first. */
  list(): RunInfo[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: RunInfo[] = [];
    for (const key of names) {
      const state = this.readState(key);
      if (!state) continue;
      const loops: RunInfo['loops'] = {};
      for (const [id, l] of Object.entries(state.loops)) loops[id] = { done: l.next, total: l.iterations };
      out.push({
        key,
        source: state.source,
        status: state.status,
        loops,
        bytes: dirBytes(path.join(this.dir, key)),
        createdAt: state.createdAt,
        updatedAt: state.updatedAt,
        saveMs: state.saveMs ?? 0,
        prompt: state.prompt,
      });
    }
    return out.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  get(key: string): RunInfo | undefined {
    return this.list().find((r) => r.key === key);
  }

  /** The newest checkpoint made from `source` (a workflow file), whatever its key. */
  latestFrom(source: string): RunInfo | undefined {
    return this.list().find((r) => r.source === source);
  }

  totalBytes(): number {
    return this.list().reduce((n, r) => n + r.bytes, 0);
  }

  /** Removes one checkpoint (a run of this process that is still writing is refused). */
  remove(key: string): boolean {
    const state = this.readState(key);
    if (state?.status === 'running' && state.pid !== process.pid) {
      throw new Error(`checkpoint ${key} belongs to a run that is still running (pid ${state.pid})`);
    }
    const dir = path.join(this.dir, key);
    if (!fs.existsSync(dir)) return false;
    fs.rmSync(dir, { recursive: true, force: true });
    return true;
  }

  /** Removes all checkpoints (or only finished ones); returns the keys removed. */
  clear(only?: RunStatus): string[] {
    const removed: string[] = [];
    for (const r of this.list()) {
      if (r.status === 'running' || (only && r.status !== only)) continue;
      if (this.remove(r.key)) removed.push(r.key);
    }
    return removed;
  }

  /**
   * Keeps the total under maxBytes: removes finished checkpoints, then stopped ones, oldest first,
   * never `keep`; returns whether `keep` alone still fits.
   */
  private enforce(keep: string): boolean {
    const runs = this.list();
    let total = runs.reduce((n, r) => n + r.bytes, 0);
    if (total <= this.maxBytes) return true;
    const rank = (r: RunInfo) => (r.status === 'finished' ? 0 : 1);
    const victims = runs
      .filter((r) => r.key !== keep && r.status !== 'running')
      .sort((a, b) => rank(a) - rank(b) || a.updatedAt - b.updatedAt);
    for (const v of victims) {
      if (total <= this.maxBytes) break;
      fs.rmSync(path.join(this.dir, v.key), { recursive: true, force: true });
      total -= v.bytes;
      this.onEvict(v.key, `checkpoints over ${formatBytes(this.maxBytes)}`);
    }
    return total <= this.maxBytes;
  }

  /** Opens the checkpoint of a run of `prompt`. */
  open(prompt: ApiPrompt, opts: OpenOptions = {}): RunCheckpoint {
    const key = this.key(prompt);
    const fromKey = opts.resume ? (opts.from ?? key) : undefined;
    const saved = fromKey !== undefined ? this.readState(fromKey) : undefined;
    if (saved?.status === 'running' && saved.pid !== process.pid && !opts.takeOver) {
      throw new Error(`checkpoint ${fromKey} is in use by a run that is still running (pid ${saved.pid})`);
    }
    const dir = path.join(this.dir, key);
    // Saved files are read from here until the first save; nothing on disk changes before it, so a
    // refused resume or a workflow that fails validation leaves the checkpoint as it was.
    let readDir = saved && fromKey !== undefined ? path.join(this.dir, fromKey) : dir;
    const before = saved?.prompt;
    const now = Date.now();
    const state: StateFile = {
      version: 1,
      key,
      source: opts.source ?? saved?.source,
      prompt,
      status: 'running',
      pid: process.pid,
      host: os.hostname(),
      createdAt: saved?.createdAt ?? now,
      updatedAt: now,
      loops: saved?.loops ?? {},
      saveMs: saved?.saveMs,
    };
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the checkpoint object below has its own `this`
    const store = this;
    let dropped: string | undefined;
    let started = false;
    const readBin = (file: string): unknown => v8.deserialize(fs.readFileSync(path.join(readDir, file)));
    /** On the first save: a changed workflow that makes the same clips moves the old checkpoint to its key. */
    const start = () => {
      started = true;
      if (saved && readDir !== dir) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.renameSync(readDir, dir);
        readDir = dir;
      } else if (!saved) fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
    };

    return {
      key,
      get dropped() {
        return dropped;
      },
      async load(loopId: string): Promise<SavedLoop | undefined> {
        const l = saved?.loops[loopId];
        if (!l || l.next === 0) return undefined;
        return {
          next: l.next,
          clipSigs: l.clipSigs,
          carriedSigs: l.carriedSigs,
          carried: async () => readBin(l.carriedFile) as unknown[],
          outputInputs: async (c: number) =>
            new Map(readBin(`out-${loopId}-${c}.bin`) as Array<[string, unknown]>),
        };
      },
      async save(loopId: string, s: IterationState): Promise<void> {
        if (dropped) return;
        const t0 = performance.now();
        if (!started) start();
        const old = state.loops[loopId];
        const clipSigs = (old?.clipSigs ?? []).slice(0, s.iteration);
        clipSigs[s.iteration] = s.clipSig;
        const carriedFile = `carried-${loopId}-${s.iteration}.bin`;
        atomicWrite(path.join(dir, `out-${loopId}-${s.iteration}.bin`), v8.serialize([...s.outputInputs]));
        atomicWrite(path.join(dir, carriedFile), v8.serialize(s.carried));
        state.loops[loopId] = {
          next: s.iteration + 1,
          iterations: s.iterations,
          clipSigs,
          carriedSigs: s.carriedSigs,
          carriedFile,
        };
        state.updatedAt = Date.now();
        // Counted up to here: the state file's own write is the next save's (or finish's) cost.
        state.saveMs = (state.saveMs ?? 0) + (performance.now() - t0);
        atomicWrite(path.join(dir, 'state.json'), JSON.stringify(state));
        if (old && old.carriedFile !== carriedFile)
          fs.rmSync(path.join(dir, old.carriedFile), { force: true });
        if (!store.enforce(key)) {
          dropped = `this run's checkpoint alone needs more than ${formatBytes(store.maxBytes)}`;
          fs.rmSync(dir, { recursive: true, force: true });
          store.onEvict(key, dropped);
        }
      },
      describeChange(_loopId: string, _clip: number): string {
        const changes = before ? promptChanges(before, prompt, store.kinds) : [];
        if (changes.length === 0) return 'a file it reads, such as the model, changed';
        return changes.join('; ');
      },
      finish() {
        if (dropped || !started) return;
        state.status = 'finished';
        state.updatedAt = Date.now();
        atomicWrite(path.join(dir, 'state.json'), JSON.stringify(state));
      },
      stop() {
        if (dropped || !started || !fs.existsSync(dir)) return;
        state.status = 'stopped';
        state.updatedAt = Date.now();
        atomicWrite(path.join(dir, 'state.json'), JSON.stringify(state));
      },
    };
  }
}
