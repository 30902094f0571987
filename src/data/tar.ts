// Tar files (WebDataset shards) read member by member, synchronously, through one small reused window: headers and
// small members are read into it, and a member's body is never read unless asked for (bytes()), so that counting a
// shard reads only its headers and an image member can be left where it is, as a byte range of the file that the
// batch thread reads itself. Formats: POSIX ustar (name prefix), pax extended headers (path, size) and GNU long
// names, as Python's tarfile, GNU tar, webdataset's TarWriter and tar-stream write them; the header checksum is
// checked. Not tar-stream's parser: its stream interface hands every byte of every member through JS chunks (a
// fresh 1 MiB buffer per read, each image copied again out of them), which cost more than decoding some images;
// tar-stream still writes the shards (convert.ts).
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFullySync } from './file-reads.js';

/** A member as its headers describe it: its full name, whether it is a regular file, and where its bytes are. */
export interface TarMember {
  name: string;
  /** a regular file (typeflag '0', NUL or '7'); directories, links and the like are 'other' */
  file: boolean;
  /** the file offset of its first byte */
  offset: number;
  size: number;
  /** the file offset of its first header (a GNU long name's or pax attributes' before its own): reading may start there */
  start: number;
}

/** A malformed or truncated tar file; the message says what and where (a byte offset). */
export class TarError extends Error {
  /** the file is not a tar archive at all (compressed data), rather than a corrupt or truncated one */
  notTar = false;
}

const BLOCK = 512;
/** the window: headers and small members (texts, labels, JSON); larger members get a buffer of their own */
const WINDOW = 64 << 10;
/** the least read into the window: a header with the small members after it (and, with small images, a few samples) */
const READ = 16 << 10;
/** the largest GNU long name or pax header read */
const MAX_ATTRIBUTES = 4 << 20;

export class TarReader {
  readonly size: number;
  /** the file's inode (image ranges carry it: see readImageRange) */
  readonly ino: number;
  readonly #fd: number;
  readonly #window = Buffer.allocUnsafe(WINDOW);
  #start = 0;
  #length = 0;

  constructor(readonly file: string) {
    this.#fd = openSync(file, 'r');
    try {
      const st = fstatSync(this.#fd);
      this.size = st.size;
      this.ino = st.ino;
    } catch (e) {
      closeSync(this.#fd);
      throw e;
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  /**
   * Bytes [at, at + n) of the file. Up to the window's size: a view into the window, valid until the next call;
   * larger: a buffer of its own.
   */
  bytes(at: number, n: number): Buffer {
    if (at + n > this.size) throw new TarError(`unexpected end of file at byte ${this.size} (${at + n - this.size} bytes short)`);
    if (n > WINDOW) {
      const out = Buffer.allocUnsafe(n);
      this.#read(out, at);
      return out;
    }
    if (at < this.#start || at + n > this.#start + this.#length) {
      this.#start = at;
      this.#length = Math.min(WINDOW, this.size - at, Math.max(n, READ));
      this.#read(this.#window.subarray(0, this.#length), at);
    }
    return this.#window.subarray(at - this.#start, at - this.#start + n);
  }

  #read(into: Buffer, at: number): void {
    try {
      readFullySync(this.#fd, into, at);
    } catch (e) {
      // a file that ends early is a truncated shard (the caller reports TarErrors as such); other errors are I/O's
      if ((e as NodeJS.ErrnoException).code) throw e;
      throw new TarError((e as Error).message);
    }
  }

  /**
   * The members in order, from the header at byte `from` on (a member's `start`, as an earlier read gave it). Throws
   * TarError at a corrupt header or a member cut short by the end of the file.
   */
  *members(from = 0): Generator<TarMember> {
    let at = from;
    // the next member's name (GNU 'L') and attributes (pax 'x'), from the entries before it, and where its first was
    let longName: string | null = null;
    let pax: Map<string, string> | null = null;
    let start = at;
    const packed = from === 0 && this.size >= 6 ? compression(this.bytes(0, 6)) : undefined;
    if (packed) {
      const e = new TarError(`not a tar archive but ${packed.name}-compressed data: decompress it (${packed.tool} < shard > shard.tar), or write shards with mmtrain convert; shards are read uncompressed, their images by byte range`);
      e.notTar = true;
      throw e;
    }
    while (at < this.size) {
      if (longName === null && pax === null) start = at;
      const h = this.bytes(at, BLOCK);
      if (isZeroBlock(h)) return; // end of the archive
      if (!checksumOk(h)) throw new TarError(`invalid header at byte ${at} (its checksum does not match)`);
      const type = h[156]!;
      let size = headerSize(h);
      if (size === null) throw new TarError(`invalid header at byte ${at} (its size field is not a number)`);
      const attributes = type === 0x4c || type === 0x4b || type === 0x78 || type === 0x67;
      if (pax?.has('size') && !attributes) {
        const v = pax.get('size')!;
        if (!/^\d+$/.test(v)) throw new TarError(`invalid pax header before byte ${at} (size "${v}" is not a number)`);
        size = Number(v);
      }
      // a long name or pax header of megabytes is a corrupt header, not something to allocate (tar-stream's limit)
      if (attributes && size > MAX_ATTRIBUTES) throw new TarError(`invalid header at byte ${at} (a ${size}-byte long name or pax header; at most ${MAX_ATTRIBUTES})`);
      const body = at + BLOCK;
      const next = body + Math.ceil(size / BLOCK) * BLOCK;
      const name = pax?.get('path') ?? longName ?? headerName(h);
      if (body + size > this.size) throw new TarError(`member ${name} has ${size} bytes, the file ends ${this.size - body} bytes into it`);
      if (type === 0x4c) longName = cString(this.bytes(body, size)); // 'L': GNU long name of the next member
      else if (type === 0x78) pax = parsePax(this.bytes(body, size), body); // 'x': pax attributes of the next member
      else if (type !== 0x67 && type !== 0x4b) {
        // 'g' (pax global) and 'K' (GNU long link name) say nothing this reader uses
        yield { name, file: type === 0x30 || type === 0 || type === 0x37, offset: body, size, start };
        longName = null;
        pax = null;
      }
      at = next;
    }
  }
}

/** Compressions a shard may have been packed with: their name, the tool that unpacks them, their magic number. */
const COMPRESSIONS: { name: string; tool: string; is: (head: Buffer) => boolean }[] = [
  { name: 'gzip', tool: 'gunzip', is: (h) => h[0] === 0x1f && h[1] === 0x8b },
  { name: 'zstd', tool: 'unzstd', is: (h) => h.readUInt32LE(0) === 0xfd2fb528 },
  { name: 'bzip2', tool: 'bunzip2', is: (h) => /^BZh[1-9]1A$/.test(h.toString('latin1')) }, // then the block magic 1AY&SY
  { name: 'xz', tool: 'unxz', is: (h) => h.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) },
];

/** The compression whose magic number `head` (a file's first 6 bytes) starts with. */
function compression(head: Buffer): (typeof COMPRESSIONS)[number] | undefined {
  return COMPRESSIONS.find((c) => c.is(head));
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) if (h.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** The header's checksum: the sum of its bytes with the checksum field as spaces (unsigned, or signed as old tars). */
function checksumOk(h: Buffer): boolean {
  const want = parseOctal(h, 148, 8);
  if (want === null) return false;
  let sum = 8 * 0x20;
  let high = 0; // bytes over 127: each is 256 less in the signed sum
  if (h.byteOffset % 4 === 0) {
    // four bytes at a time: two 16-bit lanes of byte sums (128 words of at most 2 x 255 a lane: no carry between
    // them) and four 8-bit lanes of high bits; the checksum field (words 37 and 38) left out
    const w = new Uint32Array(h.buffer, h.byteOffset, BLOCK / 4);
    let lanes = 0;
    let highs = 0;
    for (let i = 0; i < BLOCK / 4; i++) {
      if (i === 37) i = 39;
      const x = w[i]!;
      lanes += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
      highs += (x >>> 7) & 0x01010101;
    }
    const low = lanes % 65536;
    sum += low + (lanes - low) / 65536;
    high = (highs & 0xff) + ((highs >>> 8) & 0xff) + ((highs >>> 16) & 0xff) + (highs >>> 24);
  } else {
    for (let i = 0; i < BLOCK; i++) {
      if (i === 148) i = 156;
      const b = h[i]!;
      sum += b;
      high += b >> 7;
    }
  }
  return want === sum || want === sum - 256 * high;
}

/** An octal field (NUL- or space-terminated, leading spaces allowed); null when it is not one. */
function parseOctal(h: Buffer, at: number, n: number): number | null {
  let i = at;
  const end = at + n;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = h[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return null;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits ? v : null;
}

/** The size field: octal, or GNU's base-256 (high bit of its first byte set) for sizes of 8 GiB and more. */
function headerSize(h: Buffer): number | null {
  if (h[124]! & 0x80) {
    let v = h[124]! & 0x7f;
    for (let i = 125; i < 136; i++) v = v * 256 + h[i]!;
    return v;
  }
  return parseOctal(h, 124, 12) ?? (h[124] === 0 ? 0 : null);
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

/** The name field, with the ustar prefix when the header has one ("ustar\0" magic; GNU's "ustar  " has none). */
function headerName(h: Buffer): string {
  const name = cString(h.subarray(0, 100));
  if (h.toString('latin1', 257, 263) === 'ustar\0') {
    const prefix = cString(h.subarray(345, 500));
    if (prefix) return `${prefix}/${name}`;
  }
  return name;
}

/** pax records: "<length> <key>=<value>\n", the length counting the whole record. */
function parsePax(b: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < b.length; ) {
    if (b[i] === 0) break; // padding
    const space = b.indexOf(0x20, i);
    const len = space > i ? Number(b.toString('latin1', i, space)) : NaN;
    if (!Number.isInteger(len) || len <= space - i || i + len > b.length) throw new TarError(`invalid pax header at byte ${at + i}`);
    const record = b.toString('utf8', space + 1, i + len - 1); // without the trailing newline
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}
