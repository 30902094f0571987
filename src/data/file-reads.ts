// How streamed data files (Parquet, WebDataset shards) are read. Node's asynchronous file calls run on libuv's
// thread pool: the same 4 threads that decode the images. On the stream thread (stream-worker.ts), whose only work
// is reading, they are made synchronous: queued behind a batch's decoding (up to 64 images with prefetch 2), each
// open and read of the next epoch's files used to wait its turn, and the epoch read ahead was often not ready when
// the main thread asked for it (its first chunk came 5-35 ms late at 640x480, against ~1 ms). On the main thread
// (data.decodeThread: false, or counting samples when a data set is opened) they stay asynchronous.
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

let synchronous = false;

/** Whether this thread reads streamed data files synchronously (the stream thread sets it at start). */
export function readSynchronously(on: boolean): void {
  synchronous = on;
}

const endError = (at: number) => new Error(`unexpected end of file at byte ${at} (the file changed while being read?)`);

/** Bytes [start, end) of a file, in a buffer of its own (transferable: not a slice of Node's pool). */
export async function readRange(file: string, start: number, end: number): Promise<Buffer> {
  const out = Buffer.allocUnsafeSlow(Math.max(0, end - start));
  if (synchronous) {
    const fd = openSync(file, 'r');
    try {
      for (let at = 0; at < out.length; ) {
        const n = readSync(fd, out, at, out.length - at, start + at);
        if (n === 0) throw endError(start + at);
        at += n;
      }
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

function* chunksOf(file: string, size: number): Generator<Buffer> {
  const fd = openSync(file, 'r');
  try {
    for (;;) {
      const b = Buffer.allocUnsafe(size);
      const n = readSync(fd, b, 0, size, null);
      if (n === 0) return;
      yield n === size ? b : b.subarray(0, n);
    }
  } finally {
    closeSync(fd); // also when the reader stops early (the stream destroyed: the generator returned)
  }
}

/** A file as a stream of chunks of `size` bytes. */
export function fileStream(file: string, size: number): Readable {
  return synchronous ? Readable.from(chunksOf(file, size), { objectMode: false }) : createReadStream(file, { highWaterMark: size });
}
