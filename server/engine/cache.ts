// Output caches keyed by node signatures: an in-memory LRU bounded by bytes for nodes that run
// once, and a disk spill tier for loop-body outputs so memory does not grow with the loop length.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import type { UiOutput } from './define.ts';

export const DEFAULT_CACHE_BYTES = 1024 ** 3;
export const DEFAULT_SPILL_BYTES = 4 * 1024 ** 3;

/** Order-independent JSON for hashing literals and prompts (object keys sorted). */
export function stableJson(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'bigint') return `${v}n`;
    return JSON.stringify(v) ?? String(v);
  }
  if (ArrayBuffer.isView(v)) {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return `${v.constructor.name}:${createHash('sha256').update(bytes).digest('hex')}`;
  }
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const obj = v as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`)
    .join(',')}}`;
}

export function hashParts(parts: readonly unknown[]): string {
  return createHash('sha256').update(stableJson(parts)).digest('hex').slice(0, 32);
}

/** Signatures of primitive literals seen so far: the same widget values recur every run and iteration. */
const primitiveSignatures = new Map<unknown, string>();
const PRIMITIVE_SIGNATURES_MAX = 4096;

/** Signature of a constant value fed to an input. */
export function literalSignature(value: unknown): string {
  if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
    return `lit:${hashParts([value])}`;
  }
  // Map keys compare like SameValueZero: only -0 and 0 meet, and they hash alike anyway ("0").
  let sig = primitiveSignatures.get(value);
  if (sig === undefined) {
    sig = `lit:${hashParts([value])}`;
    if (primitiveSignatures.size >= PRIMITIVE_SIGNATURES_MAX) primitiveSignatures.clear();
    primitiveSignatures.set(value, sig);
  }
  return sig;
}

/** Signature of a node: class, literal inputs, upstream signatures and the node's fingerprint. */
export function nodeSignature(parts: {
  classType: string;
  inputs: Record<string, string>;
  fingerprint?: string;
  /** Output nodes are keyed by id too: two identical savers must both write. */
  nodeId?: string;
  /** Loop position path ("2/0") for nodes in loop bodies: they may read ctx.loop. */
  loopPath?: string;
}): string {
  return hashParts([
    parts.classType,
    parts.inputs,
    parts.fingerprint ?? null,
    parts.nodeId ?? null,
    parts.loopPath ?? null,
  ]);
}

const plainPrototypes = new Set<unknown>([Object.prototype, Array.prototype, null]);

/**
 * Bytes a value holds (typed arrays counted by byteLength), and whether v8.serialize would keep it
 * intact: class instances lose their prototype through serialization, so they are not spillable.
 */
export function measureValue(value: unknown): { bytes: number; plain: boolean } {
  let bytes = 0;
  let plain = true;
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): void => {
    if (v === null || v === undefined) return;
    if (typeof v === 'string') {
      bytes += v.length * 2;
      return;
    }
    if (typeof v === 'function' || typeof v === 'symbol') {
      plain = false;
      return;
    }
    if (typeof v !== 'object') {
      bytes += 8;
      return;
    }
    if (seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      bytes += v.byteLength;
      return;
    }
    if (v instanceof ArrayBuffer) {
      bytes += v.byteLength;
      return;
    }
    bytes += 64;
    if (depth > 64) return;
    if (v instanceof Map) {
      for (const [k, x] of v) {
        walk(k, depth + 1);
        walk(x, depth + 1);
      }
      return;
    }
    if (v instanceof Set) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    if (!plainPrototypes.has(Object.getPrototypeOf(v)) && !(v instanceof Date)) plain = false;
    for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(value, 0);
  return { bytes, plain };
}

export interface CacheEntry {
  values: unknown[];
  ui?: UiOutput;
}

export interface CacheStats {
  memoryBytes: number;
  memoryEntries: number;
  spillBytes: number;
  spillEntries: number;
  /** The bounds: the memory tier's and the spill files' (bytes). */
  memoryMaxBytes: number;
  spillMaxBytes: number;
}

/** LRU by bytes in memory. Entries bigger than the whole budget are not kept. */
export function createMemoryCache(maxBytes: number) {
  const entries = new Map<string, CacheEntry & { bytes: number }>();
  let total = 0;
  return {
    has: (sig: string) => entries.has(sig),
    get(sig: string): CacheEntry | undefined {
      const e = entries.get(sig);
      if (!e) return undefined;
      entries.delete(sig);
      entries.set(sig, e);
      return e;
    },
    set(sig: string, entry: CacheEntry): void {
      const bytes = measureValue(entry.values).bytes + measureValue(entry.ui ?? null).bytes;
      const old = entries.get(sig);
      if (old) {
        total -= old.bytes;
        entries.delete(sig);
      }
      if (bytes > maxBytes) return;
      entries.set(sig, { ...entry, bytes });
      total += bytes;
      for (const [key, e] of entries) {
        if (total <= maxBytes) break;
        entries.delete(key);
        total -= e.bytes;
      }
    },
    clear(): void {
      entries.clear();
      total = 0;
    },
    stats: () => ({ bytes: total, entries: entries.size }),
  };
}

export type MemoryCache = ReturnType<typeof createMemoryCache>;

/**
 * Disk tier: one v8-serialized file per signature in a private temp folder, LRU by bytes.
 * Pinned entries (carried loop values still needed) are never evicted.
 */
export function createSpillCache(tempRoot: string, maxBytes: number, maxEntries = 100_000) {
  const entries = new Map<string, { file: string; bytes: number }>();
  const pins = new Map<string, number>();
  let dir: string | undefined;
  let total = 0;
  let seq = 0;

  const ensureDir = (): string => {
    if (!dir) {
      fs.mkdirSync(tempRoot, { recursive: true });
      dir = fs.mkdtempSync(path.join(tempRoot, 'rdflow-spill-'));
    }
    return dir;
  };
  const drop = (sig: string): void => {
    const e = entries.get(sig);
    if (!e) return;
    entries.delete(sig);
    total -= e.bytes;
    fs.rmSync(e.file, { force: true });
  };
  // Bounded by bytes and by count: the index lives in memory and tiny values add up in long loops.
  const evict = (): void => {
    if (total <= maxBytes && entries.size <= maxEntries) return;
    // Deleting the entry being visited is safe while iterating a Map.
    for (const key of entries.keys()) {
      if (total <= maxBytes && entries.size <= maxEntries) return;
      if ((pins.get(key) ?? 0) === 0) drop(key);
    }
  };

  return {
    has: (sig: string) => entries.has(sig),
    /** Stores the values if they serialize faithfully; returns whether they were stored. */
    put(sig: string, values: unknown[]): boolean {
      if (entries.has(sig)) return true;
      // A disabled tier (budget 0) stores nothing: skip measuring and serializing too.
      if (maxBytes <= 0) return false;
      if (!measureValue(values).plain) return false;
      let bytes: Buffer;
      try {
        bytes = v8.serialize(values);
      } catch {
        return false;
      }
      if (bytes.length > maxBytes) return false;
      const file = path.join(ensureDir(), `${seq++}.v8`);
      fs.writeFileSync(file, bytes);
      entries.set(sig, { file, bytes: bytes.length });
      total += bytes.length;
      evict();
      return entries.has(sig);
    },
    get(sig: string): unknown[] | undefined {
      const e = entries.get(sig);
      if (!e) return undefined;
      entries.delete(sig);
      entries.set(sig, e);
      try {
        return v8.deserialize(fs.readFileSync(e.file)) as unknown[];
      } catch {
        drop(sig);
        return undefined;
      }
    },
    pin(sig: string): void {
      pins.set(sig, (pins.get(sig) ?? 0) + 1);
    },
    unpin(sig: string): void {
      const n = (pins.get(sig) ?? 0) - 1;
      if (n <= 0) pins.delete(sig);
      else pins.set(sig, n);
      evict();
    },
    clear(): void {
      entries.clear();
      pins.clear();
      total = 0;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
    stats: () => ({ bytes: total, entries: entries.size }),
  };
}

export type SpillCache = ReturnType<typeof createSpillCache>;
