// A restricted unpickler (protocols 0-5): it builds plain data (numbers, strings, bytes, lists,
// tuples as arrays, dicts as Maps, sets) and resolves a global only through the caller's allow
// list, so a pickle can never name, let alone call, anything else: loading a checkpoint never
// runs code. Every global outside the list is refused with its name, the moment it is named.

/** A global the caller allows: `call` builds a value from REDUCE/NEWOBJ arguments; without it the global is a plain token. */
export interface AllowedGlobal {
  readonly call?: (args: unknown[]) => unknown;
  /** What a non-callable global stands for (e.g. a storage type named in a persistent id). */
  readonly token?: unknown;
}

/** A resolved global on the stack. */
export class PyGlobal {
  constructor(
    readonly qualname: string,
    readonly allowed: AllowedGlobal,
  ) {}
}

export interface UnpickleOptions {
  /** Names the pickle in messages (e.g. "model.bin: archive/data.pkl"). */
  readonly label: string;
  /** Allowed globals by "module.name". */
  readonly globals: ReadonlyMap<string, AllowedGlobal>;
  /** Resolves a persistent id (PERSID/BINPERSID); without it persistent ids are refused. */
  readonly persistentLoad?: (pid: unknown) => unknown;
  /** Whether BUILD may apply `state` to `obj` (the state is then dropped: only data is built). */
  readonly acceptBuild?: (obj: unknown) => boolean;
  /** Opcodes executed before the pickle is refused as too large (default MAX_PICKLE_OPS). */
  readonly maxOps?: number;
}

/**
 * Each opcode builds at most one value, so counting opcodes bounds the memory a pickle can make
 * the unpickler build (a few hundred bytes per value at worst) independently of how cheaply the
 * file encodes them. A state dict takes about 40 per tensor: this allows some 100,000 tensors.
 */
const MAX_PICKLE_OPS = 4_000_000;

/**
 * Longest integer accepted, in bytes (LONG4) or digits (INT/LONG): building a BigInt from n bytes
 * costs O(n²), so a megabyte-long integer would hang the reader for minutes. A state dict's
 * integers (sizes, strides, offsets, versions) fit in 8 bytes.
 */
const MAX_INT_LENGTH = 1024;

class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(
    readonly data: Uint8Array,
    private readonly label: string,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  private need(n: number): number {
    if (this.pos + n > this.data.length) {
      throw new Error(`${this.label}: truncated pickle (needs ${n} bytes at offset ${this.pos})`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(): number {
    return this.data[this.need(1)];
  }
  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }
  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }
  i32(): number {
    return this.view.getInt32(this.need(4), true);
  }
  u64(): number {
    const v = this.view.getBigUint64(this.need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new Error(`${this.label}: pickle length ${v} out of range`);
    return Number(v);
  }
  f64be(): number {
    return this.view.getFloat64(this.need(8), false);
  }
  bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.data.subarray(at, at + n);
  }
  utf8(n: number): string {
    return Buffer.from(this.bytes(n)).toString('utf8');
  }
  line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) throw new Error(`${this.label}: truncated pickle (no end of line after offset ${this.pos})`);
    const s = Buffer.from(this.data.subarray(this.pos, end)).toString('latin1');
    this.pos = end + 1;
    return s;
  }
}

/** Python ints: numbers when exactly representable, else bigint. */
function intValue(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Little-endian two's-complement bytes (LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return intValue(v);
}

/** Protocol-0 quoted string literal ('...' or "..." with backslash escapes) as bytes. */
function unquote(s: string, label: string): Uint8Array {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) {
    throw new Error(`${label}: bad STRING literal ${s.slice(0, 40)}`);
  }
  const body = s.slice(1, -1);
  const out: number[] = [];
  const simple: Record<string, number> = {
    n: 10,
    r: 13,
    t: 9,
    '\\': 92,
    "'": 39,
    '"': 34,
    a: 7,
    b: 8,
    f: 12,
    v: 11,
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\') {
      out.push(body.charCodeAt(i) & 0xff);
      continue;
    }
    const n = body[++i];
    if (n === 'x') {
      out.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (n >= '0' && n <= '7') {
      const m = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      out.push(parseInt(m, 8) & 0xff);
      i += m.length - 1;
    } else if (n in simple) {
      out.push(simple[n]);
    } else {
      out.push(92, body.charCodeAt(i) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** raw-unicode-escape (UNICODE): latin-1 text with \uXXXX / \UXXXXXXXX escapes. */
function rawUnicode(s: string): string {
  return s.replace(
    /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
    (_m, a: string | undefined, b: string | undefined) => String.fromCodePoint(parseInt(a ?? b ?? '0', 16)),
  );
}

function describe(v: unknown): string {
  if (v instanceof PyGlobal) return v.qualname;
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a tuple/list';
  if (v instanceof Map) return 'a dict';
  return typeof v;
}

/** Unpickles `data` under the restrictions of `opts`. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  const { label, globals } = opts;
  const r = new Reader(data, label);
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new Error(`${label}: ${msg}`);
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail(`pickle stack underflow at offset ${r.pos - 1}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`pickle stack underflow at offset ${r.pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) return fail(`pickle MARK missing at offset ${r.pos - 1}`);
    stack = prev;
    return items;
  };
  const resolve = (module: string, name: string): PyGlobal => {
    const qualname = `${module}.${name}`;
    const allowed = globals.get(qualname);
    if (allowed === undefined) {
      return fail(
        `refuses forbidden global ${qualname} (only the tensor/storage rebuilders and containers a state dict needs are allowed; a checkpoint never runs code)`,
      );
    }
    return new PyGlobal(qualname, allowed);
  };
  const call = (f: unknown, args: unknown, how: string): unknown => {
    if (!(f instanceof PyGlobal)) return fail(`${how} of ${describe(f)}, which is not an allowed global`);
    if (f.allowed.call === undefined) return fail(`${how} of ${f.qualname}, which is not callable`);
    if (!Array.isArray(args)) return fail(`${how} of ${f.qualname} with ${describe(args)} for arguments`);
    try {
      return f.allowed.call(args);
    } catch (e) {
      return fail(`${f.qualname}: ${(e as Error).message}`);
    }
  };
  const dictOf = (v: unknown, op: string): Map<unknown, unknown> => {
    if (!(v instanceof Map)) return fail(`${op} on ${describe(v)}, not a dict`);
    return v;
  };
  const listOf = (v: unknown, op: string): unknown[] => {
    if (!Array.isArray(v)) return fail(`${op} on ${describe(v)}, not a list`);
    return v;
  };
  const setOf = (v: unknown, op: string): Set<unknown> => {
    if (!(v instanceof Set)) return fail(`${op} on ${describe(v)}, not a set`);
    return v;
  };
  const persistent = (pid: unknown): unknown => {
    if (opts.persistentLoad === undefined) return fail('persistent id without a persistent loader');
    return opts.persistentLoad(pid);
  };

  const maxOps = opts.maxOps ?? MAX_PICKLE_OPS;
  for (let ops = 1; ; ops++) {
    const at = r.pos;
    if (ops > maxOps) {
      fail(`pickle has more than ${maxOps} operations (at offset ${at}): too large for a state dict`);
    }
    const op = r.u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = r.u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: // FRAME: only a read-ahead hint
        r.u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || metastack.length !== 0) {
          fail(`pickle ends with ${stack.length} values on the stack`);
        }
        return stack[0];
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      // --- scalars ---
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(r.i32());
        break;
      case 0x4b: // BININT1
        stack.push(r.u8());
        break;
      case 0x4d: // BININT2
        stack.push(r.u16());
        break;
      case 0x49: {
        // INT (protocol 0; "01"/"00" are True/False)
        const s = r.line();
        if (s.length > MAX_INT_LENGTH) fail(`INT literal of ${s.length} digits at offset ${at} is too long`);
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^[-+]?\d+$/.test(s)) stack.push(intValue(BigInt(s)));
        else fail(`bad INT literal "${s}"`);
        break;
      }
      case 0x4c: {
        // LONG
        const s = r.line().replace(/L$/, '');
        if (s.length > MAX_INT_LENGTH) fail(`LONG literal of ${s.length} digits at offset ${at} is too long`);
        if (!/^[-+]?\d+$/.test(s)) fail(`bad LONG literal "${s}"`);
        stack.push(intValue(BigInt(s)));
        break;
      }
      case 0x8a: // LONG1
        stack.push(decodeLong(r.bytes(r.u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = r.i32();
        if (n < 0) fail('negative LONG4 length');
        if (n > MAX_INT_LENGTH) fail(`LONG4 of ${n} bytes at offset ${at} is too long for a state dict`);
        stack.push(decodeLong(r.bytes(n)));
        break;
      }
      case 0x46: {
        // FLOAT
        const s = r.line();
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) fail(`bad FLOAT literal "${s}"`);
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT
        stack.push(r.f64be());
        break;
      // --- strings and bytes ---
      case 0x53: // STRING
        stack.push(Buffer.from(unquote(r.line(), label)).toString('latin1'));
        break;
      case 0x54: {
        // BINSTRING
        const n = r.i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(Buffer.from(r.bytes(n)).toString('latin1'));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(Buffer.from(r.bytes(r.u8())).toString('latin1'));
        break;
      case 0x56: // UNICODE
        stack.push(rawUnicode(r.line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(r.utf8(r.u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(r.utf8(r.u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(r.utf8(r.u64()));
        break;
      case 0x42: // BINBYTES
        stack.push(r.bytes(r.u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(r.bytes(r.u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(r.bytes(r.u64()).slice());
        break;
      // --- containers ---
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: {
        // TUPLE (popMark swaps `stack`: take the items before pushing)
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: {
        // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        listOf(top(), 'APPEND').push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        // One at a time: spreading millions of items into push() overflows the call stack.
        const list = listOf(top(), 'APPENDS');
        for (const v of items) list.push(v);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        // Python fails here too: a key without a value is a corrupt pickle, not one to guess at.
        if (items.length % 2 !== 0) fail(`DICT with an odd number of items at offset ${at}`);
        const d = new Map<unknown, unknown>();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        dictOf(top(), 'SETITEM').set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) fail(`SETITEMS with an odd number of items at offset ${at}`);
        const d = dictOf(top(), 'SETITEMS');
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = setOf(top(), 'ADDITEMS');
        for (const v of items) s.add(v);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      // --- memo ---
      case 0x70: // PUT
        memo.set(Number(r.line()), top());
        break;
      case 0x71: // BINPUT
        memo.set(r.u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(r.u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x67 ? Number(r.line()) : op === 0x68 ? r.u8() : r.u32();
        if (!memo.has(i)) fail(`memo entry ${i} read before it was written (offset ${at})`);
        stack.push(memo.get(i));
        break;
      }
      // --- globals and calls: everything goes through the allow list ---
      case 0x63: {
        // GLOBAL
        const module = r.line();
        stack.push(resolve(module, r.line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          fail(`STACK_GLOBAL with non-string names at offset ${at}`);
        }
        stack.push(resolve(module as string, name as string));
        break;
      }
      case 0x69: {
        // INST: module and class name inline, arguments since the mark
        const module = r.line();
        const cls = resolve(module, r.line());
        const args = popMark();
        stack.push(call(cls, args, 'INST'));
        break;
      }
      case 0x6f: {
        // OBJ: class then arguments since the mark
        const items = popMark();
        stack.push(call(items[0], items.slice(1), 'OBJ'));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args, 'REDUCE'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args, 'NEWOBJ'));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size > 0)
          fail(`NEWOBJ_EX with keyword arguments at offset ${at}`);
        stack.push(call(cls, args, 'NEWOBJ_EX'));
        break;
      }
      case 0x62: {
        // BUILD (__setstate__): only on objects the caller knows to be plain data; the state
        // (e.g. an OrderedDict's `_metadata`) is dropped.
        pop();
        const obj = top();
        if (opts.acceptBuild?.(obj) !== true)
          fail(`BUILD on ${describe(obj)} at offset ${at} is not allowed`);
        break;
      }
      case 0x50: // PERSID
        stack.push(persistent(r.line()));
        break;
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x82:
      case 0x83:
      case 0x84:
        fail(`refuses extension-registry global (EXT opcode at offset ${at}): its name cannot be checked`);
        break;
      case 0x97:
      case 0x98:
        fail(`out-of-band pickle buffers are not supported (offset ${at})`);
        break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at}`);
    }
  }
}
