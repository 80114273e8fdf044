// Hand-made checkpoint bytes for the reader tests: a pickle opcode emitter, a small zip writer
// (stored or deflated entries, optional zip64 records, torch's 64-byte data alignment) and a
// torch.save-style state-dict builder on top of them. Generated per test run; no blobs committed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll } from 'vitest';

const enc = new TextEncoder();

/** Emits pickle opcodes; each method appends and returns `this`. */
export class Pickle {
  private readonly parts: number[] = [];
  private memo = 0;

  raw(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  private u32(v: number): number[] {
    return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  }
  proto(v: number): this {
    return this.raw(0x80, v);
  }
  frame(len: number): this {
    return this.raw(0x95, ...this.u32(len), 0, 0, 0, 0);
  }
  mark(): this {
    return this.raw(0x28);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  str(s: string): this {
    const b = enc.encode(s);
    return b.length < 256 ? this.raw(0x8c, b.length, ...b) : this.raw(0x58, ...this.u32(b.length), ...b);
  }
  /** BINUNICODE (what protocol 2 uses). */
  ustr(s: string): this {
    const b = enc.encode(s);
    return this.raw(0x58, ...this.u32(b.length), ...b);
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.raw(0x4b, v);
    if (v >= 0 && v < 65536) return this.raw(0x4d, v & 0xff, v >> 8);
    return this.raw(0x4a, ...this.u32(v));
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  /** GLOBAL: "module\nname\n" inline (protocols 0-3). */
  global(module: string, name: string): this {
    return this.raw(0x63, ...enc.encode(`${module}\n${name}\n`));
  }
  /** STACK_GLOBAL: module and name strings from the stack (protocol 4+). */
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).raw(0x93);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  /** BINPUT/LONG_BINPUT the top of stack; returns the memo index through `out`. */
  put(out?: { index: number }): this {
    const i = this.memo++;
    if (out) out.index = i;
    return i < 256 ? this.raw(0x71, i) : this.raw(0x72, ...this.u32(i));
  }
  get(i: number): this {
    return i < 256 ? this.raw(0x68, i) : this.raw(0x6a, ...this.u32(i));
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export interface ZipFileSpec {
  name: string;
  data: Uint8Array;
  /** Deflate this entry (torch never does; other writers might). */
  deflate?: boolean;
}

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/**
 * A zip archive in memory. `zip64` writes every size and offset through zip64 extra fields and the
 * zip64 end records (as a > 4 GiB file needs), so that path is exercised on small data; data is
 * aligned to 64 bytes with a local extra field, as torch.save does.
 */
export function makeZip(files: ZipFileSpec[], opts: { zip64?: boolean } = {}): Buffer {
  const z64 = opts.zip64 === true;
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const body = f.deflate ? deflateRawSync(f.data) : Buffer.from(f.data);
    const method = f.deflate ? 8 : 0;
    const crc = crc32(f.data);
    const z64Local = z64 ? 20 : 0;
    // Pad the local extra field so the data starts on a 64-byte boundary.
    const pad = (64 - ((pos + 30 + name.length + z64Local + 4) % 64)) % 64;
    const local = Buffer.alloc(30 + name.length + z64Local + 4 + pad);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(z64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(z64 ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(z64 ? 0xffffffff : f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(z64Local + 4 + pad, 28);
    name.copy(local, 30);
    let e = 30 + name.length;
    if (z64) {
      local.writeUInt16LE(1, e);
      local.writeUInt16LE(16, e + 2);
      local.writeBigUInt64LE(BigInt(f.data.length), e + 4);
      local.writeBigUInt64LE(BigInt(body.length), e + 12);
      e += 20;
    }
    local.writeUInt16LE(0x1234, e); // padding block id (ignored by readers)
    local.writeUInt16LE(pad, e + 2);
    const cExtra = z64 ? 28 : 0;
    const c = Buffer.alloc(46 + name.length + cExtra);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(z64 ? 45 : 20, 4);
    c.writeUInt16LE(z64 ? 45 : 20, 6);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(z64 ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(z64 ? 0xffffffff : f.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(cExtra, 30);
    c.writeUInt32LE(z64 ? 0xffffffff : pos, 42);
    name.copy(c, 46);
    if (z64) {
      const x = 46 + name.length;
      c.writeUInt16LE(1, x);
      c.writeUInt16LE(24, x + 2);
      c.writeBigUInt64LE(BigInt(f.data.length), x + 4);
      c.writeBigUInt64LE(BigInt(body.length), x + 12);
      c.writeBigUInt64LE(BigInt(pos), x + 20);
    }
    central.push(c);
    chunks.push(local, body);
    pos += local.length + body.length;
  }
  const cd = Buffer.concat(central);
  const cdOffset = pos;
  const tail: Buffer[] = [cd];
  if (z64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(files.length), 24);
    rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(z64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(z64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(z64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(z64 ? 0xffffffff : cdOffset, 16);
  tail.push(eocd);
  return Buffer.concat([...chunks, ...tail]);
}

export type StorageName =
  | 'FloatStorage'
  | 'HalfStorage'
  | 'BFloat16Storage'
  | 'DoubleStorage'
  | 'LongStorage'
  | 'IntStorage'
  | 'ShortStorage'
  | 'CharStorage'
  | 'ByteStorage'
  | 'BoolStorage';

export interface StorageSpec {
  type: StorageName;
  /** Raw little-endian element bytes. */
  data: Uint8Array;
  numel: number;
}

export interface TensorSpec {
  key: string;
  storage: string;
  offset?: number;
  shape: number[];
  /** Default: C-contiguous. */
  stride?: number[];
  /** Pickle as nn.Parameter: `true` via _rebuild_parameter, 'with_state' via _rebuild_parameter_with_state. */
  parameter?: boolean | 'with_state';
}

export function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Extra top-level entries: an int, or a nested state dict of tensors. */
export type Extra = { key: string; int: number } | { key: string; tensors: TensorSpec[] };

/**
 * The data.pkl torch.save writes for a dict of tensors (protocol 2, memoised storage types and
 * rebuild functions, persistent ids per storage), optionally wrapped: `{wrap: {...}, ...extras}`.
 */
export function torchPickle(
  tensors: TensorSpec[],
  storages: Record<string, StorageSpec>,
  opts: { wrap?: string; extras?: Extra[]; orderedDict?: boolean } = {},
): Uint8Array {
  const p = new Pickle().proto(2);
  const memo = new Map<string, number>();
  const memoised = (name: string, emit: () => void) => {
    const i = memo.get(name);
    if (i !== undefined) {
      p.get(i);
      return;
    }
    emit();
    const out = { index: 0 };
    p.put(out);
    memo.set(name, out.index);
  };
  const tensor = (t: TensorSpec) => {
    const st = storages[t.storage];
    const withState = t.parameter === 'with_state';
    if (withState) memoised('param_state', () => p.global('torch._utils', '_rebuild_parameter_with_state'));
    else if (t.parameter) memoised('param', () => p.global('torch._utils', '_rebuild_parameter'));
    if (t.parameter) p.mark();
    memoised('rebuild', () => p.global('torch._utils', '_rebuild_tensor_v2'));
    p.mark();
    p.mark().ustr('storage');
    memoised(`type:${st.type}`, () => p.global('torch', st.type));
    p.ustr(t.storage).ustr('cpu').int(st.numel).tuple().binpersid();
    p.int(t.offset ?? 0);
    p.mark();
    for (const d of t.shape) p.int(d);
    p.tuple();
    p.mark();
    for (const d of t.stride ?? contiguousStride(t.shape)) p.int(d);
    p.tuple();
    p.bool(false);
    memoised('od', () => p.global('collections', 'OrderedDict'));
    p.emptyTuple().reduce();
    p.tuple().reduce();
    if (t.parameter) {
      p.bool(true).get(memo.get('od')!).emptyTuple().reduce();
      // The extra state: a dict of Python attributes set on the Parameter (dropped by the reader).
      if (withState) p.emptyDict().ustr('note').ustr('ema').setitem();
      p.tuple().reduce();
    }
  };
  const dict = (list: TensorSpec[]) => {
    if (opts.orderedDict) {
      memoised('od', () => p.global('collections', 'OrderedDict'));
      p.emptyTuple().reduce();
    } else p.emptyDict();
    p.mark();
    for (const t of list) {
      p.ustr(t.key);
      tensor(t);
    }
    p.setitems();
    if (opts.orderedDict) {
      // state_dict() attaches `_metadata` (module versions), restored through BUILD.
      p.emptyDict().ustr('_metadata').emptyDict().ustr('').emptyDict().ustr('version').int(1).setitem();
      p.setitem().setitem().build();
    }
  };
  if (opts.wrap === undefined && opts.extras === undefined) {
    dict(tensors);
  } else {
    p.emptyDict().mark();
    // Unwrapped: the tensors sit at the top level beside the extras.
    if (opts.wrap === undefined) {
      for (const t of tensors) {
        p.ustr(t.key);
        tensor(t);
      }
    }
    for (const x of opts.extras ?? []) {
      p.ustr(x.key);
      if ('int' in x) p.int(x.int);
      else dict(x.tensors);
    }
    if (opts.wrap !== undefined) {
      p.ustr(opts.wrap);
      dict(tensors);
    }
    p.setitems();
  }
  return p.stop().bytes();
}

/** A torch.save zip: `<archive>/data.pkl`, `<archive>/data/<key>` per storage, and the small files. */
export function torchZip(
  pickle: Uint8Array,
  storages: Record<string, StorageSpec>,
  opts: { archive?: string; zip64?: boolean; deflatePickle?: boolean; omitPickle?: boolean } = {},
): Buffer {
  const a = opts.archive ?? 'archive';
  const files: ZipFileSpec[] = [];
  if (!opts.omitPickle) files.push({ name: `${a}/data.pkl`, data: pickle, deflate: opts.deflatePickle });
  files.push({ name: `${a}/byteorder`, data: enc.encode('little') });
  for (const [k, s] of Object.entries(storages)) files.push({ name: `${a}/data/${k}`, data: s.data });
  files.push({ name: `${a}/version`, data: enc.encode('3\n') });
  return makeZip(files, { zip64: opts.zip64 });
}

/** Storage bytes of a typed array. */
export function storageOf(type: StorageName, values: ArrayBufferView & { length: number }): StorageSpec {
  return {
    type,
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice(),
    numel: values.length,
  };
}

/** A writer of numbered scratch files in a temporary folder that is removed after the test file. */
export function scratchFiles(prefix: string, ext = '.pth'): (bytes: Uint8Array) => string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  return (bytes) => {
    const f = path.join(dir, `f${n++}${ext}`);
    writeFileSync(f, bytes);
    return f;
  };
}
