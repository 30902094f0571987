// Read buffers kept for reuse (the batch thread's shard reads, Parquet's pages and column chunks): a fresh buffer
// for every image or row group is fresh memory, whose page faults cost as much as the read or the decompression,
// and whose garbage starts the thread's collections.

/** Free buffers, up to `maxBytes` in all; a buffer is taken by the first that can hold what is asked. */
export class BufferPool<T extends { byteLength: number }> {
  readonly #free: T[] = [];
  #bytes = 0;

  /** @param capacity what a buffer can hold (its length; a resizable ArrayBuffer's maxByteLength) */
  constructor(readonly maxBytes: number, readonly capacity: (b: T) => number = (b) => b.byteLength) {}

  /**
   * A free buffer that can hold `n` bytes, or undefined (make a new one): the one given back last that can (its
   * memory the most likely still in cache; taken from the end of the list, as a rule without moving the others).
   */
  take(n: number): T | undefined {
    const free = this.#free;
    let i = free.length - 1;
    while (i >= 0 && this.capacity(free[i]!) < n) i--;
    if (i < 0) return undefined;
    const b = free[i]!;
    if (i === free.length - 1) free.pop();
    else free.splice(i, 1);
    this.#bytes -= b.byteLength;
    return b;
  }

  /**
   * For resizable buffers: the free one whose current length is the least at or above `n`, else the longest that can
   * hold `n`, or undefined. Growing a resizable ArrayBuffer zero-fills what it adds (and faults in the pages that
   * shrinking gave back): ~5 ms to take a buffer last used for a 2 KB text chunk to a 6.5 MB chunk of photos.
   */
  takeClosest(n: number): T | undefined {
    const free = this.#free;
    let best = -1;
    for (let i = free.length - 1; i >= 0; i--) {
      const b = free[i]!;
      if (this.capacity(b) < n) continue;
      if (best < 0) {
        best = i;
        continue;
      }
      const was = free[best]!.byteLength;
      const len = b.byteLength;
      if (len >= n ? was < n || len < was : was < n && len > was) best = i;
    }
    if (best < 0) return undefined;
    const b = free[best]!;
    free.splice(best, 1);
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
