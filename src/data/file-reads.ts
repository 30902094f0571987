// How streamed data files are read: Parquet byte ranges (row groups' column chunks, footers) and images stored inside
// WebDataset shards (tar.ts reads the shards' headers itself, synchronously). Node's asynchronous file calls run on
// libuv's thread pool: the same 4 threads that decode the images. On the stream thread (stream-worker.ts), whose only
// work is reading, Parquet reads are made synchronous: queued behind a batch's decoding (up to 64 images with
// prefetch 2), each open and read of the next epoch's files used to wait its turn, and the epoch read ahead was
// often not ready when the main thread asked for it (its first chunk came 5-35 ms late at 640x480, against ~1 ms).
// On the main thread (data.decodeThread: false, or reading a footer when a data set is opened) they stay
// asynchronous.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { ImageRange, Sample } from './manifest.js';

let synchronous = false;

/** Whether this thread reads streamed data files synchronously (the stream thread sets it at start). */
export function readSynchronously(on: boolean): void {
  synchronous = on;
}

const endError = (at: number) => new Error(`unexpected end of file at byte ${at} (the file changed while being read?)`);

/** Fills `into` from an open file, from byte `position` on: positioned reads, synchronous; an early end throws. */
export function readFullySync(fd: number, into: Uint8Array, position: number): void {
  for (let at = 0; at < into.length; ) {
    const n = readSync(fd, into, at, into.length - at, position + at);
    if (n === 0) throw endError(position + at);
    at += n;
  }
}

/**
 * Bytes [start, end) of a file, in a buffer of its own (transferable: not a slice of Node's pool), or into `into`
 * (end - start bytes) when given.
 */
export async function readRange(file: string, start: number, end: number, into?: Uint8Array): Promise<Uint8Array> {
  const out = into ?? Buffer.allocUnsafeSlow(Math.max(0, end - start));
  if (synchronous) {
    const fd = openSync(file, 'r');
    try {
      readFullySync(fd, out, start);
    } finally {
      closeSync(fd);
    }
    return out;
  }
  const handle = await open(file, 'r');
  try {
    for (let at = 0; at < out.length; ) {
      const { bytesRead } = await handle.read(out, at, out.length - at, start + at);
      if (bytesRead === 0) throw endError(start + at);
      at += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return out;
}

/** Open files of image ranges (shards) and their inodes, most recently used last; a few, closed as others come. */
const rangeFiles = new Map<string, { fd: number; ino: number }>();
const RANGE_FILES = 16;

/**
 * The bytes of an image stored inside another file (a WebDataset shard's member): one positioned read, synchronous
 * (the batch thread's reads are, as its image files' are), the shard kept open between its images (opened again when
 * the range comes from a file of another inode: one replaced at the same path). Read into the start of `into` when
 * given (at least r.length bytes), else into a buffer of its own.
 */
export function readImageRange(r: ImageRange, into?: Buffer): Buffer {
  let open = rangeFiles.get(r.file);
  if (open) rangeFiles.delete(r.file);
  if (open && r.ino !== undefined && open.ino !== r.ino) {
    closeSync(open.fd);
    open = undefined;
  }
  if (!open) {
    const fd = openSync(r.file, 'r');
    let ino: number;
    try {
      ino = fstatSync(fd).ino;
      if (r.ino !== undefined && ino !== r.ino) throw new Error('the file was replaced since its samples were read; read the data set again');
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    open = { fd, ino };
    if (rangeFiles.size >= RANGE_FILES) {
      const [oldest, o] = rangeFiles.entries().next().value as [string, { fd: number }];
      rangeFiles.delete(oldest);
      closeSync(o.fd);
    }
  }
  rangeFiles.set(r.file, open);
  const out = into ? into.subarray(0, r.length) : Buffer.allocUnsafeSlow(r.length);
  readFullySync(open.fd, out, r.offset);
  return out;
}

/**
 * An image file's bytes, read synchronously into the start of a buffer from `take` (given the file's size), as
 * readFileSync reads them (the size first, then that many bytes or up to an earlier end) but into memory that is
 * reused: a view of the buffer taken, to give back once the bytes are used.
 */
export function readImageFile(file: string, take: (n: number) => Buffer): Buffer {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const buffer = take(size);
    let at = 0;
    for (let n; at < size && (n = readSync(fd, buffer, at, size - at, at)) > 0; ) at += n;
    return buffer.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/** A sample's encoded image: held in memory (Parquet), inside a shard (WebDataset) or a file of its own. */
export function encodedImage(s: Pick<Sample, 'image' | 'bytes' | 'range'>): Uint8Array {
  return s.bytes ?? (s.range ? readImageRange(s.range) : readFileSync(s.image));
}
