// Image decoding on a worker thread. sharp's decoding already runs in libuv's thread pool, but the JS work around
// each image (reading the file, building the libvips pipeline, resolving its promise: ~0.5 ms an image) needs a JS
// thread between stages; on the main thread that work waits for the synchronous training step, so each step let the
// prefetched batches advance one stage only. A worker thread's event loop keeps them moving while the model
// computes. Only decoding moves: cache hits and the normalisation stay on the main thread, in LibTorch, where one
// vectorised call normalises a batch in a fraction of what JS takes; normalising in the thread (an earlier version)
// took CPU from the training step on a machine whose cores the step already uses, and epochs ran 5-20% slower
// (docs/performance.md).
import { Worker } from 'node:worker_threads';
// sharp's native library is loaded by this (main) thread before any worker, so that no worker's exit unloads it
// (lovell/sharp#2263).
import 'sharp';
import { MmtrainError } from '../errors.js';
import type { DecodedImage, ImageConfig } from './image.js';

/** An image to decode (a seed turns augmentation on for it). */
export interface BatchItem {
  file: string;
  seed: number | null;
}

export interface BatchRequest {
  id: number;
  cfg: ImageConfig;
  items: BatchItem[];
}

/** Per item: the decoded 8-bit pixels, or the decoding error's message (it names the file). */
export type ItemResult = { data: Uint8Array; width: number; height: number } | { error: string };

export interface BatchReply {
  id: number;
  results: ItemResult[];
}

interface Pending {
  resolve: (r: (DecodedImage | Error)[]) => void;
  reject: (e: Error) => void;
}

class BatchThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #failed: Error | null = null;

  constructor() {
    this.#worker = new Worker(new URL('./batch-worker.js', import.meta.url));
    // An idle worker must not keep the process alive; one with work in flight must (see #settle).
    this.#worker.unref();
    this.#worker.on('message', (m: BatchReply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#settle(m.id);
      p.resolve(m.results.map((r) => ('error' in r ? new MmtrainError(r.error) : r)));
    });
    const fail = (e: Error) => {
      if (this.#failed) return;
      this.#failed = new MmtrainError(`the image decoding thread stopped: ${e.message}; set data.decodeThread: false to decode on the main thread`);
      if (shared === this) shared = null;
      for (const [id, p] of [...this.#pending]) {
        this.#settle(id);
        p.reject(this.#failed);
      }
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  decode(items: BatchItem[], cfg: ImageConfig): Promise<(DecodedImage | Error)[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, cfg, items } satisfies BatchRequest);
    });
  }

  #settle(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
  }
}

let shared: BatchThread | null = null;

/**
 * Decodes and resizes image files (as loadImage does) on the process's batch thread, started on first use and
 * shared by every DataLoader. Resolves to one result per item: its 8-bit pixels, or the error naming its file.
 */
export function decodeOnThread(items: BatchItem[], cfg: ImageConfig): Promise<(DecodedImage | Error)[]> {
  shared ??= new BatchThread();
  return shared.decode(items, cfg);
}
