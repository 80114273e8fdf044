// PyTorch zip checkpoints (torch.save since 1.6: `.bin`, `.pth`, `.ckpt`): a zip holding
// `<archive>/data.pkl` (the pickled object, tensors as persistent references to storages) and
// `<archive>/data/<key>` (each storage's raw little-endian bytes). Only the pickle is read at open,
// through the restricted unpickler (no code ever runs); a tensor's bytes are read by offset from
// its storage entry when the tensor is read.
import path from 'node:path';
import { toFloat32 } from './decode.ts';
import { PyGlobal, unpickle, type AllowedGlobal } from './pickle.ts';
import {
  DTYPE_BYTES,
  halfBits,
  numel,
  type StoredDType,
  type TensorInfo,
  type WeightSource,
} from './types.ts';
import { openForReading, readExactly, ZipIndex, type ZipEntry } from './zip.ts';

/** torch's legacy storage classes, as torch.save still names them in persistent ids. */
const STORAGE_TYPES: Record<string, StoredDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: StoredDType,
  ) {}
}

class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: StoredDType,
    readonly numel: number,
  ) {}
}

class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

function intArg(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new Error(`${what} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

function intTuple(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new Error(`${what} must be a tuple of integers`);
  return v.map((d, i) => intArg(d, `${what}[${i}]`));
}

/** _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...): a view into a storage. */
function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Error('first argument is not a storage');
  const shape = intTuple(size, 'size');
  const strides = intTuple(stride, 'stride');
  if (shape.length !== strides.length) {
    throw new Error(`size [${shape.join(', ')}] and stride [${strides.join(', ')}] differ in rank`);
  }
  return new TensorRef(storage, intArg(offset, 'storage_offset'), shape, strides);
}

/** A Parameter pickles as its data tensor plus flags: the tensor is all a state dict needs. */
function rebuildParameter(args: unknown[]): TensorRef {
  if (!(args[0] instanceof TensorRef)) throw new Error('data is not a tensor');
  return args[0];
}

const GLOBALS = new Map<string, AllowedGlobal>([
  // A fresh dict; BUILD may then attach `_metadata` (module versions), which is dropped.
  ['collections.OrderedDict', { call: () => new Map() }],
  ['torch._utils._rebuild_tensor', { call: rebuildTensor }],
  ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
  ['torch._utils._rebuild_parameter', { call: rebuildParameter }],
  ['torch._utils._rebuild_parameter_with_state', { call: rebuildParameter }],
  // protocol-2 pickles of bytes objects go through _codecs.encode(str, 'latin1'): pure data.
  [
    '_codecs.encode',
    {
      call: ([s, enc]) => {
        if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) {
          throw new Error('only encode(str, "latin1") is allowed');
        }
        return Uint8Array.from(Buffer.from(s, 'latin1'));
      },
    },
  ],
  ...Object.entries(STORAGE_TYPES).map(([name, dtype]): [string, AllowedGlobal] => [
    `torch.${name}`,
    { token: new StorageType(name, dtype) },
  ]),
]);

function isTensorDict(v: unknown): v is Map<unknown, unknown> {
  if (!(v instanceof Map)) return false;
  for (const x of v.values()) if (x instanceof TensorRef) return true;
  return false;
}

/** A dict key for a message: strings and numbers as written, anything else (a self-containing list, a bigint) by kind. */
function keyName(k: unknown): string {
  if (typeof k === 'string') return JSON.stringify(k);
  if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  return k === null ? 'None' : `<${Array.isArray(k) ? 'tuple' : typeof k}>`;
}

/** The state dict inside the unpickled object: the top level, or a training checkpoint's wrapper. */
function findStateDict(root: unknown, label: string): Map<unknown, unknown> {
  let d = root;
  const trail: string[] = [];
  const seen = new Set<unknown>();
  for (;;) {
    // A dict can hold itself (memo references): without this, {"state_dict": <itself>} looped forever.
    if (seen.has(d)) throw new Error(`${label}: "${trail.join('"."')}" refers back to a dict that holds it`);
    seen.add(d);
    if (!(d instanceof Map)) {
      throw new Error(
        `${label}: holds ${trail.length ? `"${trail.join('"."')}" = ` : ''}a ${typeof d}, not a state dict`,
      );
    }
    if (isTensorDict(d)) return d;
    const wrapper = ['state_dict', 'model', 'module'].find(
      (k) => d instanceof Map && d.get(k) instanceof Map,
    );
    if (wrapper === undefined) {
      const keys = [...d.keys()].slice(0, 20).map(keyName);
      throw new Error(
        `${label}: no tensors at ${trail.length ? `"${trail.join('"."')}"` : 'the top level'} and no "state_dict"/"model"/"module" dict inside (keys: ${keys.join(', ') || 'none'})`,
      );
    }
    trail.push(wrapper);
    d = d.get(wrapper);
  }
}

interface Located {
  readonly ref: TensorRef;
  readonly entry: ZipEntry;
}

/** Elements [first, last] of the storage a view touches (strides are never negative in torch). */
function extent(t: TensorRef): { first: number; last: number } {
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) last += (t.shape[i] - 1) * t.stride[i];
  return { first: t.offset, last };
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** C-order gather of a strided view out of `span` (the storage from the view's first element). */
function gather(span: Float32Array, shape: readonly number[], stride: readonly number[]): Float32Array {
  const n = numel(shape);
  const out = new Float32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < n; o++) {
    out[o] = span[src];
    // Odometer step: bump the last axis, carrying into earlier ones.
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        src += stride[d];
        break;
      }
      src -= (shape[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

const PICKLE_MAGIC = 0x80;

/**
 * Opens a PyTorch zip checkpoint; `label` names it in messages (default: its base name). Keys are
 * the state dict's: the top level when it holds tensors, else the dict under "state_dict", "model"
 * or "module" (training checkpoints). Non-tensor entries (epochs, `_extra_state`, ...) are skipped.
 */
export async function openTorchCheckpoint(file: string, label = path.basename(file)): Promise<WeightSource> {
  const fh = await openForReading(file, label);
  try {
    const { size } = await fh.stat();
    const magic = await readExactly(fh, 0, Math.min(size, 512), () => label);
    if (size < 4 || magic.readUInt32LE(0) !== 0x04034b50) {
      const legacyTar = magic.length >= 262 && magic.toString('latin1', 257, 262) === 'ustar';
      if (magic[0] === PICKLE_MAGIC || legacyTar) {
        throw new Error(
          `${label}: legacy PyTorch format (saved with _use_new_zipfile_serialization=False); re-save it with a current torch.save`,
        );
      }
      throw new Error(`${label}: not a PyTorch zip checkpoint (does not start with a zip local header)`);
    }
    const zip = await ZipIndex.open(fh, label);
    const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) {
      throw new Error(
        `${label}: ${pkls.length === 0 ? 'no <archive>/data.pkl in the zip' : `several data.pkl entries (${pkls.join(', ')})`}: not a torch.save checkpoint`,
      );
    }
    const archive = pkls[0].slice(0, -'/data.pkl'.length);
    const order = zip.entries.get(`${archive}/byteorder`);
    if (order !== undefined) {
      const bo = (await zip.read(order, 0, order.size)).toString('latin1');
      if (bo !== 'little') throw new Error(`${label}: byteorder "${bo}" (only little-endian checkpoints)`);
    }
    const pklEntry = zip.entries.get(pkls[0])!;
    const pickleLabel = `${label}: ${pkls[0]}`;
    const storages = new Map<string, StorageRef>();
    const root = unpickle(await zip.read(pklEntry, 0, pklEntry.size), {
      label: pickleLabel,
      globals: GLOBALS,
      acceptBuild: (obj) => obj instanceof Map || obj instanceof TensorRef,
      persistentLoad: (pid) => {
        // ('storage', storage_type, key, location, numel)
        if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
          throw new Error(
            `${pickleLabel}: unsupported persistent id (expected ('storage', type, key, location, numel))`,
          );
        }
        const [, type, key, , n] = pid as unknown[];
        const token = type instanceof PyGlobal ? type.allowed.token : undefined;
        if (!(token instanceof StorageType)) {
          throw new Error(`${pickleLabel}: persistent id names no storage type`);
        }
        if (typeof key !== 'string') throw new Error(`${pickleLabel}: storage key is not a string`);
        const count = intArg(n, `${pickleLabel}: storage "${key}" numel`);
        const known = storages.get(key);
        if (known !== undefined) {
          if (known.dtype !== token.dtype) {
            throw new Error(
              `${pickleLabel}: storage "${key}" is named as both ${known.dtype} and ${token.dtype}`,
            );
          }
          return known;
        }
        const s = new StorageRef(key, token.dtype, count);
        storages.set(key, s);
        return s;
      },
    });
    const dict = findStateDict(root, label);
    const tensors = new Map<string, TensorInfo>();
    const located = new Map<string, Located>();
    for (const [k, v] of dict) {
      if (typeof k !== 'string' || !(v instanceof TensorRef)) continue;
      const entryName = `${archive}/data/${v.storage.key}`;
      const entry = zip.entries.get(entryName);
      if (entry === undefined) {
        throw new Error(`${label}: tensor "${k}": its storage entry "${entryName}" is missing from the zip`);
      }
      const item = DTYPE_BYTES[v.storage.dtype];
      const count = numel(v.shape);
      if (count > 0) {
        const { last } = extent(v);
        const need = (last + 1) * item;
        const have = Math.min(entry.size, v.storage.numel * item);
        if (need > have) {
          throw new Error(
            `${label}: tensor "${k}": storage file shorter than the tensor needs ("${entryName}" holds ${entry.size} bytes for ${v.storage.numel} ${v.storage.dtype} elements; the view [${v.shape.join(', ')}] at offset ${v.offset}, stride [${v.stride.join(', ')}] needs ${need})`,
          );
        }
      }
      // Reading expands a view into numel float32 values: a view with more elements than its
      // storage holds (stride 0 over a huge size) would allocate without bound from a tiny file.
      if (count > Math.floor(entry.size / item)) {
        throw new Error(
          `${label}: tensor "${k}": its view [${v.shape.join(', ')}] (stride [${v.stride.join(', ')}]) has ${count} elements, more than its storage "${entryName}" holds (${entry.size} bytes of ${v.storage.dtype}): overlapping views are not state-dict tensors`,
        );
      }
      tensors.set(k, { key: k, dtype: v.storage.dtype, shape: v.shape, file: label });
      located.set(k, { ref: v, entry });
    }
    return {
      tensors,
      async read(key: string): Promise<Float32Array> {
        const t = located.get(key);
        if (t === undefined) throw new Error(`${label}: no tensor "${key}"`);
        const { shape, stride, storage } = t.ref;
        if (numel(shape) === 0) return new Float32Array(0);
        const { first, last } = extent(t.ref);
        const item = DTYPE_BYTES[storage.dtype];
        const bytes = await zip.read(t.entry, first * item, (last - first + 1) * item);
        const span = toFloat32(bytes, storage.dtype, last - first + 1, true);
        return isContiguous(shape, stride) ? span : gather(span, shape, stride);
      },
      async readHalf(key: string): Promise<Uint16Array | undefined> {
        const t = located.get(key);
        if (t === undefined || t.ref.storage.dtype !== 'float16') return undefined;
        const { shape, stride } = t.ref;
        if (numel(shape) === 0 || !isContiguous(shape, stride)) return undefined;
        const { first, last } = extent(t.ref);
        return halfBits(await zip.read(t.entry, first * 2, (last - first + 1) * 2));
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
