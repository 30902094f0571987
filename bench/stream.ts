// Streamed data benchmarks: samples/s into the model (decoded, resized to 224, normalised, batched as tensors with
// their tokens) from the same JPEGs as files (a manifest), as Parquet files and as WebDataset shards, all through
// the DataLoader (batch 32, prefetch 2, no image cache). The PyTorch side (pytorch_ref.py decode_tar) is the
// WebDataset-style pipeline a user writes: an IterableDataset over the shards (Python's tarfile), PIL and
// torchvision's transforms, a torch DataLoader with one worker per core and the shards split between workers.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataLoader, TextTokenizer, convertDataset, disposeBatch, imageConfig, openDataset, readManifest } from '../src/index.js';

/**
 * Epochs per format: STREAM_CYCLES turns over the formats, STREAM_BLOCK epochs of each in a row, so that a slow spell
 * of the machine (it is shared) falls on every format alike. The figure is the median epoch, the first epoch of each
 * loader left out (the stream thread and the JIT warming up), with the overall rate (samples over time, all timed
 * epochs) beside it: single epochs of a few hundred images vary by 10-25% here (a 320 px epoch is ~0.17 s), so the
 * median of 23 epochs still moved by ~3% between runs and formats at parity came out 0.95-1.05x; 59 epochs halve that.
 * PyTorch's side takes the median of as many epochs.
 */
export const STREAM_CYCLES = 20;
export const STREAM_BLOCK = 3;

export interface StreamSets {
  manifest: string;
  /** as datasets writes image data: the image column uncompressed (read in place), text and label snappy */
  parquet: string;
  /** every column snappy, images too (older Hub conversions): images decompressed and copied */
  parquetSnappy: string;
  webdataset: string;
}

/**
 * The images of `dir` (train.jsonl) converted once to Parquet files and WebDataset shards of `shardSize` samples each
 * (a Parquet file's row groups hold up to 100 rows: one row group a file with the bench's 50).
 */
export async function ensureStreamSets(dir: string, shardSize: number): Promise<StreamSets> {
  const manifest = join(dir, 'train.jsonl');
  const m = readManifest(manifest, { checkFiles: false });
  const common = { prefix: 'train', shardSize, rowGroupSize: 100, compression: 'snappy' as const, onBadSample: 'error' as const };
  const n = Math.ceil(m.samples.length / shardSize);
  const last = String(n - 1).padStart(6, '0');
  const parquet = join(dir, 'parquet-v2', `train-{000000..${last}}.parquet`);
  const parquetSnappy = join(dir, 'parquet-snappy', `train-{000000..${last}}.parquet`);
  const webdataset = join(dir, 'wds', `train-{000000..${last}}.tar`);
  if (!existsSync(join(dir, 'parquet-v2', 'train-000000.parquet'))) await convertDataset(m, { ...common, to: 'parquet', out: join(dir, 'parquet-v2') });
  if (!existsSync(join(dir, 'parquet-snappy', 'train-000000.parquet'))) await convertDataset(m, { ...common, imageCompression: 'snappy', to: 'parquet', out: join(dir, 'parquet-snappy') });
  if (!existsSync(join(dir, 'wds', 'train-000000.tar'))) await convertDataset(m, { ...common, to: 'webdataset', out: join(dir, 'wds') });
  return { manifest, parquet, parquetSnappy, webdataset };
}

/** The median of some numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface StreamRate {
  /** the median epoch (the first left out) */
  samples_per_s: number;
  /** all samples of the timed epochs over their time */
  overall_samples_per_s: number;
  best: number;
  /** samples an epoch */
  n: number;
  epochs: number;
}

/**
 * Samples/s the loader hands to the model from each data set: one loader per data set, kept for the whole run (as in
 * training: a streamed set reads its next epoch ahead), the data sets taken in turn.
 */
export async function streamThroughputs<K extends string>(paths: Record<K, string>, tokenizerPath: string, cycles = STREAM_CYCLES, block = STREAM_BLOCK): Promise<Record<K, StreamRate>> {
  const tok = TextTokenizer.fromFile(tokenizerPath);
  const names = Object.keys(paths) as K[];
  const loaders = new Map<K, DataLoader>();
  for (const k of names) {
    const d = await openDataset('data.train', paths[k]);
    loaders.set(k, new DataLoader('samples' in d ? d.samples : d, tok, imageConfig({ size: 224, resize: 'exact' }), { batchSize: 32, shuffle: true, seed: 1 }));
  }
  const rates = new Map<K, number[]>(names.map((k) => [k, []]));
  const totals = new Map<K, { n: number; s: number }>(names.map((k) => [k, { n: 0, s: 0 }]));
  const sizes = new Map<K, number>();
  for (let c = 0; c < cycles; c++) {
    for (const k of names) {
      for (let e = 0; e < block; e++) {
        const r = rates.get(k)!;
        const t0 = performance.now();
        let n = 0;
        for await (const b of loaders.get(k)!.epoch(c * block + e)) {
          n += b.indices.length;
          disposeBatch(b);
        }
        const s = (performance.now() - t0) / 1000;
        r.push(n / s);
        sizes.set(k, n);
        if (c > 0 || e > 0) {
          const t = totals.get(k)!;
          t.n += n;
          t.s += s;
        }
      }
    }
  }
  return Object.fromEntries(names.map((k) => {
    const timed = rates.get(k)!.slice(1);
    const t = totals.get(k)!;
    return [k, { samples_per_s: median(timed), overall_samples_per_s: t.n / t.s, best: Math.max(...timed), n: sizes.get(k)!, epochs: timed.length }];
  })) as Record<K, StreamRate>;
}
