// A read-only zip index for PyTorch checkpoints: only the central directory is read up front
// (zip64 included, for files over 4 GiB); an entry's bytes are read by offset when asked for, so
// a multi-GB archive costs one range's memory at a time. Stored (uncompressed) entries are what
// torch.save writes; deflated ones are inflated whole on read (small files, other writers).
import { open, stat, type FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/** Node reads at most 2 GiB per call: larger ranges are read in pieces. */
const READ_CHUNK = 1 << 30;
/** Deflate's best case is about 1032:1; an entry claiming more is a forged size (a zip bomb). */
const MAX_DEFLATE_RATIO = 1032;

/** Opens a checkpoint file for reading; the error names it by `label` and says why (ENOENT, EACCES...). */
export async function openForReading(file: string, label: string): Promise<FileHandle> {
  try {
    // Checked before opening: opening a FIFO blocks until a writer comes (a hang), and a
    // directory opens fine and fails only at the first read, with an error naming no file.
    const st = await stat(file);
    if (!st.isFile()) {
      throw Object.assign(new Error('not a regular file'), {
        code: st.isDirectory() ? 'a directory, not a file' : 'not a regular file',
      });
    }
    return await open(file, 'r');
  } catch (e) {
    throw new Error(`${label}: cannot be opened (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      cause: e,
    });
  }
}

/** Reads exactly `length` bytes at `position`, or throws naming `what` when the file ends first. */
export async function readExactly(
  fh: FileHandle,
  position: number,
  length: number,
  what: () => string,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = Math.min(READ_CHUNK, length - done);
    const { bytesRead } = await fh.read(buf, done, n, position + done);
    if (bytesRead === 0) {
      throw new Error(
        `${what()}: truncated (needs bytes ${position}..${position + length}, file ends sooner)`,
      );
    }
    done += bytesRead;
  }
  return buf;
}

function u64(buf: Buffer, at: number, label: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${label}: zip64 field ${v} is out of range`);
  return Number(v);
}

/** Entries whose bytes overlap (the trick behind non-recursive zip bombs) make the archive corrupt. */
function checkDisjoint(entries: ReadonlyMap<string, ZipEntry>, label: string): void {
  const sorted = [...entries.values()].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    // The local header is at least 30 bytes plus the name, then the compressed data.
    const prevEnd = prev.localHeaderOffset + 30 + Buffer.byteLength(prev.name) + prev.compressedSize;
    if (prevEnd > cur.localHeaderOffset) {
      throw new Error(
        `${label}: corrupt zip: entries "${prev.name}" (bytes ${prev.localHeaderOffset}..${prevEnd}) and "${cur.name}" (from ${cur.localHeaderOffset}) overlap`,
      );
    }
  }
}

export class ZipIndex {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    private readonly fh: FileHandle,
    private readonly label: string,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  /** Parses the central directory of the open file `fh`; `label` names the file in messages. */
  static async open(fh: FileHandle, label: string): Promise<ZipIndex> {
    const { size } = await fh.stat();
    // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
    const tailLen = Math.min(size, 22 + U16_MAX);
    const tail = await readExactly(fh, size - tailLen, tailLen, () => label);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      throw new Error(
        `${label}: truncated or not a zip file (no end-of-central-directory record in its last ${tailLen} bytes)`,
      );
    }
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdPos = size - tailLen + eocd;
    if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      // zip64: a locator right before the EOCD points at the zip64 EOCD record with 8-byte fields.
      if (eocdPos < 20) throw new Error(`${label}: zip64 archive without a zip64 locator`);
      const loc = await readExactly(fh, eocdPos - 20, 20, () => label);
      if (loc.readUInt32LE(0) !== ZIP64_LOCATOR_SIG) {
        throw new Error(`${label}: zip64 archive without a zip64 locator`);
      }
      const recPos = u64(loc, 8, label);
      if (recPos + 56 > eocdPos) throw new Error(`${label}: zip64 end record at ${recPos} is out of range`);
      const rec = await readExactly(fh, recPos, 56, () => label);
      if (rec.readUInt32LE(0) !== ZIP64_EOCD_SIG) {
        throw new Error(`${label}: bad zip64 end-of-central-directory record at ${recPos}`);
      }
      count = u64(rec, 32, label);
      cdSize = u64(rec, 40, label);
      cdOffset = u64(rec, 48, label);
    }
    if (cdOffset + cdSize > size) {
      throw new Error(
        `${label}: truncated zip (central directory at ${cdOffset}..${cdOffset + cdSize}, file has ${size} bytes)`,
      );
    }
    const cd = await readExactly(fh, cdOffset, cdSize, () => label);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let k = 0; k < count; k++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL_SIG) {
        throw new Error(`${label}: corrupt zip central directory (entry ${k} of ${count})`);
      }
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) {
        throw new Error(`${label}: corrupt zip central directory (entry ${k} of ${count} runs past its end)`);
      }
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // The zip64 extra field holds, in this order, exactly the fields that overflowed.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (e + 4 + len > extraEnd) {
          throw new Error(`${label}: entry "${name}": corrupt extra field (runs past the record)`);
        }
        if (id === 0x0001) {
          let q = e + 4;
          const end = q + len;
          const u64At = (at: number): number => {
            if (at + 8 > end) throw new Error(`${label}: entry "${name}": zip64 extra field too short`);
            return u64(cd, at, label);
          };
          if (usize === U32_MAX) {
            usize = u64At(q);
            q += 8;
          }
          if (compressedSize === U32_MAX) {
            compressedSize = u64At(q);
            q += 8;
          }
          if (localHeaderOffset === U32_MAX) localHeaderOffset = u64At(q);
        }
        e += 4 + len;
      }
      if ((flags & 1) !== 0) throw new Error(`${label}: entry "${name}" is encrypted`);
      if (method !== 0 && method !== 8) {
        throw new Error(
          `${label}: entry "${name}" uses compression method ${method} (only stored and deflate)`,
        );
      }
      // Sizes are checked here, before any read allocates them: a stored entry holds exactly its
      // bytes, and a deflated one cannot inflate beyond deflate's best ratio.
      if (method === 0 && usize !== compressedSize) {
        throw new Error(
          `${label}: entry "${name}" is stored uncompressed but claims ${usize} bytes in ${compressedSize}`,
        );
      }
      if (method === 8 && usize > compressedSize * MAX_DEFLATE_RATIO + 64) {
        throw new Error(
          `${label}: entry "${name}" claims ${usize} bytes from ${compressedSize} deflated ones, more than deflate can produce (a zip bomb or a corrupt size)`,
        );
      }
      // Entries precede the central directory: one that runs into it was cut off.
      if (localHeaderOffset + 30 + nameLen + compressedSize > cdOffset) {
        throw new Error(`${label}: truncated zip: entry "${name}" runs past the central directory`);
      }
      entries.set(name, { name, method, compressedSize, size: usize, localHeaderOffset });
      p = extraEnd + commentLen;
    }
    checkDisjoint(entries, label);
    return new ZipIndex(fh, label, entries);
  }

  /** Where an entry's bytes start: after its local header, whose extra field may differ from the central one. */
  private async dataOffset(entry: ZipEntry): Promise<number> {
    const known = this.dataOffsets.get(entry.name);
    if (known !== undefined) return known;
    const what = () => `${this.label}: entry "${entry.name}"`;
    const h = await readExactly(this.fh, entry.localHeaderOffset, 30, what);
    if (h.readUInt32LE(0) !== LOCAL_SIG) throw new Error(`${what()}: bad local header signature`);
    const off = entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    // The local header's own name and extra lengths may differ from the central ones: the data
    // they place must still end inside the file.
    const { size } = await this.fh.stat();
    if (off + entry.compressedSize > size) {
      throw new Error(
        `${what()}: its data (bytes ${off}..${off + entry.compressedSize}) runs past the end of the ${size}-byte file`,
      );
    }
    this.dataOffsets.set(entry.name, off);
    return off;
  }

  /** Bytes [start, start + length) of an entry's uncompressed content. */
  async read(entry: ZipEntry, start: number, length: number): Promise<Buffer> {
    const what = () => `${this.label}: entry "${entry.name}"`;
    if (start < 0 || start + length > entry.size) {
      throw new Error(`${what()}: bytes ${start}..${start + length} asked for, it holds ${entry.size}`);
    }
    const off = await this.dataOffset(entry);
    if (entry.method === 0) return readExactly(this.fh, off + start, length, what);
    const raw = await readExactly(this.fh, off, entry.compressedSize, what);
    let all: Buffer;
    try {
      // Never inflate past the size the directory declared (checked against deflate's ratio).
      all = inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new Error(`${what()}: inflates to more than the ${entry.size} bytes the directory says`, {
          cause: e,
        });
      }
      throw new Error(`${what()}: cannot be inflated (${(e as Error).message})`, { cause: e });
    }
    if (all.length !== entry.size) {
      throw new Error(`${what()}: inflates to ${all.length} bytes, the directory says ${entry.size}`);
    }
    return all.subarray(start, start + length);
  }
}
