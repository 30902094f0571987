// The DataLoader: seeded shuffling (the same order for the same seed and epoch), batching with dynamic padding and
// optional length bucketing, a resumable cursor (epoch, batch position), image decoding dispatched from a worker
// thread into libuv's pool, overlapping model compute (prefetch), and an optional on-disk cache of preprocessed images.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { MmtrainError, checkInt } from '../errors.js';
import type { Device } from '../tensor/dtype.js';
import { type Batch, collate } from './collate.js';
import { ImageCache } from './cache.js';
import { type DecodeTicket, decodeOnThread, givePixelsBack } from './batch-thread.js';
import { readImageRange } from './file-reads.js';
import { type DecodedImage, type ImageConfig, decodeImage, imageReadError, loadImage } from './image.js';
import type { ImageRange, Problem, Sample } from './manifest.js';
import { hashSeed, mulberry32, shuffleInPlace } from './random.js';
import { type EpochStreamOptions, type StreamItem, type StreamSet, epochChunks, localBatchSize, streamBatches } from './stream.js';
import { StreamThread } from './stream-thread.js';
import { EncodingCache } from './encoding-cache.js';
import { KEPT_ITEMS_BYTES, KeptItems } from './kept-items.js';
import type { EncodedText, TextTokenizer } from './tokenizer.js';

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  dropLast?: boolean;
  /** truncate texts to this many tokens (default 128) */
  maxLength?: number;
  /** "longest": pad each batch to its longest text (default); "max_length": always to maxLength */
  padding?: 'longest' | 'max_length';
  /** group texts of similar length into batches (less padding); the batch order stays shuffled */
  bucketByLength?: boolean;
  /** batches decoded ahead of the one being used (default 2) */
  prefetch?: number;
  /** training-time augmentation on (uses image.augment); off for evaluation */
  augment?: boolean;
  onBadSample?: 'error' | 'skip';
  cache?: ImageCache | null;
  /**
   * Where batches go (default cpu). On a GPU each batch is copied from pinned host memory asynchronously (pixels as
   * uint8, normalised there), so the copy overlaps the step still running.
   */
  device?: Device;
  /**
   * Images decoded at once per batch (default: the batch size). With the batch thread, this applies to a batch the
   * training loop is waiting for; batches decoded ahead start a few at a time (one 224 x 224 image's worth of output
   * pixels), wider while the loop keeps waiting for batches.
   */
  concurrency?: number;
  /**
   * Decode images on a worker thread (default true), so that the JS work around each image does not wait for the
   * training step on the main thread; cache hits and normalisation stay on the main thread. Streamed data is then
   * also read on a thread of its own (stream-thread.ts). false: all of it on the main thread.
   */
  decodeThread?: boolean;
  /**
   * Data-parallel sharding: every rank plans the same global batches and takes its contiguous slice of each, so a
   * sample is seen once per epoch across ranks. A rank whose slice is empty still gets the (empty) batch, to stay
   * in step with the others.
   */
  shard?: { rank: number; worldSize: number } | null;
  /**
   * With `shard`: a rank whose samples ran out takes empty batches to the end of the epoch, to stay in step with the
   * others (default true; false for evaluation, where ranks do not step together).
   */
  lockstep?: boolean;
  /** streamed data: units read at once per rank (default 2) */
  readers?: number;
  /** streamed data: shuffle buffer in samples (default 1000; 0 turns it off) */
  shuffleBuffer?: number;
  /** read and decode the images (default true); false for text-only batches (text pretraining): pixelValues is empty */
  images?: boolean;
  /** give each batch its samples (Batch.samples: where each came from, its text), e.g. to label predictions */
  keepSamples?: boolean;
  /**
   * streamed data: once all of this rank's samples are read, keep them (not their images) in memory, up to this
   * many bytes, and take later epochs from there (kept-items.ts; default KEPT_ITEMS_BYTES, 64 MB; 0 turns it off)
   */
  keptBytes?: number;
}

export interface Cursor {
  epoch: number;
  /** batches of this epoch already handed out */
  position: number;
}

/** A sample of a batch: its data set index (augmentation seed, Batch.indices) and its tokens. */
interface LoadItem {
  sample: Sample;
  index: number;
  encoding: EncodedText;
}

/** What one batch is made of, before its images are decoded; `error`: a bad sample under onBadSample "error". */
interface BatchSpec {
  items: LoadItem[];
  skipped: Problem[];
  error?: MmtrainError;
}

/** Host-side batch: pixels and token ids, before they become tensors. */
interface RawBatch {
  items: LoadItem[];
  images: DecodedImage[];
  skipped: Problem[];
}

/** A batch being prepared, and its decoding on the batch thread if it has any. */
interface InFlight {
  raw: Promise<RawBatch>;
  ticket: DecodeTicket | null;
}

export class DataLoader {
  readonly encodings: EncodedText[];
  /** images the batch thread decodes at once for batches not yet waited for (see epoch) */
  #width: number;
  /** the least of #width: about one 224 x 224 image's worth of output pixels (three 128 x 128, twelve 64 x 64) */
  readonly #minWidth: number;
  readonly options: Required<Omit<LoaderOptions, 'cache'>> & { cache: ImageCache | null };
  /** the samples of a manifest (empty for streamed data) */
  readonly samples: Sample[];
  /** streamed data (Parquet, WebDataset), read unit by unit each epoch; null for a manifest */
  readonly stream: StreamSet | null;
  /** samples skipped while loading images (onBadSample: "skip") */
  readonly skipped: Problem[] = [];
  cursor: Cursor = { epoch: 0, position: 0 };
  /** streamed data read on its own thread (decodeThread), kept between epochs */
  #streamThread: StreamThread | null = null;
  /** streamed texts' tokens kept between epochs: made here without the stream thread, else those it sent */
  #streamEncodings: EncodingCache | null = null;
  #orderDigest: string | null = null;
  /** streamed samples kept between epochs once all of this rank's are read (kept-items.ts); null until then */
  #kept: KeptItems | null = null;

  constructor(source: Sample[] | StreamSet, readonly tokenizer: TextTokenizer, readonly image: ImageConfig, opts: LoaderOptions) {
    this.samples = Array.isArray(source) ? source : [];
    this.stream = Array.isArray(source) ? null : source;
    if (!this.samples.length && !this.stream) throw new MmtrainError('DataLoader: no samples');
    this.options = {
      shuffle: true, seed: 0, dropLast: false, maxLength: 128, padding: 'longest', bucketByLength: false, prefetch: 2,
      augment: false, onBadSample: 'error', concurrency: opts.batchSize, decodeThread: true, lockstep: true, readers: 2, shuffleBuffer: 1000, images: true, keepSamples: false, keptBytes: KEPT_ITEMS_BYTES,
      ...opts, cache: opts.cache ?? null, shard: opts.shard ?? null, device: opts.device ?? 'cpu',
    };
    if (this.stream && this.options.bucketByLength) throw new MmtrainError(`data.bucketByLength: needs the texts before the epoch starts, which streamed data (${this.stream.file}) does not give; turn it off`);
    checkInt('readers', this.options.readers, 1, 64);
    checkInt('keptBytes', this.options.keptBytes, 0);
    checkInt('shuffleBuffer', this.options.shuffleBuffer, 0, 10_000_000);
    checkInt('batchSize', this.options.batchSize, 1);
    checkInt('prefetch', this.options.prefetch, 0, 64);
    checkInt('concurrency', this.options.concurrency, 1, 1024);
    checkInt('maxLength', this.options.maxLength, 2, 100000);
    this.encodings = this.samples.map((s) => tokenizer.encode(s.text, this.options.maxLength));
    // Decoding ahead takes CPU from a training step that already uses every core: large images go one at a time,
    // so that few threads compete with the step; small ones in groups, since one at a time their round trips through
    // libuv's pool (~1 ms each, mostly waiting) spread over the whole step. Measured on the demo model, first epochs
    // against a batch at once: at 224 px one at a time 2-5% faster; at 128 px one at a time ~4% slower, three ~3%
    // faster; at 32 px one at a time ~7% slower, 4 or more as fast.
    this.#minWidth = Math.min(this.options.concurrency, Math.max(1, Math.floor(50176 / (image.size * image.size))));
    this.#width = this.#minWidth;
  }

  /**
   * A digest of what decides which sample is at each place of an epoch: the samples (a manifest's image file names
   * and labels, in order; a streamed set's units: file names, row groups or parts, counts) and the options that order
   * them (seed, batch size, shuffling, dropLast, bucketing, ranks, reading slots, shuffle buffer). A checkpoint keeps
   * it, so that a run resumed mid-epoch on other data, or with other settings, can say that the rest of the epoch
   * follows another order (not the batches the interrupted run would have had). File folders are left out: data
   * moved elsewhere as it is orders the same.
   */
  get orderDigest(): string {
    if (this.#orderDigest) return this.#orderDigest;
    const o = this.options;
    const h = createHash('sha256');
    h.update(JSON.stringify({ seed: o.seed, batchSize: o.batchSize, shuffle: o.shuffle, dropLast: o.dropLast, bucketByLength: o.bucketByLength, worldSize: o.shard?.worldSize ?? 1, readers: o.readers, shuffleBuffer: o.shuffleBuffer }));
    if (this.stream) for (const u of this.stream.units) h.update(`${basename(u.file)}\0${u.rowGroup}\0${u.rowStart}\0${u.count}\0${u.at ?? 0}\n`);
    else for (const s of this.samples) h.update(`${basename(s.image)}\0${s.label}\n`);
    // (bucketing orders by token counts: the texts' lengths)
    if (o.bucketByLength) for (const e of this.encodings) h.update(`${e.ids.length},`);
    return (this.#orderDigest = h.digest('hex').slice(0, 16));
  }

  /** Whether this loader's streamed samples are all kept in memory (kept-items.ts): its epochs read only images. */
  get streamKept(): boolean {
    return this.#kept?.complete ?? false;
  }

  /** Batches per epoch. */
  get length(): number {
    if (this.stream) {
      const sh = this.options.shard;
      return streamBatches(this.stream, this.options.batchSize, sh?.worldSize ?? 1, this.options.dropLast);
    }
    const n = this.samples.length;
    const b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** The batches of an epoch as lists of sample indices: a pure function of (seed, epoch). */
  plan(epoch: number): number[][] {
    if (this.stream) throw new MmtrainError(`DataLoader.plan: streamed data (${this.stream.file}) has no plan of sample indices; iterate epoch()`);
    const n = this.samples.length;
    const idx = Array.from({ length: n }, (_, i) => i);
    const rnd = mulberry32(hashSeed(this.options.seed, epoch));
    if (this.options.shuffle) shuffleInPlace(idx, rnd);
    const B = this.options.batchSize;
    let batches: number[][] = [];
    if (this.options.bucketByLength) {
      // Sort windows of 50 batches by text length, cut into batches, then shuffle the batch order.
      const window = B * 50;
      for (let w = 0; w < n; w += window) {
        const chunk = idx.slice(w, w + window).sort((a, b) => this.encodings[a]!.ids.length - this.encodings[b]!.ids.length);
        for (let i = 0; i < chunk.length; i += B) batches.push(chunk.slice(i, i + B));
      }
      if (this.options.dropLast) batches = batches.filter((b) => b.length === B);
      if (this.options.shuffle) shuffleInPlace(batches, rnd);
    } else {
      for (let i = 0; i < n; i += B) batches.push(idx.slice(i, i + B));
      if (this.options.dropLast && batches.length && batches[batches.length - 1]!.length < B) batches.pop();
    }
    return batches;
  }

  /**
   * Iterates the batches of one epoch from a position (exact resume), decoding `prefetch` batches ahead. The
   * cursor advances as batches are taken.
   */
  async *epoch(epoch: number, startPosition = 0): AsyncGenerator<Batch> {
    const specs = this.#specs(epoch, startPosition);
    const depth = Math.max(1, this.options.prefetch + 1);
    const inflight: InFlight[] = [];
    let ended = false;
    // Batches are planned (for streamed data: read) and dispatched in the background, so that a batch already
    // decoded is handed out without waiting for the next one's reading.
    let filling: Promise<void> | null = null;
    let failed: { e: unknown } | null = null;
    const fill = () => {
      // started only with work to do: its body then awaits before it ends, so `filling` is cleared after it is set
      if (filling || ended || failed || inflight.length >= depth) return filling ?? Promise.resolve();
      filling = (async () => {
        try {
          while (!ended && inflight.length < depth) {
            const n = await specs.next();
            if (n.done) {
              ended = true;
              break;
            }
            let ticket: DecodeTicket | null = null;
            const raw = this.#load(n.value, epoch, (t) => (ticket = t)); // dispatches before its first await
            raw.catch(() => {}); // a failure surfaces when this batch is awaited; never as an unhandled rejection
            inflight.push({ raw, ticket });
          }
        } catch (e) {
          failed = { e };
        } finally {
          filling = null;
        }
      })();
      return filling;
    };
    this.cursor = { epoch, position: startPosition };
    try {
      for (;;) {
        if (!inflight.length) {
          if (failed) throw (failed as { e: unknown }).e;
          if (ended) break;
          await fill();
          continue;
        }
        this.#streamThread?.poll();
        const head = inflight.shift()!;
        // The batch thread decodes ahead narrowly (as little CPU as it can take from the step). When the loop has to
        // wait for a batch anyway, decoding is what it waits on: that batch starts all its images at once, and the
        // batches behind it are decoded twice as wide; each batch found ready halves that width again.
        if (head.ticket && !head.ticket.arrived()) {
          this.#width = Math.min(this.options.concurrency, this.#width * 2);
          head.ticket.hurry(this.#width);
        } else if (head.ticket) {
          this.#width = Math.max(this.#minWidth, this.#width >> 1);
        }
        const raw = await head.raw;
        void fill();
        this.skipped.push(...raw.skipped);
        this.cursor = { epoch, position: this.cursor.position + 1 };
        if (!raw.items.length && !(this.options.shard && this.options.lockstep)) continue;
        const batch = this.collate(raw);
        // their pixels are in the batch's tensor now: the buffers go back to the batch thread, to decode into again
        givePixelsBack(raw.images);
        yield batch;
      }
    } finally {
      await filling;
      await specs.return(undefined);
    }
  }

  /** The batches of an epoch from a position: this rank's samples of each, with their tokens. */
  async *#specs(epoch: number, start: number): AsyncGenerator<BatchSpec> {
    if (!this.stream) {
      const plan = this.plan(epoch);
      for (let p = start; p < plan.length; p++) {
        yield { items: this.localSlice(plan[p]!).map((i) => ({ sample: this.samples[i]!, index: i, encoding: this.encodings[i]! })), skipped: [] };
      }
      return;
    }
    // Streamed: this rank's samples in the epoch's order, cut into its share of each global batch. A resumed epoch
    // reads (does not decode) the samples of the batches before `start` again: the order is replayed exactly.
    const sh = this.options.shard ?? { rank: 0, worldSize: 1 };
    const b = localBatchSize(this.options.batchSize, sh.rank, sh.worldSize);
    const total = this.length;
    const order: EpochStreamOptions = { seed: this.options.seed, epoch, shuffle: this.options.shuffle, rank: sh.rank, worldSize: sh.worldSize, readers: this.options.readers, buffer: this.options.shuffleBuffer };
    const encodings = (this.#streamEncodings ??= new EncodingCache(this.tokenizer, this.options.maxLength));
    const kept = (this.#kept ??= new KeptItems(this.stream, sh.rank, sh.worldSize, this.options.keptBytes));
    // samples that may be kept: their images as byte ranges where the files hold them in place (a Parquet image
    // column uncompressed), as a shard's are; else in memory, copied out of the pages read
    if (kept.keeping) order.imageRanges = true;
    let it: AsyncGenerator<StreamItem[]>;
    if (kept.unchanged()) {
      // every sample of this rank read once and kept, with its tokens, its files unchanged since: read from memory,
      // in the same order
      it = epochChunks(this.stream, order, kept.unit);
    } else {
      // read on the stream thread (with decodeThread), so that reading goes on while a training step holds this
      // thread (and tokenized there, the tokens kept between epochs, as a manifest's are)
      if (this.options.decodeThread) this.#streamThread ??= new StreamThread(this.stream, { tokenizer: this.tokenizer.describe(), maxLength: this.options.maxLength });
      it = this.#streamThread ? this.#streamThread.epoch(order) : epochChunks(this.stream, order);
    }
    // (a set too large for the budget is not offered: it would only be given up)
    const keeping = !kept.complete && kept.keeping;
    try {
      let position = 0;
      let spec: BatchSpec = { items: [], skipped: [] };
      let taken = 0;
      // samples come in chunks: within one, batches are cut without an await per sample
      chunks: for await (const chunk of b > 0 ? it : []) {
        for (const item of chunk) {
          // (samples before a resumed position, and after the last batch (dropLast), are tokenized too: to be kept)
          const encoding = item.sample && (keeping || position >= start) ? this.#streamEncoding(encodings, item.index, item.sample.text, item.encoding) : null;
          if (keeping) kept.add(item, item.sample !== null && encodings.kept(item.index, item.sample.text) !== undefined);
          if (position >= total) {
            // past the last batch (dropLast): read on only to keep the rest of this rank's samples
            if (keeping && kept.keeping) continue;
            break chunks;
          }
          taken++;
          if (position >= start) {
            if (item.sample) spec.items.push({ sample: item.sample, index: item.index, encoding: encoding! });
            else if (item.problem) {
              if (this.options.onBadSample === 'skip') spec.skipped.push(item.problem);
              else spec.error ??= new MmtrainError(`${item.problem.where}: ${item.problem.message}\nSet data.onBadSample: "skip" to train without such samples.`);
            }
          }
          if (taken === b) {
            if (position >= start) yield spec;
            position++;
            spec = { items: [], skipped: [] };
            taken = 0;
          }
        }
      }
      if (taken > 0 && position < total && !this.options.dropLast) {
        if (position >= start) yield spec;
        position++;
      }
      // this rank's samples ran out: empty batches keep it in step with the others
      if (this.options.shard && this.options.lockstep) for (; position < total; position++) if (position >= start) yield { items: [], skipped: [] };
    } finally {
      await it.return(undefined);
      // every sample kept now: the stream thread (reading the next epoch ahead) is not needed again
      if (kept.complete) {
        this.#streamThread?.close();
        this.#streamThread = null;
      }
    }
  }

  /** A streamed sample's tokens: as sent by the stream thread (kept here too), else kept here, else made here. */
  #streamEncoding(encodings: EncodingCache, index: number, text: string, sent: EncodedText | undefined): EncodedText {
    if (!sent) return encodings.encode(index, text);
    encodings.put(index, text, sent);
    return sent;
  }

  async #load(spec: BatchSpec, epoch: number, onDispatch: (t: DecodeTicket) => void): Promise<RawBatch> {
    const { items } = spec;
    const skipped: Problem[] = [...spec.skipped];
    if (!this.options.images) {
      if (spec.error) throw spec.error;
      return { items, images: [], skipped };
    }
    const aug = this.options.augment;
    const cache = aug ? null : this.options.cache;
    // Cache hits are read synchronously first (a view into the cache, no copy); only the misses are decoded. Images
    // held in memory or inside a shard (streamed data) are not cached: they have no file to check the entry against.
    // per sample: its pixels, null (skipped), undefined (to do)
    const results: (DecodedImage | null | undefined)[] = cache ? items.map((it) => (it.sample.bytes || it.sample.range ? undefined : cache.get(it.sample.image) ?? undefined)) : new Array(items.length);
    const todo = items.map((_, k) => k).filter((k) => results[k] === undefined);
    const seedOf = (i: number) => (aug ? hashSeed(this.options.seed, epoch, i) : null);
    const settle = (k: number, img: DecodedImage | Error) => {
      const s = items[k]!.sample;
      if (!(img instanceof Error)) {
        if (!aug && !s.bytes && !s.range) cache?.put(s.image, img);
        results[k] = img;
      } else if (this.options.onBadSample === 'skip') {
        skipped.push({ where: s.where, message: img.message });
        results[k] = null;
      } else {
        throw new MmtrainError(`${s.where}: ${img.message}\nSet data.onBadSample: "skip" to train without such samples.`);
      }
    };
    if (this.options.decodeThread && todo.length) {
      // the misses go to the batch thread and come back as 8-bit pixels
      // streamed in-memory images' buffers go back to the stream thread once decoded, to be filled again
      const returnTo = this.#streamThread?.returnId;
      const batchItems = todo.map((k) => ({ file: items[k]!.sample.image, bytes: items[k]!.sample.bytes, range: items[k]!.sample.range, seed: seedOf(items[k]!.index), returnTo }));
      const ticket = decodeOnThread(batchItems, this.image, { background: this.#width, concurrency: this.options.concurrency });
      onDispatch(ticket);
      if (spec.error) throw spec.error;
      const { images } = await ticket.results;
      todo.forEach((k, j) => settle(k, images[j]!));
    } else {
      if (spec.error) throw spec.error;
      await mapLimit(todo, this.options.concurrency, async (k) => {
        const { sample, index } = items[k]!;
        const seed = seedOf(index);
        const rnd = seed === null ? undefined : mulberry32(seed);
        let img: DecodedImage | Error;
        try {
          if (sample.bytes) img = await decodeImage(Buffer.from(sample.bytes.buffer, sample.bytes.byteOffset, sample.bytes.byteLength), sample.image, this.image, rnd);
          else if (sample.range) img = await decodeImage(readRangeNamed(sample.range, sample.image), sample.image, this.image, rnd);
          else img = await loadImage(sample.image, this.image, rnd);
        } catch (e) {
          img = e as Error;
        }
        settle(k, img);
      });
    }
    const keep = items.filter((_, k) => results[k] !== null);
    return { items: keep, images: results.filter((r): r is DecodedImage => r != null), skipped };
  }

  /** This rank's part of a global batch (all of it without sharding): contiguous, sizes differ by at most one. */
  localSlice(batch: number[]): number[] {
    const sh = this.options.shard;
    if (!sh || sh.worldSize <= 1) return batch;
    const n = batch.length;
    const lo = Math.floor((n * sh.rank) / sh.worldSize);
    const hi = Math.floor((n * (sh.rank + 1)) / sh.worldSize);
    return batch.slice(lo, hi);
  }

  /** Turns a host batch into tensors (collate.ts): dynamic padding of the texts, uint8 pixels normalised in LibTorch. */
  collate(raw: RawBatch): Batch {
    const { padding, maxLength, device } = this.options;
    const items = raw.items.map((it, k) => ({ encoding: it.encoding, image: raw.images[k] ?? null, label: it.sample.label, index: it.index }));
    const b = collate(items, { padId: this.tokenizer.padId, padding, maxLength, image: this.image, device });
    if (this.options.keepSamples) b.samples = raw.items.map((it) => it.sample);
    return b;
  }
}

/** An image range's bytes; a failed read names the image. */
function readRangeNamed(r: ImageRange, name: string): Buffer {
  try {
    return readImageRange(r);
  } catch (e) {
    throw imageReadError(name, e);
  }
}

/** fn over items, at most `limit` calls in flight; results in item order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
