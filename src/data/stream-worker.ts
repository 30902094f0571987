// The stream thread's entry (see stream-thread.ts): opens the data set again from its description, runs the epoch
// streams it is asked for and sends their samples in chunks (16 samples or 4 MB), image bytes transferred, while it
// has credit. After an epoch's end it reads the next one ahead (epoch + 1, or the same order when unshuffled) into
// chunks it holds, sent at once if that is the epoch asked for next, dropped otherwise. Given a tokenizer, it also
// tokenizes the texts (kept between epochs, encoding-cache.ts), so that the main thread only collates.
import { type MessagePort, workerData } from 'node:worker_threads';
import { MmtrainError } from '../errors.js';
import { EncodingCache } from './encoding-cache.js';
import { type EpochStreamOptions, type StreamItem, type StreamSet, type StreamSetDescription, epochStream, reopenStreamSet } from './stream.js';
import { type ControlMessage, INITIAL_CREDIT, type StreamMessage, type StreamText } from './stream-thread.js';
import { TextTokenizer } from './tokenizer.js';

const { description, port, text } = workerData as { description: StreamSetDescription; port: MessagePort; text: StreamText | null };
const encodings = text ? new EncodingCache(TextTokenizer.fromDescription(text.tokenizer), text.maxLength) : null;

/** A stream being read: its chunks not yet sent, and how many more it may send. */
interface Run {
  id: number | null;
  options: EpochStreamOptions;
  credit: number;
  held: { items: StreamItem[]; transfer: ArrayBuffer[]; done: boolean }[];
  stopped: boolean;
  wake: (() => void) | null;
}

let current: Run | null = null;
const setPromise: Promise<StreamSet> = reopenStreamSet(description);
setPromise.catch(() => {});

/** Whether two option sets give the same order (epochs differ only when shuffled). */
function sameOrder(a: EpochStreamOptions, b: EpochStreamOptions): boolean {
  return a.seed === b.seed && a.shuffle === b.shuffle && a.rank === b.rank && a.worldSize === b.worldSize && a.readers === b.readers && a.buffer === b.buffer && (!a.shuffle || a.epoch === b.epoch);
}

/**
 * `b` when it spans its whole buffer (transferable), else a copy that does: a view's clone would copy all under it.
 * The copy's memory is not zeroed first (slice() would zero it, then copy over it).
 */
function own(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  const c = Buffer.allocUnsafeSlow(b.byteLength);
  c.set(b);
  return c;
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
      const transfer: ArrayBuffer[] = [];
      for (const it of items) {
        if (it.sample?.bytes) {
          it.sample.bytes = own(it.sample.bytes);
          transfer.push(it.sample.bytes.buffer as ArrayBuffer);
        }
      }
      run.held.push({ items, transfer, done });
      items = [];
      bytes = 0;
      flush(run);
      // read ahead no further than the credit allows; the last chunk waits until it is sent
      const room = () => (done ? 1 : Math.max(1, run.credit + (run.id === null ? INITIAL_CREDIT : 0)));
      while (!run.stopped && run.held.length >= room()) await new Promise<void>((r) => (run.wake = r));
    };
    for await (const it of epochStream(set, run.options)) {
      if (run.stopped) return;
      if (encodings && it.sample) it.encoding = encodings.encode(it.index, it.sample.text);
      items.push(it);
      bytes += it.sample?.bytes?.byteLength ?? 0;
      if (items.length >= 16 || bytes >= 4 << 20) await hold(false);
      if (run.stopped) return;
    }
    await hold(true);
    // this epoch is read: read the next one ahead, held until asked for
    if (!run.stopped && current === run) {
      const next: Run = { id: null, options: { ...run.options, epoch: run.options.shuffle ? run.options.epoch + 1 : run.options.epoch }, credit: 0, held: [], stopped: false, wake: null };
      current = next;
      void read(next);
    }
  } catch (e) {
    if (run.stopped) return;
    const message = e instanceof MmtrainError ? e.message : (e as Error).message;
    // an epoch read ahead that fails is dropped: read again when asked for, it reports its error then
    if (run.id !== null) port.postMessage({ kind: 'error', id: run.id, message } satisfies StreamMessage);
    else if (current === run) current = null;
  }
}

function stop(run: Run | null): void {
  if (!run) return;
  run.stopped = true;
  run.wake?.();
}

port.on('message', (m: ControlMessage) => {
  if (m.kind === 'start') {
    const ahead = current && current.id === null ? current : null;
    if (ahead && sameOrder(ahead.options, m.options)) {
      // the epoch read ahead is the one asked for: send what is held
      ahead.id = m.id;
      ahead.credit = INITIAL_CREDIT;
      flush(ahead);
      ahead.wake?.();
      return;
    }
    stop(current);
    current = { id: m.id, options: m.options, credit: INITIAL_CREDIT, held: [], stopped: false, wake: null };
    void read(current);
  } else if (m.kind === 'credit') {
    if (current?.id === m.id) {
      current.credit += m.n;
      flush(current);
      current.wake?.();
    }
  } else if (current?.id === m.id) {
    stop(current);
    current = null;
  }
});
