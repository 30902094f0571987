// Streamed data sets (Parquet files, WebDataset shards): opened from their footers or one counting pass, then read
// unit by unit (row group, shard) each epoch, never whole. The order of an epoch is a pure function of the seed, the
// epoch, the rank and the world size, so that a resumed run replays it exactly:
//   1. units go to data-parallel ranks once (largest first, each to the rank with the fewest samples so far), so
//      every sample is read by exactly one rank and the ranks' shares differ by at most one unit;
//   2. each epoch a rank shuffles its units (seeded) and deals them to its reading slots, which read concurrently;
//      their samples interleave in a fixed round-robin, whichever slot is faster (unshuffled: the units in order);
//   3. a seeded shuffle buffer (data.stream.shuffleBuffer samples) mixes samples across units.
// A rank's epoch is cut into batches of its share of the global batch; ranks whose share runs out first take empty
// batches, so that every rank takes part in every step.
import { statSync } from 'node:fs';
import { MmtrainError } from '../errors.js';
import { hashSeed, mulberry32, shuffleInPlace } from './random.js';
import { discoverLabels, labelResolver, missingLabel, noLabel } from './labels.js';
import type { Problem, Sample } from './manifest.js';
import { type ParquetSource, openParquet, parquetUnits, readParquetLabels, readUnit } from './parquet.js';
import type { ColumnNames, RawRecord, StreamUnit } from './stream-types.js';
import type { EncodedText } from './tokenizer.js';
import { DistinctLabels, type ShardLabel, countFile, keepCount, keptCount } from './shard-counts.js';
import { SHARD_LIMITS, type ShardLimits, ShardCuts, readShard } from './webdataset.js';

export interface StreamOptions {
  columns?: ColumnNames;
  /** class names in index order (else ClassLabel names from the file, else discovered) */
  labels?: string[];
  onBadSample?: 'error' | 'skip';
  /** "optional" for prediction: records without a label are samples with label -1 */
  label?: 'required' | 'optional';
  /** progress lines while counting WebDataset shards */
  print?: (line: string) => void;
  /** which WebDataset shards are read in parts, of what size (default SHARD_LIMITS: over 64 MB, parts of 32 MB) */
  shardLimits?: ShardLimits;
}

/** What a streamed data set is, without its readers: enough to open it again on another thread. */
export interface StreamSetDescription {
  kind: 'parquet' | 'webdataset';
  /** the path as given (messages) */
  file: string;
  files: string[];
  units: StreamUnit[];
  /** records in all units (bad ones included) */
  size: number;
  labels: string[];
  /** whether the labels were given (an integer string is then a name only) */
  givenLabels: boolean;
  columns: ColumnNames;
  needLabel: boolean;
  /** whole files left out (onBadSample: "skip"): a Parquet file without the columns */
  skipped: Problem[];
}

/** An opened streamed data set. */
export interface StreamSet extends StreamSetDescription {
  /**
   * The records of a unit, in order: a row group's all at once, a shard's as its members are read (synchronously,
   * one at a time: a shard of thousands of samples is not read whole before its first sample is used).
   * `imageRanges`: images stored in place in the file (a shard's, an uncompressed Parquet image column's) are given as
   * byte ranges (a shard's always), not copied into memory.
   */
  read(unit: StreamUnit, imageRanges?: boolean): Promise<Iterable<RawRecord>>;
  /** a record to a sample, or the problem with it */
  toSample(r: RawRecord): Sample | Problem;
}

export function isStreamSet(d: unknown): d is StreamSet {
  return typeof d === 'object' && d !== null && 'units' in d && 'read' in d;
}

/** Opens Parquet files (footers) or WebDataset shards (one counting pass) as one data set. */
export async function openStreamSet(pattern: string, files: string[], kind: 'parquet' | 'webdataset', opts: StreamOptions = {}): Promise<StreamSet> {
  const policy = opts.onBadSample ?? 'error';
  const needLabel = opts.label !== 'optional';
  const cols = opts.columns ?? {};
  const skipped: Problem[] = [];
  const units: StreamUnit[] = [];
  let labels = opts.labels;
  let read: StreamSet['read'];
  if (kind === 'parquet') {
    const sources = new Map<string, ParquetSource>();
    const raw: unknown[] = [];
    let classNames: string[] | null = null;
    for (const f of files) {
      let src: ParquetSource;
      try {
        src = await openParquet(f, cols, needLabel);
      } catch (e) {
        if (policy === 'error' || !(e instanceof MmtrainError)) throw e;
        skipped.push({ where: f, message: e.message.replace(`${f}: `, '') });
        continue;
      }
      sources.set(f, src);
      for (const u of parquetUnits(src, units.reduce((a, u) => a + u.count, 0))) units.push(u);
      if (!labels) {
        classNames ??= src.classNames;
        // (a loop, not push(...labels): spreading a file's 100,000s of labels overflows the stack)
        if (!src.classNames) for (const l of await readParquetLabels(src)) raw.push(l);
      }
    }
    if (!labels) labels = classNames ?? discoverLabels(raw);
    read = (unit, ranges) => readUnit(sources.get(unit.file)!, unit, ranges);
  } else {
    const raw: unknown[] = [];
    const t0 = performance.now();
    let offset = 0;
    const limits = opts.shardLimits ?? SHARD_LIMITS;
    for (const [i, f] of files.entries()) {
      // counted before, unchanged since (shard-counts.ts), or counted now
      const keep = countFile(f, cols, limits);
      let counted = keptCount(keep);
      if (!counted) {
        let count = 0;
        // with the error policy, the shard's first problem, unless a sample's members are apart: that one explains
        // the earlier ones (the same sample, missing the files that come later), and is reported instead
        let bad: RawRecord | null = null;
        let problems = false;
        const cuts = new ShardCuts(fileSize(f), limits);
        const distinct = new DistinctLabels();
        for (const r of readShard(f, cols, 0, (start) => cuts.sample(start))) {
          count++;
          if (r.problem !== undefined) problems = true;
          if (r.problem && policy === 'error' && (!bad || (r.apart && !bad.apart))) bad = r;
          if (bad?.apart) break;
          if (!noLabel(r.label)) distinct.add(r.label);
        }
        if (bad) throw new MmtrainError(`${bad.where}: ${bad.problem}\nSet data.onBadSample: "skip" to train without such samples.`);
        // in parts only without problems: then every record is a sample of its own (not a shard cut short, whose
        // last record is its problem) and no sample's members are apart (found only by reading what came before),
        // so each part reads as it did here
        const parts = cuts.parts.length > 1 && !problems ? cuts.parts : [{ at: 0, first: 0, count }];
        counted = { count, parts, labels: distinct.values as ShardLabel[] };
        if (!problems && count && !distinct.odd) keepCount(keep, f, cols, limits, counted);
      }
      for (const [k, p] of counted.parts.entries()) units.push({ file: f, rowGroup: k, rowStart: p.first, count: p.count, offset: offset + p.first, ...(p.at ? { at: p.at } : {}) });
      if (!labels) for (const l of counted.labels) raw.push(l);
      offset += counted.count;
      // shards are read synchronously (tar.ts): a turn of the event loop between them, so that a long count can be
      // interrupted (SIGINT) and timers run
      await new Promise((r) => setImmediate(r));
      if (opts.print && (i + 1) % 64 === 0) opts.print(`${pattern}: counted ${i + 1} of ${files.length} shards (${offset} samples) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    labels ??= discoverLabels(raw);
    read = (unit) => Promise.resolve(readShard(unit.file, cols, unit.at));
  }
  const size = units.reduce((a, u) => a + u.count, 0);
  if (!size) {
    const why = skipped.length ? `: ${skipped[0]!.where}: ${skipped[0]!.message}` : '';
    throw new MmtrainError(`${pattern}: the data set has no samples${why}`);
  }
  if (labels.length < 2 && needLabel) throw new MmtrainError(`${pattern}: found ${labels.length} class${labels.length === 1 ? '' : 'es'} (${labels.join(', ')}); a classifier needs at least two: set data.labels`);
  return assemble({ kind, file: pattern, files, units, size, labels, givenLabels: Boolean(opts.labels), columns: cols, needLabel, skipped }, read);
}

/** A file's size in bytes; 0 when it cannot be read (reading it says why). */
function fileSize(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}

/** Opens a described set again (the stream thread): Parquet footers are read again, shards are not counted again. */
export async function reopenStreamSet(d: StreamSetDescription): Promise<StreamSet> {
  if (d.kind === 'webdataset') return assemble(d, (unit) => Promise.resolve(readShard(unit.file, d.columns, unit.at)));
  const sources = new Map<string, ParquetSource>();
  for (const f of new Set(d.units.map((u) => u.file))) sources.set(f, await openParquet(f, d.columns, d.needLabel));
  return assemble(d, (unit, ranges) => readUnit(sources.get(unit.file)!, unit, ranges));
}

/** The description without its functions (what goes to the stream thread). */
export function describeStreamSet(s: StreamSet): StreamSetDescription {
  const { kind, file, files, units, size, labels, givenLabels, columns, needLabel, skipped } = s;
  return { kind, file, files, units, size, labels, givenLabels, columns, needLabel, skipped };
}

function assemble(d: StreamSetDescription, read: StreamSet['read']): StreamSet {
  const toIndex = labelResolver(d.labels, d.givenLabels);
  const toSample = (r: RawRecord): Sample | Problem => {
    if (r.problem !== undefined) return { where: r.where, message: r.problem };
    if (!r.image) return { where: r.where, message: 'no image (the image is null or empty)' };
    if (typeof r.text !== 'string') return { where: r.where, message: `"text" must be a string, received ${r.text === null ? 'null' : typeof r.text}` };
    if (!r.text.trim()) return { where: r.where, message: '"text" is empty' };
    let label = -1;
    if (noLabel(r.label)) {
      if (d.needLabel) return { where: r.where, message: missingLabel(r.label) };
    } else {
      const i = toIndex(typeof r.label === 'string' ? r.label.trim() : r.label);
      if (typeof i === 'string') return { where: r.where, message: i };
      label = i;
    }
    if ('bytes' in r.image) return { image: r.image.name, bytes: r.image.bytes, text: r.text, label, where: r.where };
    if ('range' in r.image) return { image: r.image.name, range: r.image.range, text: r.text, label, where: r.where };
    return { image: r.image.path, text: r.text, label, where: r.where };
  };
  return { ...d, read, toSample };
}

/** Units to ranks: largest first, each to the rank holding the fewest samples (ties: the lower rank). */
export function assignUnits(units: StreamUnit[], worldSize: number): number[][] {
  const order = units.map((_, i) => i).sort((a, b) => units[b]!.count - units[a]!.count || a - b);
  const load = new Array<number>(worldSize).fill(0);
  const out: number[][] = Array.from({ length: worldSize }, () => []);
  for (const i of order) {
    let r = 0;
    for (let k = 1; k < worldSize; k++) if (load[k]! < load[r]!) r = k;
    out[r]!.push(i);
    load[r]! += units[i]!.count;
  }
  for (const o of out) o.sort((a, b) => a - b);
  return out;
}

/** A stream sample: its data set index (augmentation seeds, Batch.indices) and the sample or its problem. */
export interface StreamItem {
  index: number;
  sample: Sample | null;
  /** its text's tokens, when the stream thread tokenized it */
  encoding?: EncodedText;
  /** why the sample is left out; null with a null sample: a later row of a row group reported once */
  problem: Problem | null;
}

export interface EpochStreamOptions {
  seed: number;
  epoch: number;
  shuffle: boolean;
  rank: number;
  worldSize: number;
  /** units read at once (default 2) */
  readers: number;
  /** shuffle buffer size in samples (0: none) */
  buffer: number;
  /** give images stored in place as byte ranges of their files (StreamSet.read), to keep the samples (kept-items.ts) */
  imageRanges?: boolean;
}

/** This rank's units for an epoch, in reading order (seeded shuffle when `shuffle`). */
export function epochUnits(set: StreamSet, o: Pick<EpochStreamOptions, 'seed' | 'epoch' | 'shuffle' | 'rank' | 'worldSize'>): number[] {
  const mine = assignUnits(set.units, o.worldSize)[o.rank]!;
  if (o.shuffle) shuffleInPlace(mine, mulberry32(hashSeed(o.seed, o.epoch, o.rank, 0x51ab)));
  return mine;
}

/** Samples of this rank for an epoch, in their order. */
export async function* epochStream(set: StreamSet, o: EpochStreamOptions): AsyncGenerator<StreamItem> {
  for await (const chunk of epochChunks(set, o)) yield* chunk;
}

/** The most samples a chunk of epochChunks holds. */
const CHUNK = 64;

/** A unit's samples as unitItems gives them, when they are kept from an earlier epoch (kept-items.ts); else null. */
export type KeptUnits = (unit: StreamUnit) => StreamItem[] | null;

/**
 * Samples of this rank for an epoch, in their order (epochStream's), in chunks: what is at hand when a read has to be
 * waited for, else CHUNK samples. Taking a sample is synchronous: units are read whole (a row group) or member by
 * member (a shard), the next unit of each reading slot read while the one before is used, and only moving to a unit
 * waits. (Async generators a sample, one per stage, cost the stream thread about as much as reading a row group.)
 */
export async function* epochChunks(set: StreamSet, o: EpochStreamOptions, kept?: KeptUnits): AsyncGenerator<StreamItem[]> {
  const mine = epochUnits(set, o);
  // unshuffled (evaluation, prediction, convert): the data set's order, one unit after another
  const k = o.shuffle ? Math.max(1, Math.min(o.readers, mine.length)) : 1;
  const slots = Array.from({ length: k }, (_, s) => new Slot(set, k === 1 ? mine : mine.filter((_, j) => j % k === s), kept, o.imageRanges));
  const merged = new RoundRobin(slots);
  let out: StreamItem[] = [];
  try {
    // merged.take() gives the next sample (null at the end), or a promise when a slot moves to its next unit: then
    // the samples at hand go out first, and the unit is waited for (here only: no await a sample)
    async function* wait(p: Promise<unknown>): AsyncGenerator<StreamItem[], StreamItem | null> {
      let x: StreamItem | null | Promise<unknown> = p;
      while (x instanceof Promise) {
        if (out.length) {
          yield out;
          out = [];
        }
        await x;
        x = merged.take();
      }
      return x;
    }
    let x = merged.take();
    if (!o.shuffle || o.buffer <= 1) {
      for (; x !== null; x = merged.take()) {
        if (x instanceof Promise) {
          x = yield* wait(x);
          if (x === null) break;
        }
        out.push(x);
        if (out.length >= CHUNK) {
          yield out;
          out = [];
        }
      }
      if (out.length) yield out;
      return;
    }
    // The shuffle buffer (as webdataset's shuffle(bufsize, initial)): samples go out once it holds `initial` (100 or
    // the whole buffer if smaller), each replacing a random one; until it is full it takes two samples per one out,
    // so an epoch starts without reading a whole buffer first. At the end the rest goes out in random order.
    const rnd = mulberry32(hashSeed(o.seed, o.epoch, o.rank, 0xb0ff));
    const initial = Math.min(o.buffer, 100);
    const buf: StreamItem[] = [];
    for (; x !== null; x = merged.take()) {
      if (x instanceof Promise) {
        x = yield* wait(x);
        if (x === null) break;
      }
      const n = x;
      if (buf.length < initial) {
        buf.push(n);
        continue;
      }
      if (buf.length < o.buffer) {
        let m = merged.take();
        if (m instanceof Promise) m = yield* wait(m);
        if (m !== null) buf.push(m);
      }
      const j = Math.floor(rnd() * buf.length);
      out.push(buf[j]!);
      buf[j] = n;
      if (out.length >= CHUNK) {
        yield out;
        out = [];
      }
    }
    shuffleInPlace(buf, rnd);
    // (a loop, not push(...buf): spreading a buffer of 100,000s of samples overflows the stack)
    for (const x of buf) out.push(x);
    for (let i = 0; i < out.length; i += CHUNK) yield out.slice(i, i + CHUNK);
  } finally {
    for (const s of slots) s.close();
  }
}

/** A unit's records as samples (or their problems), with their data set indices. */
function* unitItems(set: StreamSet, unit: StreamUnit, records: Iterable<RawRecord>): Generator<StreamItem> {
  let k = 0;
  for (const r of records) {
    if (k >= unit.count) break; // a shard changed since it was counted: never more than the count
    const index = unit.offset + k++;
    if (r.problem === '') {
      yield { index, sample: null, problem: null };
      continue;
    }
    const s = set.toSample(r);
    if ('message' in s) yield { index, sample: null, problem: s };
    else yield { index, sample: s, problem: null };
  }
  // fewer records than counted (a shard changed since): the rest are left out, reported once
  if (k < unit.count) {
    // a unit that is one of its file's several (a part of a shard, its first included): named by its samples
    const alone = set.units.every((u) => u === unit || u.file !== unit.file);
    const where = alone ? unit.file : `${unit.file}: samples ${unit.rowStart}-${unit.rowStart + unit.count - 1}`;
    yield { index: unit.offset + k, sample: null, problem: { where, message: `has ${k} samples now but ${unit.count} when the data set was opened (changed during the run?)` } };
    for (k++; k < unit.count; k++) yield { index: unit.offset + k, sample: null, problem: null };
  }
}

/**
 * A reading slot: its units one after another, the next one's read started when one is taken up (reads on the main
 * thread are asynchronous: they overlap the use of the unit before).
 */
class Slot {
  #next = 0;
  #current: Iterator<StreamItem> | null = null;
  #reading: Promise<Iterable<RawRecord>> | null = null;
  #readingUnit = -1;

  constructor(readonly set: StreamSet, readonly units: number[], readonly kept?: KeptUnits, readonly imageRanges = false) {
    this.#readAhead();
  }

  #readAhead(): void {
    if (this.#next >= this.units.length || this.kept) return;
    this.#readingUnit = this.units[this.#next++]!;
    this.#reading = this.set.read(this.set.units[this.#readingUnit]!, this.imageRanges);
    this.#reading.catch(() => {}); // a failure surfaces when the unit is taken up
  }

  /** The slot's next sample, null when it has no more, or a promise to wait for before asking again. */
  take(): StreamItem | null | Promise<unknown> {
    for (;;) {
      if (this.#current) {
        const n = this.#current.next();
        if (!n.done) return n.value;
        this.#current = null;
      }
      if (!this.kept) break;
      // kept units: taken at once, never waited for (the same samples in the same order as read)
      if (this.#next >= this.units.length) return null;
      const unit = this.set.units[this.units[this.#next++]!]!;
      const items = this.kept(unit);
      if (!items) throw new Error(`${unit.file}: samples ${unit.rowStart}-${unit.rowStart + unit.count - 1} were not kept`);
      this.#current = items.values();
    }
    const reading = this.#reading;
    if (!reading) return null;
    const unit = this.set.units[this.#readingUnit]!;
    return reading.then((records) => {
      this.#current = unitItems(this.set, unit, records);
      this.#reading = null;
      this.#readAhead();
    });
  }

  /** Ends the unit being used (a shard's file is closed). */
  close(): void {
    this.#current?.return?.(undefined);
    this.#current = null;
  }
}

/** Samples from several slots in turn (one each), skipping those that have ended. */
class RoundRobin {
  #live: Slot[];
  #i = 0;

  constructor(slots: Slot[]) {
    this.#live = [...slots];
  }

  take(): StreamItem | null | Promise<unknown> {
    while (this.#live.length) {
      const x = this.#live[this.#i]!.take();
      if (x === null) {
        this.#live.splice(this.#i, 1);
        if (this.#i >= this.#live.length) this.#i = 0;
        continue;
      }
      if (!(x instanceof Promise)) this.#i = (this.#i + 1) % this.#live.length;
      return x;
    }
    return null;
  }
}

/** Local batch sizes: rank r's contiguous share of a global batch of B (as DataLoader.localSlice). */
export function localBatchSize(B: number, rank: number, worldSize: number): number {
  return Math.floor((B * (rank + 1)) / worldSize) - Math.floor((B * rank) / worldSize);
}

/** Batches per epoch for every rank: the most any rank needs (dropLast: the fewest full batches any rank has). */
export function streamBatches(set: StreamSet, B: number, worldSize: number, dropLast: boolean): number {
  const shares = assignUnits(set.units, worldSize).map((us) => us.reduce((a, u) => a + set.units[u]!.count, 0));
  const per = shares.map((n, r) => {
    const b = localBatchSize(B, r, worldSize);
    return b === 0 ? 0 : dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  });
  return dropLast ? Math.min(...per) : Math.max(...per);
}
