// Buffers of encoded images that go round the threads: the stream thread copies a Parquet image into one (its page is
// reused), the main thread passes it on to the batch thread, and once the image is decoded the batch thread sends the
// buffer straight back to that stream thread (a port of their own: batch-thread.ts returnImagesTo), which fills it
// again. A fresh buffer per image was fresh memory to fault in on the stream thread and external memory on the batch
// thread, whose collector then ran a mark-compact every ~200 photos to free them.
//
// Each thread has its own instance of this module: its pool, and the buffers it knows to hold one image alone, which
// may be transferred whole (a view's clone would copy the whole buffer under it; transferring a buffer that other views
// share would empty them).
import { BufferPool } from './buffer-pool.js';

/** Buffers are made a little larger than asked, in steps of this, so that the next image of about the same size fits. */
const STEP = 16 << 10;

const pool = new BufferPool<ArrayBuffer>(32 << 20);
const alone = new WeakSet<ArrayBuffer>();

/** A view of `n` bytes at the start of a buffer that holds nothing else (reused if one is free). */
export function imageBuffer(n: number): Uint8Array {
  const b = pool.take(n) ?? Buffer.allocUnsafeSlow(Math.ceil(Math.max(n, 1) / STEP) * STEP).buffer;
  alone.add(b);
  return new Uint8Array(b, 0, n);
}

/**
 * `b` itself when its buffer holds it alone (then it may be transferred whole), else a copy in a buffer that does
 * (reused when one is free; not zeroed first, as slice() would be): a Parquet image out of its page, which is reused.
 */
export function ownImage(b: Uint8Array): Uint8Array {
  if (isAlone(b)) return b;
  const c = imageBuffer(b.byteLength);
  c.set(b);
  return c;
}

/** Notes that `b`'s buffer holds `b` alone (it came by transfer from a thread that knew it did). */
export function holdsAlone(b: Uint8Array): void {
  alone.add(b.buffer as ArrayBuffer);
}

/** Whether `b`'s buffer holds `b` alone: then it may be transferred whole, and reused once its image is decoded. */
export function isAlone(b: Uint8Array): boolean {
  return alone.has(b.buffer as ArrayBuffer);
}

/** Buffers whose images have been decoded, kept to be filled again (up to 32 MB in all). */
export function giveImageBuffers(buffers: readonly ArrayBuffer[]): void {
  for (const b of buffers) if (b.byteLength) pool.give(b);
}
