// Batch preparation on a worker thread. sharp's decoding already runs in libuv's thread pool, but the JS work
// around each image (reading the file, building the libvips pipeline, resolving its promise: ~0.5 ms an image)
// needs a JS thread between stages; on the main thread that work waits for the synchronous training step, so each
// step let the prefetched batches advance one stage only. A worker thread's event loop keeps them moving while
// the model computes. It also normalises every batch, decoded or from the image cache (~3-4 ms of the main
// thread between two steps at 8 x 224 px, with its caches cold); the main thread receives finished batches, their
// buffers transferred, and wraps each in a tensor. Tiny-preset data wait while decoding fell from 5-9% of a step
// to ~1-2%.
import { Worker } from 'node:worker_threads';
// sharp's native library is loaded by this (main) thread before any worker, so that no worker's exit unloads it
// (lovell/sharp#2263).
import 'sharp';
import { MmtrainError } from '../errors.js';
import { dropYoungBuffer } from '../heap.js';
import { type Tensor, fromBuffer } from '../tensor/tensor.js';
import type { DecodedImage, ImageConfig } from './image.js';

/** An image to decode (a seed turns augmentation on for it), or pixels already decoded (an image-cache hit). */
export type BatchItem = { file: string; seed: number | null } | { data: Uint8Array };

export interface BatchRequest {
  id: number;
  cfg: ImageConfig;
  items: BatchItem[];
  /** send each decoded image's uint8 pixels back too (for the image cache) */
  wantPixels: boolean;
}

/** Per item: the decoded pixels (when asked for), the decoding error's message (it names the file), or null. */
export type ItemResult = { data: Uint8Array; width: number; height: number } | { error: string } | null;

export interface BatchReply {
  id: number;
  results: ItemResult[];
  /** every item's image but the failed ones, in order, normalised to one float32 (B, 3, S, S) buffer */
  pixels: Float32Array;
}

/** What the thread gives the loader for a batch. */
export interface PreparedBatch {
  /** per item: the decoded pixels (when asked for, for the image cache), the error, or null */
  results: (DecodedImage | Error | null)[];
  /** the images that did not fail, in order, normalised (B, 3, S, S) */
  pixels: Float32Array;
}

interface Pending {
  resolve: (r: PreparedBatch) => void;
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
      p.resolve({
        results: m.results.map((r) => (r === null ? null : 'error' in r ? new MmtrainError(r.error) : { data: r.data, width: r.width, height: r.height })),
        pixels: m.pixels,
      });
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

  prepare(items: BatchItem[], cfg: ImageConfig, wantPixels: boolean): Promise<PreparedBatch> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      // Given pixels are copied out of whatever buffer holds them (a view would send its whole buffer: for a cache
      // hit, the whole cache file), and the copies are transferred.
      const own = items.map((it) => ('data' in it ? { data: it.data.slice() } : it));
      const transfer = own.flatMap((it) => ('data' in it ? [it.data.buffer as ArrayBuffer] : []));
      this.#worker.postMessage({ id, cfg, items: own, wantPixels } satisfies BatchRequest, transfer);
    });
  }

  #settle(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
  }
}

let shared: BatchThread | null = null;

/**
 * Decodes and resizes the batch's image files (as loadImage does) and normalises the whole batch on the process's
 * batch thread, started on first use and shared by every DataLoader. Resolves to one result per item and the
 * normalised batch buffer, so that the main thread only wraps it in a tensor.
 */
export function prepareOnThread(items: BatchItem[], cfg: ImageConfig, opts: { wantPixels?: boolean } = {}): Promise<PreparedBatch> {
  shared ??= new BatchThread();
  return shared.prepare(items, cfg, opts.wantPixels ?? false);
}

/**
 * Wraps a batch buffer received from the thread in a tensor (no copy; a copy cost the step 2-4 ms of data wait at
 * 8 x 224 px) and counts it for a scheduled young-generation collection (dropYoungBuffer). With 32 MiB between
 * collections, a buffer still in flight usually meets one collection before it dies, so few are promoted to the old
 * generation.
 */
export function takeBatchPixels(pixels: Float32Array, shape: number[]): Tensor {
  const t = fromBuffer(pixels, shape);
  dropYoungBuffer(pixels.byteLength);
  return t;
}
