// Read buffers kept for reuse (the batch thread's shard reads, Parquet's pages and column chunks): a fresh buffer
// for every image or row group is fresh memory, whose page faults cost as much as the read or the decompression,
// and whose garbage starts the thread's collections.

/** Free buffers, up to `maxBytes` in all; a buffer is taken by the first that can hold what is asked. */
export class BufferPool<T extends { byteLength: number }> {
  readonly #free: T[] = [];
  #bytes = 0;

  /** @param capacity what a buffer can hold (its length; a resizable ArrayBuffer's maxByteLength) */
  constructor(readonly maxBytes: number, readonly capacity: (b: T) => number = (b) => b.byteLength) {}

  /** A free buffer that can hold `n` bytes, or undefined (make a new one). */
  take(n: number): T | undefined {
    const i = this.#free.findIndex((b) => this.capacity(b) >= n);
    if (i < 0) return undefined;
    const b = this.#free.splice(i, 1)[0]!;
    this.#bytes -= b.byteLength;
    return b;
  }

  /** Gives `b` back once nothing refers to it, unless the pool would then hold more than maxBytes. */
  give(b: T): void {
    if (this.#bytes + b.byteLength > this.maxBytes) return;
    this.#free.push(b);
    this.#bytes += b.byteLength;
  }
}
