// Dynamic batching for the HTTP server: items from concurrent requests are gathered into one batch, run when it is
// full or when its first item has waited maxWaitMs, one batch at a time. A request's items stay together and in
// order; a request larger than the batch size is split over consecutive batches.
import { checkInt, checkNumber } from '../errors.js';

export interface BatcherOptions {
  /** items per batch at most */
  maxBatch: number;
  /** how long the first item of a batch waits for others, in milliseconds */
  maxWaitMs: number;
  /**
   * Whether more items are on their way (requests being read and decoded): when none are, a batch runs at once
   * instead of waiting maxWaitMs for items that will not come. Default: always assume more may come.
   */
  more?: () => boolean;
}

export interface BatcherStats {
  batches: number;
  items: number;
  /** the largest batch run so far */
  largest: number;
}

interface Pending<I, O> {
  items: I[];
  results: O[];
  /** items of this request handed to a batch so far */
  taken: number;
  done: number;
  resolve: (r: O[]) => void;
  reject: (e: unknown) => void;
}

export class DynamicBatcher<I, O> {
  readonly #queue: Pending<I, O>[] = [];
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #closed = false;
  readonly stats: BatcherStats = { batches: 0, items: 0, largest: 0 };

  /** `run` maps a batch of items to their results, in order (it may throw: every request in the batch fails). */
  constructor(readonly run: (items: I[]) => O[] | Promise<O[]>, readonly options: BatcherOptions) {
    checkInt('maxBatch', options.maxBatch, 1, 65536);
    checkNumber('maxWaitMs', options.maxWaitMs, 0, 60000);
  }

  /** Results for `items`, in order, once the batches holding them have run. */
  submit(items: I[]): Promise<O[]> {
    if (this.#closed) return Promise.reject(new Error('the server is shutting down'));
    if (!items.length) return Promise.resolve([]);
    return new Promise<O[]>((resolve, reject) => {
      this.#queue.push({ items, results: new Array(items.length), taken: 0, done: 0, resolve, reject });
      this.#schedule();
    });
  }

  /** Runs the waiting items now if nothing more is on its way (call when a request that was expected fails). */
  poke(): void {
    this.#schedule();
  }

  /** Items waiting for a batch. */
  get waiting(): number {
    return this.#queue.reduce((n, p) => n + p.items.length - p.taken, 0);
  }

  /** Stops taking requests; resolves once the queued ones have run. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length || this.#running) {
      if (!this.#running) this.#flush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  #schedule(): void {
    if (this.#running) return; // the batch running now schedules the next one when it ends
    if (this.waiting >= this.options.maxBatch || this.options.maxWaitMs === 0 || !(this.options.more?.() ?? true)) {
      this.#flush();
    } else if (!this.#timer && this.waiting > 0) {
      this.#timer = setTimeout(() => this.#flush(), this.options.maxWaitMs);
    }
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#running || !this.waiting) return;
    // take up to maxBatch items, oldest requests first
    const parts: { p: Pending<I, O>; from: number; n: number }[] = [];
    let room = this.options.maxBatch;
    for (const p of this.#queue) {
      if (!room) break;
      const n = Math.min(room, p.items.length - p.taken);
      if (n > 0) parts.push({ p, from: p.taken, n });
      p.taken += n;
      room -= n;
    }
    const batch = parts.flatMap(({ p, from, n }) => p.items.slice(from, from + n));
    this.#running = true;
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    const finish = (results: O[] | null, error?: unknown) => {
      let k = 0;
      for (const { p, from, n } of parts) {
        if (results) for (let j = 0; j < n; j++) p.results[from + j] = results[k++]!;
        else p.taken = -Infinity; // failed: its later items are dropped
        p.done += n;
        if (!results) p.reject(error);
        else if (p.done === p.items.length) p.resolve(p.results);
      }
      for (let i = this.#queue.length - 1; i >= 0; i--) {
        const p = this.#queue[i]!;
        if (p.done === p.items.length || p.taken < 0) this.#queue.splice(i, 1);
      }
      this.#running = false;
      // the items that came during this batch have waited already: the next batch starts now
      if (this.waiting) this.#flush();
    };
    // a macrotask later, so that the requests that arrived meanwhile are parsed before the next batch forms
    setImmediate(() => {
      Promise.resolve()
        .then(() => this.run(batch))
        .then((r) => finish(r), (e) => finish(null, e));
    });
  }
}
