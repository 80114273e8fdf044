// Where node outputs live and for how long: the values a run holds right now (one cell per node
// per scope), the memory and disk caches behind them, consumer counts that let loop-body values go
// as soon as their iteration is done with them, pins on carried values spilled to disk, and the
// buffers offered back to the nodes that made them. Scheduling (execute.ts, loop.ts) only asks for
// values and says when it is done with them.
import {
  createMemoryCache,
  createSpillCache,
  type CacheEntry,
  type CacheStats,
  type MemoryCache,
  type SpillCache,
} from './cache.ts';
import type { UiOutput } from './define.ts';

/** One node's outputs in one scope (a loop iteration, or the run outside loops). */
export interface ValueCell {
  readonly nodeId: string;
  /** The node's signature: the key of its values in the caches. */
  readonly sig: string;
  /** Made in a loop body: cached on disk, let go when its iteration is done with it. */
  readonly inBody: boolean;
  /** An output node: its values are never cached by signature alone nor recycled. */
  readonly outputNode: boolean;
  values?: unknown[];
  /** Whether the node ran (rather than its values coming from a cache). */
  executed: boolean;
  /** Consumers in the same iteration that have not run yet; at 0 a body cell lets go of its values. */
  consumers: number;
  /** Needed beyond its own consumers (carried to the next iteration, or read by an inner loop). */
  keep: boolean;
}

export interface ValueStore {
  /** A new, empty cell. */
  cell(init: Pick<ValueCell, 'nodeId' | 'sig' | 'inBody' | 'outputNode' | 'keep'>): ValueCell;
  /** What the cell holds, else its cached values (then held by it), else undefined. */
  get(cell: ValueCell): unknown[] | undefined;
  /** A cache entry by signature (a whole loop's output nodes, see loop.ts). */
  cached(sig: string): CacheEntry | undefined;
  /** An unchanged node's cache entry (its UI shown again); its values are then held by the cell. */
  replay(cell: ValueCell): CacheEntry | undefined;
  /** Whether a node outside loops is cached (for execution_cached, before anything runs). */
  isCached(sig: string): boolean;
  /**
   * Values a node just made: held by its cell and cached (loop bodies on disk, other nodes in
   * memory). Output nodes' entries wait for commit(): their files are finished only by a run that
   * succeeds. Body output nodes are not cached one iteration at a time.
   */
  put(cell: ValueCell, values: unknown[], ui: UiOutput | undefined): void;
  /** An entry kept only if the run succeeds (see commit). */
  stage(sig: string, entry: CacheEntry): void;
  /**
   * A consumer of the cell in its own iteration has its values: at the last, they are let go
   * (unless the cell is still being loaded for someone else).
   */
  consumed(cell: ValueCell, loading: boolean): void;
  /** Lets go of the cell's values; a loop body's are offered back to their node next iteration. */
  release(cell: ValueCell): void;
  /**
   * Keeps a carried cell's values beyond its iteration: pinned on disk when spilled there,
   * otherwise loaded into memory by `load`. Returns the pinned signature, if pinned.
   */
  spill(cell: ValueCell, load: () => Promise<unknown>): Promise<string | undefined>;
  /** Lets the disk tier evict a pinned entry again. */
  unpin(sig: string): void;
  /**
   * An iteration ended: what it let go of is offered back to the nodes that made it, unless a
   * carried value shares one of its buffers.
   */
  endIteration(carried: readonly ValueCell[]): void;
  /** The values offered back to a node (once). */
  recycled(nodeId: string): unknown[] | undefined;
  /** The run's steps ended: nothing is held or offered any more. */
  letGo(): void;
  /** The run ended: staged entries are kept if it succeeded, dropped otherwise. */
  commit(ok: boolean): void;
  /** Drops both caches (the disk folder too). */
  evict(): void;
  stats(): CacheStats;
  /** Loop-body cells holding values right now. */
  heldBodyValues(): number;
}

/** The array buffers a value holds (plain objects and arrays followed a few levels deep). */
function buffersOf(values: readonly unknown[]): Set<ArrayBufferLike> {
  const out = new Set<ArrayBufferLike>();
  const walk = (v: unknown, depth: number): void => {
    if (v === null || typeof v !== 'object') return;
    if (ArrayBuffer.isView(v)) {
      out.add(v.buffer);
      return;
    }
    if (depth >= 4) return;
    for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, depth + 1);
  };
  for (const v of values) walk(v, 0);
  return out;
}

export function createValueStore(opts: {
  tempRoot: string;
  memoryMaxBytes: number;
  spillMaxBytes: number;
}): ValueStore {
  const memory: MemoryCache = createMemoryCache(opts.memoryMaxBytes);
  const spill: SpillCache = createSpillCache(opts.tempRoot, opts.spillMaxBytes);
  /** Loop-body cells holding values (the engine's view of what one iteration keeps). */
  const held = new Set<ValueCell>();
  /** Body nodes' outputs let go of during this iteration, by node id. */
  const released = new Map<string, unknown[]>();
  /** Outputs of the previous iteration no one holds, offered back to the node that made them. */
  const offers = new Map<string, unknown[]>();
  let staged: { sig: string; entry: CacheEntry }[] = [];

  const hold = (cell: ValueCell, values: unknown[]): void => {
    cell.values = values;
    if (cell.inBody) held.add(cell);
  };
  const release = (cell: ValueCell): void => {
    if (cell.values && cell.inBody && cell.executed && !cell.keep && !cell.outputNode) {
      released.set(cell.nodeId, cell.values);
    }
    cell.values = undefined;
    held.delete(cell);
  };

  return {
    cell: (init) => ({ ...init, executed: false, consumers: 0 }),
    get(cell) {
      if (cell.values) return cell.values;
      const hit = cell.inBody ? spill.get(cell.sig) : memory.get(cell.sig)?.values;
      if (hit) hold(cell, hit);
      return hit;
    },
    cached: (sig) => memory.get(sig),
    replay(cell) {
      const hit = memory.get(cell.sig);
      if (hit) hold(cell, hit.values);
      return hit;
    },
    isCached: (sig) => memory.has(sig),
    put(cell, values, ui) {
      hold(cell, values);
      cell.executed = true;
      if (cell.inBody) {
        if (!cell.outputNode) spill.put(cell.sig, values);
      } else if (cell.outputNode) staged.push({ sig: cell.sig, entry: { values, ui } });
      else memory.set(cell.sig, { values, ui });
    },
    stage(sig, entry) {
      staged.push({ sig, entry });
    },
    consumed(cell, loading) {
      if (cell.consumers <= 0) return;
      cell.consumers--;
      if (cell.consumers === 0 && !cell.keep && !loading) release(cell);
    },
    release,
    async spill(cell, load) {
      if (cell.values) return undefined;
      if (spill.has(cell.sig)) {
        spill.pin(cell.sig);
        return cell.sig;
      }
      await load();
      return undefined;
    },
    unpin: (sig) => spill.unpin(sig),
    endIteration(carried) {
      const carriedBuffers = buffersOf(carried.flatMap((c) => c.values ?? []));
      offers.clear();
      for (const [id, values] of released) {
        if (![...buffersOf(values)].some((b) => carriedBuffers.has(b))) offers.set(id, values);
      }
      released.clear();
    },
    recycled(nodeId) {
      const values = offers.get(nodeId);
      offers.delete(nodeId);
      return values;
    },
    commit(ok) {
      if (ok) for (const { sig, entry } of staged) memory.set(sig, entry);
      staged = [];
    },
    letGo() {
      for (const cell of held) cell.values = undefined;
      held.clear();
      released.clear();
      offers.clear();
    },
    evict() {
      memory.clear();
      spill.clear();
    },
    stats() {
      const m = memory.stats();
      const s = spill.stats();
      return {
        memoryBytes: m.bytes,
        memoryEntries: m.entries,
        spillBytes: s.bytes,
        spillEntries: s.entries,
        memoryMaxBytes: opts.memoryMaxBytes,
        spillMaxBytes: opts.spillMaxBytes,
      };
    },
    heldBodyValues: () => held.size,
  };
}
