// Streamed data benchmarks: samples/s into the model (decoded, resized to 224, normalised, batched as tensors with
// their tokens) from the same JPEGs as files (a manifest), as Parquet files and as WebDataset shards, all through
// the DataLoader (batch 32, prefetch 2, no image cache). The PyTorch side (pytorch_ref.py decode_tar) is the
// WebDataset-style pipeline a user writes: an IterableDataset over the shards (Python's tarfile), PIL and
// torchvision's transforms, a torch DataLoader with one worker per core and the shards split between workers.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataLoader, TextTokenizer, convertDataset, disposeBatch, imageConfig, openDataset, readManifest } from '../src/index.js';

/** Epochs timed per format, the best one kept (the machine is shared: single epochs of a few hundred images vary). */
export const STREAM_ROUNDS = 5;

export interface StreamSets {
  manifest: string;
  parquet: string;
  webdataset: string;
}

/** The images of `dir` (train.jsonl) converted once to Parquet (row groups of 100) and to WebDataset shards. */
export async function ensureStreamSets(dir: string, shardSize: number): Promise<StreamSets> {
  const manifest = join(dir, 'train.jsonl');
  const m = readManifest(manifest, { checkFiles: false });
  const common = { prefix: 'train', shardSize, rowGroupSize: 100, compression: 'snappy' as const, onBadSample: 'error' as const };
  const n = Math.ceil(m.samples.length / shardSize);
  const last = String(n - 1).padStart(6, '0');
  const parquet = join(dir, 'parquet', `train-{000000..${last}}.parquet`);
  const webdataset = join(dir, 'wds', `train-{000000..${last}}.tar`);
  if (!existsSync(join(dir, 'parquet', 'train-000000.parquet'))) await convertDataset(m, { ...common, to: 'parquet', out: join(dir, 'parquet') });
  if (!existsSync(join(dir, 'wds', 'train-000000.tar'))) await convertDataset(m, { ...common, to: 'webdataset', out: join(dir, 'wds') });
  return { manifest, parquet, webdataset };
}

/** Best of `rounds` epochs (PyTorch's side takes the best of as many): samples/s the loader hands to the model from one format. */
export async function streamThroughput(path: string, tokenizerPath: string, rounds = STREAM_ROUNDS): Promise<{ samples_per_s: number; n: number }> {
  const d = await openDataset('data.train', path);
  const source = 'samples' in d ? d.samples : d;
  const loader = new DataLoader(source, TextTokenizer.fromFile(tokenizerPath), imageConfig({ size: 224, resize: 'exact' }), { batchSize: 32, shuffle: true, seed: 1 });
  let best = 0;
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    n = 0;
    for await (const b of loader.epoch(r)) {
      n += b.indices.length;
      disposeBatch(b);
    }
    best = Math.max(best, n / ((performance.now() - t0) / 1000));
  }
  return { samples_per_s: best, n };
}
