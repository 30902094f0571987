// What the streamed formats (Parquet, WebDataset) hand to the stream (stream.ts): units of reading (a Parquet row
// group, a WebDataset shard) with their sample counts, and records as read, before validation.
import type { ImageRange } from './manifest.js';

/** Which column (Parquet) or field (WebDataset member extension or .json key) holds each part of a sample. */
export interface ColumnNames {
  image?: string;
  text?: string;
  label?: string;
}

/** A part of a data set read in one go, in order: a Parquet row group (or a part of a large one) or a WebDataset shard (or a part of a large one). */
export interface StreamUnit {
  file: string;
  /** Parquet: the row group; WebDataset: the part of the shard (0: the first, or the whole shard) */
  rowGroup: number;
  /** Parquet: the file row of its first sample; WebDataset: the shard's index of its first sample */
  rowStart: number;
  /** WebDataset, a part after the first: the byte offset of its first sample's first header */
  at?: number;
  /** samples (records) in it, bad ones included */
  count: number;
  /** the data set index of its first sample (units in file order) */
  offset: number;
}

/** A record as read: the image (bytes in memory, or a path), the raw text and label, or what is wrong with it. */
export interface RawRecord {
  /** for messages: "file.parquet: row 12", "shard.tar: sample 000012" */
  where: string;
  image: { bytes: Uint8Array; name: string } | { range: ImageRange; name: string } | { path: string } | null;
  text: unknown;
  label: unknown;
  /** the record cannot be read (a corrupt member, a row group that does not decode); the rest is empty */
  problem?: string;
  /** its problem explains others: a shard sample's members apart, the earlier ones a sample missing its other files */
  apart?: boolean;
}
