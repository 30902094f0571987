// Image decoding on a worker thread. sharp's decoding already runs in libuv's thread pool, but the JS work around
// each image (reading the file, building the libvips pipeline, resolving its promise: ~0.5 ms an image) needs a JS
// thread between stages; on the main thread that work waits for the synchronous training step, so each step let the
// prefetched batches advance one stage only. A worker thread's event loop keeps them moving while the model
// computes. Only decoding moves: cache hits and the normalisation stay on the main thread, in LibTorch, where one
// vectorised call normalises a batch in a fraction of what JS takes; normalising in the thread (an earlier version)
// took CPU from the training step on a machine whose cores the step already uses, and epochs ran 5-20% slower
// (docs/performance.md). For the same reason the thread decodes ahead with few images at once, and widens only for
// a batch the training loop is waiting for (see batch-worker.ts and DataLoader.epoch).
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';
// sharp's native library is loaded by this (main) thread before any worker, so that no worker's exit unloads it
// (lovell/sharp#2263).
import 'sharp';
import { MmtrainError } from '../errors.js';
import type { DecodedImage, ImageConfig } from './image.js';
import { isAlone } from './image-buffers.js';
import type { ImageRange } from './manifest.js';

/** An image to decode (a seed turns augmentation on for it). */
export interface BatchItem {
  /** the file to read, or the name of the image held in `bytes` */
  file: string;
  /** the encoded image in memory (Parquet): decoded from here instead of read from `file` */
  bytes?: Uint8Array;
  /** where the encoded image is inside another file (a WebDataset shard): read from there instead of `file` */
  range?: ImageRange;
  /** once decoded, `bytes`' buffer goes back to the thread it came from (returnImagesTo's id), to be filled again */
  returnTo?: number;
  seed: number | null;
}

/** How many images the thread decodes at once. */
export interface DecodeWidth {
  /** for batches the training loop is not waiting for yet (the latest value sent applies to all of them) */
  background: number;
  /** for this batch once it is hurried */
  concurrency: number;
}

export interface BatchRequest extends DecodeWidth {
  kind: 'decode';
  id: number;
  cfg: ImageConfig;
  items: BatchItem[];
  /** buffers of earlier results, their pixels copied into a batch: to decode into again (givePixelsBack) */
  pixels: ArrayBuffer[];
}

/** The training loop waits for this request: start all of its images (up to its concurrency). */
export interface HurryMessage {
  kind: 'hurry';
  id: number;
  background: number;
}

/** A request in flight: its results, whether they are in, and a way to hurry it. */
export interface DecodeTicket {
  results: Promise<Decoded>;
  /** whether the answer has arrived (its promise is then settled), taking in any answers already sent */
  arrived(): boolean;
  /** the loop is waiting for this batch; `background` is the new width for those it is not waiting for */
  hurry(background: number): void;
}

/** Batch thread <- main: the port to send image buffers back on, for BatchItem.returnTo `id`. */
export interface ReturnsMessage {
  kind: 'returns';
  id: number;
  port: MessagePort;
}

/** Per item: the decoded 8-bit pixels, or the decoding error's message (it names the file). */
export type ItemResult = { data: Uint8Array; width: number; height: number } | { error: string };

export interface BatchReply {
  id: number;
  results: ItemResult[];
  /** the most images the thread was decoding at once while this request was open */
  peak: number;
  /** how many of its images were decoded into buffers given back (givePixelsBack) */
  reused: number;
}

/** A request's answer: one result per item, its 8-bit pixels or the error naming its file. */
export interface Decoded {
  images: (DecodedImage | Error)[];
  /** the most images the thread was decoding at once while this request was open */
  peak: number;
  /** how many of its images were decoded into buffers given back (givePixelsBack) rather than fresh ones */
  reused: number;
}

interface Pending {
  resolve: (r: Decoded) => void;
  reject: (e: Error) => void;
}

class BatchThread {
  readonly #worker: Worker;
  // Answers come on a port of their own, so that they can also be taken synchronously (receiveMessageOnPort): one
  // that arrived during a training step is then used without waiting for a turn of the event loop.
  readonly #replies: MessagePort;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #failed: Error | null = null;
  /** the buffers the thread's results came in (its pixel buffers), and those given back, sent with the next request */
  readonly #fromThread = new WeakSet<ArrayBuffer>();
  #spare: ArrayBuffer[] = [];
  #spareBytes = 0;
  /** images decoded, and of those decoded into buffers given back (DecodeStats) */
  readonly stats: DecodeStats = { images: 0, reused: 0 };

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.#worker = new Worker(new URL('./batch-worker.js', import.meta.url), { workerData: { replies: port2 }, transferList: [port2] });
    this.#replies = port1;
    // An idle worker must not keep the process alive; one with work in flight must (see #settle).
    this.#worker.unref();
    this.#replies.on('message', (m: BatchReply) => this.#answer(m));
    this.#replies.unref();
    const fail = (e: Error) => {
      if (this.#failed) return;
      this.#failed = new MmtrainError(`the image decoding thread stopped: ${e.message}; set data.decodeThread: false to decode on the main thread`);
      if (shared === this) shared = null;
      this.#replies.close();
      for (const [id, p] of [...this.#pending]) {
        this.#settle(id);
        p.reject(this.#failed);
      }
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  /** Gives the thread a port to send image buffers back on (ReturnsMessage). */
  returns(id: number, port: MessagePort): void {
    if (!this.#failed) this.#worker.postMessage({ kind: 'returns', id, port } satisfies ReturnsMessage, [port]);
  }

  decode(items: BatchItem[], cfg: ImageConfig, width: DecodeWidth): DecodeTicket {
    if (this.#failed) return { results: Promise.reject(this.#failed), arrived: () => true, hurry: () => {} };
    const id = this.#nextId++;
    const results = new Promise<Decoded>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      // in-memory images travel by transfer: a clone of a view would copy the whole buffer under it (a row group)
      try {
        const sent = items.map((it) => (it.bytes ? { ...it, bytes: ownBuffer(it.bytes) } : it));
        const pixels = this.#spare;
        const transfer = [...sent.flatMap((it) => (it.bytes ? [it.bytes.buffer as ArrayBuffer] : [])), ...pixels];
        this.#worker.postMessage({ kind: 'decode', id, cfg, items: sent, pixels, ...width } satisfies BatchRequest, transfer);
        this.#spare = [];
        this.#spareBytes = 0;
      } catch (e) {
        this.#settle(id); // not sent: no answer will come
        throw e;
      }
    });
    const arrived = () => {
      for (let m; this.#pending.has(id) && (m = receiveMessageOnPort(this.#replies)); ) this.#answer(m.message as BatchReply);
      return !this.#pending.has(id);
    };
    const hurry = (background: number) => {
      if (this.#pending.has(id)) this.#worker.postMessage({ kind: 'hurry', id, background } satisfies HurryMessage);
    };
    return { results, arrived, hurry };
  }

  /** Keeps the buffers of these results (their pixels now copied: see givePixelsBack) for the next request. */
  giveBack(images: readonly DecodedImage[]): void {
    for (const im of images) {
      const b = im.data.buffer as ArrayBuffer;
      if (!this.#fromThread.has(b) || this.#spareBytes + b.byteLength > SPARE_PIXEL_BYTES) continue;
      this.#fromThread.delete(b); // given back once
      this.#spare.push(b);
      this.#spareBytes += b.byteLength;
    }
  }

  #answer(m: BatchReply): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#settle(m.id);
    for (const r of m.results) if ('data' in r) this.#fromThread.add(r.data.buffer as ArrayBuffer);
    this.stats.images += m.results.length;
    this.stats.reused += m.reused;
    p.resolve({ images: m.results.map((r) => ('error' in r ? new MmtrainError(r.error) : r)), peak: m.peak, reused: m.reused });
  }

  #settle(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
  }
}

/**
 * `b` itself when its buffer holds it alone (image-buffers.ts: then transferred whole, and unusable here after), else
 * a copy that does. A buffer transferred already is empty (its copy fails to decode, naming the image): a message
 * transferring it would be dropped, and its answer never come. Unlike image-buffers.ts ownImage (the stream thread's),
 * the copy is of the image's length and not from a pool: no buffers come back to this thread to fill a pool.
 */
function ownBuffer(b: Uint8Array): Uint8Array {
  if (isAlone(b) && b.buffer.byteLength > 0) return b;
  const c = Buffer.allocUnsafeSlow(b.byteLength); // not zeroed first, as slice() would
  if (b.byteLength) c.set(b); // (a detached view's set throws)
  return c;
}

let shared: BatchThread | null = null;

/** What the process's batch thread has decoded since it started. */
export interface DecodeStats {
  /** images (decoded or failed) */
  images: number;
  /** of those, decoded into buffers the main thread gave back (givePixelsBack) rather than fresh memory */
  reused: number;
}

/** The batch thread's counts so far (zeros before it starts; a thread started again counts anew). */
export function decodeStats(): DecodeStats {
  return { ...(shared?.stats ?? { images: 0, reused: 0 }) };
}

/** at most this much of given-back pixel buffers waits for the next request (two batches of 32 at 384 px) */
const SPARE_PIXEL_BYTES = 32 << 20;

/**
 * Gives the buffers of decoded images back to the batch thread (with its next request), to decode into again, once
 * their pixels have been copied out (into a batch's tensor): images from elsewhere (a cache) are left alone. A fresh
 * buffer for every image is external memory the main thread's collector counts (4.8 MB a batch of 32 at 224 px):
 * with the batch's own buffer (collate.ts) it started a mark-compact every few batches ("external memory pressure"
 * in --trace-gc). The images' arrays are detached once sent: do not read them after.
 */
export function givePixelsBack(images: readonly DecodedImage[]): void {
  shared?.giveBack(images);
}

/**
 * Decodes and resizes image files or in-memory images (as loadImage / decodeImage do) on the process's batch thread, started on first use and
 * shared by every DataLoader. Its images start `width.background` at a time until the ticket is hurried.
 */
export function decodeOnThread(items: BatchItem[], cfg: ImageConfig, width: DecodeWidth): DecodeTicket {
  if (!shared) {
    shared = new BatchThread();
    for (const [id, port] of unsentReturns) shared.returns(id, port);
    unsentReturns.clear();
  }
  return shared.decode(items, cfg, width);
}

/** return ports given before the batch thread started */
const unsentReturns = new Map<number, MessagePort>();
let nextReturnId = 0;

/**
 * Has the batch thread send the buffers of decoded images whose BatchItem.returnTo is the id returned to `port`
 * (a stream thread's, whose images came in them: image-buffers.ts), each as a message `{ buffers: ArrayBuffer[] }`.
 * Buffers of a batch thread that stopped and was started again are not returned.
 */
export function returnImagesTo(port: MessagePort): number {
  const id = nextReturnId++;
  if (shared) shared.returns(id, port);
  else unsentReturns.set(id, port);
  return id;
}
