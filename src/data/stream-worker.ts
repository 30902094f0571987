// The stream thread's entry (see stream-thread.ts): opens the data set again from its description, runs the epoch
// streams it is asked for and sends their samples in chunks (16 samples or 4 MB), image bytes transferred, while it
// has credit. Once an epoch's stream is read through (its last chunks may still wait for credit) it reads the next
// one ahead (epoch + 1, or the same order when unshuffled) into chunks it holds, sent at once if that is the epoch
// asked for next, dropped otherwise: the next epoch's first samples (a shuffle buffer's fill) are then read while
// the main thread still works through this one's last chunks, not after. Given a tokenizer, it also tokenizes the
// texts (kept between epochs and sent once, encoding-cache.ts), so that the main thread only collates.
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { MmtrainError } from '../errors.js';
import { EncodingCache } from './encoding-cache.js';
import { giveImageBuffers, ownImage } from './image-buffers.js';
import { readSynchronously } from './file-reads.js';
import { type EpochStreamOptions, type StreamItem, type StreamSet, type StreamSetDescription, epochChunks, reopenStreamSet } from './stream.js';
import type { RawRecord } from './stream-types.js';
import { type ControlMessage, INITIAL_CREDIT, type StreamMessage, type StreamText } from './stream-thread.js';
import { TextTokenizer } from './tokenizer.js';

const { description, port, text, returns } = workerData as { description: StreamSetDescription; port: MessagePort; text: StreamText | null; returns: MessagePort };
// this thread only reads: its file reads need not wait behind the image decoding in libuv's pool (file-reads.ts)
readSynchronously(true);
const encodings = text ? new EncodingCache(TextTokenizer.fromDescription(text.tokenizer), text.maxLength) : null;

/** A stream being read: its chunks not yet sent, and how many more it may send. */
interface Run {
  id: number | null;
  options: EpochStreamOptions;
  credit: number;
  held: { items: StreamItem[]; transfer: ArrayBuffer[]; done: boolean }[];
  stopped: boolean;
  wake: (() => void) | null;
  /** its stream is read through (its last chunk held or sent) */
  readThrough: boolean;
}

/** the epoch being sent (asked for by the main thread), and the next one read ahead (not yet asked for) */
let current: Run | null = null;
let ahead: Run | null = null;

function newRun(id: number | null, options: EpochStreamOptions): Run {
  return { id, options, credit: id === null ? 0 : INITIAL_CREDIT, held: [], stopped: false, wake: null, readThrough: false };
}

/** Starts reading the epoch after `run` ahead, unless one is read ahead already. */
function readAhead(run: Run): void {
  if (run.stopped || ahead) return;
  ahead = newRun(null, { ...run.options, epoch: run.options.shuffle ? run.options.epoch + 1 : run.options.epoch });
  void read(ahead);
}
// Reading never waits for I/O on this thread (synchronous reads), so the main thread's messages (credit, start, stop)
// would wait until the reading stops for lack of room: an epoch read ahead fills a shuffle buffer and the chunks
// it may hold first (up to ~250 samples: a whole small epoch, hundreds of ms with photos on 2 busy cores), while the
// epoch being sent waits for the credit to send its last chunk. They are taken after every record read instead.
const setPromise: Promise<StreamSet> = reopenStreamSet(description).then((s) => ({ ...s, read: (unit, ranges) => s.read(unit, ranges).then(takingControl) }));
setPromise.catch(() => {});

function* takingControl(records: Iterable<RawRecord>): Generator<RawRecord> {
  for (const r of records) {
    takeControlMessages();
    yield r;
  }
}

/** Whether two option sets give the same order (epochs differ only when shuffled). */
function sameOrder(a: EpochStreamOptions, b: EpochStreamOptions): boolean {
  return a.seed === b.seed && a.shuffle === b.shuffle && a.rank === b.rank && a.worldSize === b.worldSize && a.readers === b.readers && a.buffer === b.buffer && Boolean(a.imageRanges) === Boolean(b.imageRanges) && (!a.shuffle || a.epoch === b.epoch);
}

function flush(run: Run): void {
  while (run.id !== null && run.credit > 0 && run.held.length) {
    const c = run.held.shift()!;
    run.credit--;
    port.postMessage({ kind: 'items', id: run.id, items: c.items, done: c.done } satisfies StreamMessage, c.transfer);
  }
}

async function read(run: Run): Promise<void> {
  try {
    const set = await setPromise;
    let items: StreamItem[] = [];
    let bytes = 0;
    const hold = async (done: boolean) => {
      takeControlMessages(); // (see takingControl)
      if (run.stopped) return;
      const transfer: ArrayBuffer[] = [];
      for (const it of items) {
        if (it.sample?.bytes) {
          // a view's clone would copy all under it: images travel in buffers of their own, transferred
          it.sample.bytes = ownImage(it.sample.bytes);
          transfer.push(it.sample.bytes.buffer as ArrayBuffer);
        }
      }
      run.held.push({ items, transfer, done });
      items = [];
      bytes = 0;
      flush(run);
      if (done) return; // the last chunk is sent when credit comes (flush), without holding up the read-ahead
      // read ahead no further than the credit allows
      const room = () => Math.max(1, run.credit + (run.id === null ? INITIAL_CREDIT : 0));
      while (!run.stopped && run.held.length >= room()) await new Promise<void>((r) => (run.wake = r));
    };
    for await (const chunk of epochChunks(set, run.options)) {
      for (const it of chunk) {
        if (run.stopped) return;
        // tokens kept from an earlier epoch were sent then: the main thread kept them too (encoding-cache.ts)
        if (encodings && it.sample && !encodings.kept(it.index, it.sample.text)) it.encoding = encodings.encode(it.index, it.sample.text);
        items.push(it);
        bytes += it.sample?.bytes?.byteLength ?? 0;
        if (items.length >= 16 || bytes >= 4 << 20) await hold(false);
      }
      if (run.stopped) return;
    }
    await hold(true);
    run.readThrough = true;
    // this epoch is read: read the next one ahead, held until asked for (an epoch read ahead itself does that
    // when it is asked for: never two epochs ahead)
    if (current === run) readAhead(run);
  } catch (e) {
    if (run.stopped) return;
    const message = e instanceof MmtrainError ? e.message : (e as Error).message;
    // an epoch read ahead that fails is dropped: read again when asked for, it reports its error then
    if (run.id !== null) port.postMessage({ kind: 'error', id: run.id, message } satisfies StreamMessage);
    else if (ahead === run) ahead = null;
  }
}

function stop(run: Run | null): void {
  if (!run) return;
  run.stopped = true;
  run.wake?.();
}

/**
 * Handles the control messages that have arrived, without waiting for a turn of the event loop, and takes the image
 * buffers the batch thread has sent back (to copy images into again: image-buffers.ts).
 */
function takeControlMessages(): void {
  for (let r; (r = receiveMessageOnPort(port)); ) control(r.message as ControlMessage);
  for (let r; (r = receiveMessageOnPort(returns)); ) giveImageBuffers((r.message as { buffers: ArrayBuffer[] }).buffers);
}

port.on('message', control);
returns.on('message', (m: { buffers: ArrayBuffer[] }) => giveImageBuffers(m.buffers));
// the thread lives as long as its control port: returned buffers alone do not keep it
returns.unref();

function control(m: ControlMessage): void {
  if (m.kind === 'start') {
    // a new epoch ends the one before (whatever it has not sent is dropped)
    stop(current);
    current = null;
    const next = ahead;
    ahead = null;
    if (next && sameOrder(next.options, m.options)) {
      // the epoch read ahead is the one asked for: send what is held
      current = next;
      next.id = m.id;
      next.credit = INITIAL_CREDIT;
      flush(next);
      next.wake?.();
      if (next.readThrough) readAhead(next);
      return;
    }
    stop(next);
    current = newRun(m.id, m.options);
    void read(current);
  } else if (m.kind === 'credit') {
    if (current?.id === m.id) {
      current.credit += m.n;
      flush(current);
      current.wake?.();
    }
  } else if (current?.id === m.id) {
    // left early: the epoch read ahead (if any) stays, for the next start
    stop(current);
    current = null;
  }
}
