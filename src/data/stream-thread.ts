// Streamed data read on a thread of its own. Reading a shard or a row group on the main thread would need a turn of
// its event loop for every chunk of a file, and the training step holds that thread: the reading would advance a
// step at a time, or stall until the batches read ahead ran out. Here a worker, one per DataLoader and kept between
// epochs (its modules loaded, Parquet footers read), runs an epoch's stream (stream.ts: the same order, seeded the
// same way) and sends its samples in chunks, image bytes transferred, not copied; the main thread takes a chunk that
// has arrived synchronously when it needs one. The worker stays a few chunks ahead (credits), so memory stays
// bounded. When an epoch's stream ends it starts reading the next epoch's (the same order again when unshuffled),
// holding those chunks until that epoch is asked for: the next epoch starts without waiting for its first reads.
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { MmtrainError } from '../errors.js';
import { returnImagesTo } from './batch-thread.js';
import { holdsAlone } from './image-buffers.js';
import { type EpochStreamOptions, type StreamItem, type StreamSet, describeStreamSet } from './stream.js';
import type { TokenizerDescription } from './tokenizer.js';

/** The texts' tokenizer and length, for a stream thread that tokenizes what it reads. */
export interface StreamText {
  tokenizer: TokenizerDescription;
  maxLength: number;
}

/** Worker -> main: samples of stream `id`, its end, or the error that stopped it. */
export type StreamMessage = { kind: 'items'; id: number; items: StreamItem[]; done: boolean } | { kind: 'error'; id: number; message: string };
/** Main -> worker: start stream `id` with these options (ending any other), room for more chunks, or stop. */
export type ControlMessage = { kind: 'start'; id: number; options: EpochStreamOptions } | { kind: 'credit'; id: number; n: number } | { kind: 'stop'; id: number };

/** Chunks the worker may send (or hold, reading ahead) before the main thread takes any. */
export const INITIAL_CREDIT = 6;

/** A stream thread for one data set: epochs are read one at a time, in the order asked. */
export class StreamThread {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #queue: StreamMessage[] = [];
  #wake: (() => void) | null = null;
  #failure: Error | null = null;
  #nextId = 0;
  #active = false;
  #closed = false;
  /** where the batch thread sends this thread's image buffers once decoded (BatchItem.returnTo) */
  readonly returnId: number;

  /** @param text tokenize the samples' texts there, with this tokenizer (items then carry `encoding`) */
  constructor(set: StreamSet, text: StreamText | null = null) {
    const { port1, port2 } = new MessageChannel();
    // the buffers its images came in come back straight from the batch thread, to be filled again (image-buffers.ts)
    const returns = new MessageChannel();
    this.returnId = returnImagesTo(returns.port1);
    this.#worker = new Worker(new URL('./stream-worker.js', import.meta.url), { workerData: { description: describeStreamSet(set), port: port2, text, returns: returns.port2 }, transferList: [port2, returns.port2] });
    this.#port = port1;
    this.#port.on('message', (m: StreamMessage) => {
      this.#queue.push(m);
      this.#wake?.();
    });
    const fail = (why: string) => {
      if (this.#closed) return;
      this.#failure ??= new MmtrainError(`the data stream thread ${why}; set data.decodeThread: false to read on the main thread`);
      this.#wake?.();
    };
    this.#worker.on('error', (e) => fail(`stopped: ${e.message}`));
    this.#worker.on('exit', (code) => fail(`exited (code ${code})`));
    // an idle thread (reading ahead or not) must not keep the process alive
    this.#worker.unref();
    this.#port.unref();
  }

  /**
   * This rank's samples of an epoch (as epochStream), in the chunks they arrive in: one await per chunk, not per
   * sample. One epoch at a time: a new one ends the one before.
   */
  async *epoch(o: EpochStreamOptions): AsyncGenerator<StreamItem[]> {
    if (this.#failure) throw this.#failure;
    const id = ++this.#nextId;
    this.#active = true;
    this.#worker.ref();
    this.#port.ref();
    this.#port.postMessage({ kind: 'start', id, options: o } satisfies ControlMessage);
    let done = false;
    try {
      for (;;) {
        // a chunk that arrived while this thread was busy is taken at once, without a turn of the event loop
        for (let r; !this.#queue.length && (r = receiveMessageOnPort(this.#port)); ) this.#queue.push(r.message as StreamMessage);
        const m = this.#queue.shift();
        if (!m) {
          if (this.#failure) throw this.#failure;
          await new Promise<void>((r) => (this.#wake = r));
          this.#wake = null;
          continue;
        }
        if (m.id !== id) continue; // the rest of an epoch left early
        if (m.kind === 'error') throw new MmtrainError(m.message);
        // the chunk's images came in buffers of their own: they may travel on to the batch thread by transfer
        for (const it of m.items) if (it.sample?.bytes) holdsAlone(it.sample.bytes);
        if (!m.done) this.#port.postMessage({ kind: 'credit', id, n: 1 } satisfies ControlMessage);
        yield m.items;
        if (m.done) {
          done = true;
          return;
        }
      }
    } finally {
      if (!done && !this.#failure) this.#port.postMessage({ kind: 'stop', id } satisfies ControlMessage);
      if (this.#nextId === id) {
        this.#active = false;
        this.#worker.unref();
        this.#port.unref();
      }
    }
  }

  /**
   * Takes the chunks that arrived while this thread was busy (a training step), waking the epoch waiting for one.
   * Their 'message' events would wait for a turn of the event loop, which a loop handing out ready batches through
   * promises never gives: the reading would then advance only when the training loop runs out of batches.
   */
  poll(): void {
    for (let r; (r = receiveMessageOnPort(this.#port)); ) this.#queue.push(r.message as StreamMessage);
    if (this.#queue.length) this.#wake?.();
  }

  /** Ends the thread (what it reads ahead is dropped); it is not used after. */
  close(): void {
    this.#closed = true;
    void this.#worker.terminate();
    this.#port.close();
  }

  get active(): boolean {
    return this.#active;
  }
}
