// A data set from a path as the user gives it: a JSONL / CSV manifest (read whole and checked up front), or Parquet
// files / WebDataset shards (streamed: stream.ts), told apart by their extensions (paths.ts).
import type { Manifest, Problem } from './manifest.js';
import { readManifest } from './manifest.js';
import { dataFormat, expandDataPaths } from './paths.js';
import { isTextCorpus, readTextCorpus } from './text-corpus.js';
import { type StreamSet, isStreamSet, openStreamSet } from './stream.js';
import type { ColumnNames } from './stream-types.js';
import type { ShardLimits } from './webdataset.js';

export type Dataset = Manifest | StreamSet;

export interface DatasetOptions {
  labels?: string[];
  onBadSample?: 'error' | 'skip';
  label?: 'required' | 'optional';
  columns?: ColumnNames;
  print?: (line: string) => void;
  /** which WebDataset shards are read in parts, of what size (default: over 64 MB, parts of 32 MB) */
  shardLimits?: ShardLimits;
  /** .txt files (one text per line, no image, no label) are a data set too: text pretraining */
  textCorpus?: boolean;
}

/** Opens a data set; `field` names the setting in messages (data.train, --data). */
export async function openDataset(field: string, path: string, opts: DatasetOptions = {}): Promise<Dataset> {
  const files = expandDataPaths(field, path);
  if (opts.textCorpus && isTextCorpus(files)) return readTextCorpus(field, files);
  const format = dataFormat(field, files);
  if (format === 'manifest') return readManifest(files[0]!, { labels: opts.labels, onBadSample: opts.onBadSample, label: opts.label });
  return openStreamSet(path, files, format, opts);
}

/** Samples in a data set (bad records of a streamed set included: they are found as it is read). */
export function datasetSize(d: Dataset): number {
  return isStreamSet(d) ? d.size : d.samples.length;
}

/** What opening the data set left out (onBadSample: "skip"). */
export function datasetSkipped(d: Dataset): Problem[] {
  return d.skipped;
}

export { isStreamSet };
