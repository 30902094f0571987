// Parquet data sets as the Hugging Face Hub publishes them (datasets' to_parquet, the Hub's parquet conversion):
// the image as bytes, as a {bytes, path} struct, or as a path; text as a string; the label as an integer (with
// datasets' ClassLabel names in the file's "huggingface" metadata), a string or a boolean. Read with hyparquet
// (and hyparquet-compressors for gzip, zstd, brotli, lz4): the footer when opened, then one row group at a time.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { type AsyncBuffer, type ColumnMetaData, type Compressors, type FileMetaData, type SchemaTree, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { getTreePath } from 'hyparquet/src/schema.js';
import { snappyUncompressor } from 'hysnappy';
import { MmtrainError } from '../errors.js';
import { readRange } from './file-reads.js';
import { BufferPool } from './buffer-pool.js';
import { ownImage } from './image-buffers.js';
import { imageAddon } from './image-addon.js';
import { PageCursor, type PageTable, inPlaceOffsets, pageTable } from './parquet-pages.js';
import type { ColumnNames, RawRecord, StreamUnit } from './stream-types.js';

// Snappy, the codec most writers use: decompressed by the snappy library in the image addon when it was built with
// it (native/image/snappy.cc, several times hysnappy's speed on image pages), else by one hysnappy instance, kept
// (hyparquet-compressors' instantiates its WebAssembly module for every page).
// The other codecs come from hyparquet-compressors, imported the first time a file uses one (openParquet): its
// import builds gzip's tables and costs ~50-100 ms, which every process and stream thread paid before.
const snappyIntoPool = nativeSnappy();
const compressors: Compressors = { SNAPPY: snappyIntoPool ?? snappyUncompressor() };
let otherCodecs: Promise<void> | null = null;

async function loadCodecs(md: FileMetaData): Promise<void> {
  const other = md.row_groups.some((g) => g.columns.some((c) => c.meta_data && c.meta_data.codec !== 'UNCOMPRESSED' && c.meta_data.codec !== 'SNAPPY'));
  if (!other) return;
  otherCodecs ??= import('hyparquet-compressors').then((m) => {
    for (const [codec, f] of Object.entries(m.compressors)) if (codec !== 'SNAPPY') compressors[codec as keyof Compressors] = f;
  });
  await otherCodecs;
}

/** The addon's snappy (into `out` when given), or null without it. */
function nativeSnappy(): ((input: Uint8Array, outputLength: number, out?: Uint8Array) => Uint8Array) | null {
  try {
    return imageAddon().snappyUncompress ?? null;
  } catch {
    return null; // the addon is not built: hysnappy
  }
}

export const PARQUET_COLUMNS = { image: 'image', text: 'text', label: 'label' } as const;

type ImageKind = 'bytes' | 'struct' | 'path';

/** An opened Parquet file: its row groups, and how its columns hold a sample. */
export interface ParquetSource {
  file: string;
  rowGroups: number[];
  columns: Required<ColumnNames>;
  imageKind: ImageKind;
  hasLabel: boolean;
  /** datasets' ClassLabel names for the label column, when the file carries them */
  classNames: string[] | null;
  buffer: AsyncBuffer;
  metadata: FileMetaData;
  /** page tables of the column chunks read page by page (parquet-pages.ts), by row group and leaf */
  pageTables: Map<string, PageTable>;
  /** the schema as a tree (the paths of the leaves read page by page) */
  schema: SchemaTree;
  /** which row groups are read page by page, and in parts of how many bytes (PagedLimits) */
  limits: PagedLimits;
}

interface SchemaNode {
  element: { name: string; type?: string; converted_type?: string; logical_type?: { type: string } };
  children: SchemaNode[];
}

const isString = (n: SchemaNode) => n.element.type === 'BYTE_ARRAY' && (n.element.converted_type === 'UTF8' || n.element.logical_type?.type === 'STRING' || n.element.converted_type === undefined);

/**
 * Opens a Parquet file and checks its columns: the image, text and (unless `needLabel` is false) label columns
 * must exist with usable types. Errors name the file, the column, what it holds and what was expected.
 */
export async function openParquet(file: string, cols: ColumnNames, needLabel: boolean, limits: PagedLimits = PAGED_LIMITS): Promise<ParquetSource> {
  const columns = { image: cols.image ?? PARQUET_COLUMNS.image, text: cols.text ?? PARQUET_COLUMNS.text, label: cols.label ?? PARQUET_COLUMNS.label };
  let buffer: AsyncBuffer;
  let metadata: FileMetaData;
  try {
    buffer = await fileAsyncBuffer(file);
    metadata = await parquetMetadataAsync(buffer);
    await loadCodecs(metadata);
  } catch (e) {
    throw new MmtrainError(`${file}: not a readable Parquet file (${(e as Error).message})`);
  }
  const schema = parquetSchema(metadata) as unknown as SchemaNode;
  const byName = new Map(schema.children.map((c) => [c.element.name, c]));
  const names = schema.children.map((c) => c.element.name).join(', ');
  const need = (field: keyof ColumnNames) => {
    const n = byName.get(columns[field]);
    if (!n) throw new MmtrainError(`${file}: no column "${columns[field]}" for the ${field} (columns: ${names}); set data.columns.${field} to the column that holds it`);
    return n;
  };
  const img = need('image');
  let imageKind: ImageKind;
  if (img.children.length) {
    const bytes = img.children.find((c) => c.element.name === 'bytes');
    if (!bytes || bytes.element.type !== 'BYTE_ARRAY') throw new MmtrainError(`${file}: column "${columns.image}" is a struct without a binary "bytes" field (fields: ${img.children.map((c) => c.element.name).join(', ')}); expected image bytes, a {bytes, path} struct or a path`);
    imageKind = 'struct';
  } else if (img.element.type === 'BYTE_ARRAY') {
    imageKind = img.element.converted_type === 'UTF8' || img.element.logical_type?.type === 'STRING' ? 'path' : 'bytes';
  } else {
    throw new MmtrainError(`${file}: column "${columns.image}" holds ${img.element.type}; expected image bytes (binary), a {bytes, path} struct or a path (string)`);
  }
  const text = need('text');
  if (text.children.length || !isString(text)) throw new MmtrainError(`${file}: column "${columns.text}" holds ${text.children.length ? 'a struct' : text.element.type}; expected a string`);
  let hasLabel = byName.has(columns.label);
  if (needLabel) {
    const label = need('label');
    const t = label.element.type;
    if (label.children.length || !(t === 'INT32' || t === 'INT64' || t === 'BOOLEAN' || (t === 'BYTE_ARRAY' && isString(label)))) {
      throw new MmtrainError(`${file}: column "${columns.label}" holds ${label.children.length ? 'a struct' : t}; expected an integer class index, a class name (string) or a boolean`);
    }
  } else if (hasLabel && byName.get(columns.label)!.children.length) hasLabel = false;
  return { file, rowGroups: metadata.row_groups.map((g) => Number(g.num_rows)), columns, imageKind, hasLabel, classNames: classLabelNames(metadata, columns.label), buffer, metadata, pageTables: new Map(), schema: schema as unknown as SchemaTree, limits };
}

/**
 * A file as hyparquet reads it: each slice read with one positioned read into a buffer of its own (hyparquet's
 * asyncBufferFromFile streams 64 KiB chunks and concatenates them, a second copy of every column chunk);
 * synchronously on the stream thread (file-reads.ts).
 */
async function fileAsyncBuffer(file: string): Promise<AsyncBuffer> {
  const { size } = await stat(file);
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      return (await readRange(file, start, Math.min(end ?? size, size))).buffer as ArrayBuffer;
    },
  };
}

/** datasets writes its Features as JSON under the "huggingface" key: a ClassLabel column names its classes. */
function classLabelNames(md: FileMetaData, column: string): string[] | null {
  const kv = md.key_value_metadata?.find((k) => k.key === 'huggingface');
  if (!kv?.value) return null;
  try {
    const info = JSON.parse(kv.value) as { info?: { features?: Record<string, { _type?: string; names?: unknown }> } };
    const f = info.info?.features?.[column];
    return f?._type === 'ClassLabel' && Array.isArray(f.names) && f.names.every((n) => typeof n === 'string') ? (f.names as string[]) : null;
  } catch {
    return null;
  }
}

/**
 * Row groups whose columns read (as stored) come to more than `pagedBytes` are read page by page (parquet-pages.ts),
 * in parts of about `partBytes` each (units of the stream, shuffled and shared between ranks and reading slots as row
 * groups are); smaller ones are read whole, which costs less a row.
 */
export interface PagedLimits {
  pagedBytes: number;
  partBytes: number;
}
const PAGED_LIMITS: PagedLimits = { pagedBytes: 64 << 20, partBytes: 32 << 20 };

/** A column chunk read page by page: its metadata and its place in the schema. */
interface Leaf {
  meta: ColumnMetaData;
  schemaPath: SchemaTree[];
}

/** The column chunks of a row group that hold a sample's parts. */
interface Leaves {
  /** the image column, or a struct's bytes and (when it has one) path */
  image: Leaf[];
  text: Leaf;
  label: Leaf | null;
}

/**
 * The column chunks of row group `g` that hold the image, text and label, when each holds one value a row (no
 * repeated field on its path: then it can be read page by page); else null.
 */
function leavesOf(src: ParquetSource, g: number): Leaves | null {
  const tree = src.schema;
  const leaf = (...path: string[]): Leaf | null | undefined => {
    const meta = src.metadata.row_groups[g]!.columns.find((c) => c.meta_data?.path_in_schema.join('\u0000') === path.join('\u0000'))?.meta_data;
    if (!meta) return undefined;
    const schemaPath = getTreePath(tree, meta.path_in_schema);
    return schemaPath.some((n) => n.element.repetition_type === 'REPEATED') ? null : { meta, schemaPath };
  };
  const { image, text, label } = src.columns;
  const path = src.imageKind === 'struct' ? leaf(image, 'path') : undefined;
  const parts = src.imageKind === 'struct' ? [leaf(image, 'bytes'), ...(path === undefined ? [] : [path])] : [leaf(image)];
  const t = leaf(text);
  const l = src.hasLabel ? leaf(label) : null;
  if (parts.some((p) => !p) || !t || l === undefined || (src.hasLabel && !l)) return null;
  return { image: parts as Leaf[], text: t, label: l ?? null };
}

/** The bytes read for row group `g` (its columns read, as stored) when it is read page by page; 0 when it is not. */
function pagedBytes(src: ParquetSource, g: number): number {
  const leaves = leavesOf(src, g);
  const all = leaves ? [...leaves.image, leaves.text, ...(leaves.label ? [leaves.label] : [])] : [];
  const bytes = all.reduce((a, l) => a + Number(l.meta.total_compressed_size), 0);
  return bytes > src.limits.pagedBytes ? bytes : 0;
}

/**
 * The units of a file: its row groups, a large one as parts of whole rows (PagedLimits). `offset` is the data set
 * index of the file's first row.
 */
export function parquetUnits(src: ParquetSource, offset: number): StreamUnit[] {
  const units: StreamUnit[] = [];
  let row = 0;
  src.rowGroups.forEach((count, rowGroup) => {
    const parts = Math.min(count, Math.max(1, Math.ceil(pagedBytes(src, rowGroup) / src.limits.partBytes)));
    for (let p = 0; p < parts; p++) {
      const a = Math.floor((count * p) / parts);
      const b = Math.floor((count * (p + 1)) / parts);
      units.push({ file: src.file, rowGroup, rowStart: row + a, count: b - a, offset: offset + row + a });
    }
    row += count;
  });
  return units;
}

/**
 * A unit's records: a row group read whole (readRowGroup), or a part of a large one read page by page (readPaged),
 * its records made as they are taken.
 */
export async function readUnit(src: ParquetSource, unit: StreamUnit, imageRanges = false): Promise<Iterable<RawRecord>> {
  return pagedBytes(src, unit.rowGroup) ? readPaged(src, unit) : readRowGroup(src, unit, imageRanges);
}

/** The file row of row group `g`'s first row. */
const groupStart = (src: ParquetSource, g: number) => src.rowGroups.slice(0, g).reduce((a, n) => a + n, 0);

/**
 * The records of a unit read page by page (parquet-pages.ts), synchronously: each column chunk from the page holding
 * the unit's first row, one page of each in memory at a time. A page that does not decode is one problem for the
 * unit's rows from there on.
 */
export function* readPaged(src: ParquetSource, unit: StreamUnit): Generator<RawRecord> {
  const g = unit.rowGroup;
  const rows = src.rowGroups[g]!;
  const first = unit.rowStart - groupStart(src, g);
  const { image, text, label } = leavesOf(src, g)!;
  const leaves = [...image, text, ...(label ? [label] : [])];
  let k = 0;
  function* failed(e: unknown): Generator<RawRecord> {
    const where = `${src.file}: row group ${g} (rows ${unit.rowStart + k}-${unit.rowStart + unit.count - 1})`;
    for (let j = k; j < unit.count; j++) yield { where, image: null, text: null, label: null, problem: j === k ? `does not decode (${(e as Error).message})` : '' };
  }
  let fd = -1;
  try {
    let cursors: PageCursor[];
    try {
      fd = openSync(src.file, 'r');
      cursors = leaves.map((l) => {
        const key = `${g}\u0000${l.meta.path_in_schema.join('\u0000')}`;
        let table = src.pageTables.get(key);
        if (!table) src.pageTables.set(key, (table = pageTable(fd, l.meta, rows)));
        return new PageCursor(fd, l.meta, l.schemaPath, table, compressors, first);
      });
    } catch (e) {
      yield* failed(e);
      return;
    }
    for (; k < unit.count; k++) {
      let r: RawRecord;
      try {
        const v = cursors.map((c) => c.take());
        const img = src.imageKind === 'struct' ? { bytes: v[0], path: image.length > 1 ? v[1] : undefined } : v[0];
        // (each value is used before its column's next is taken: an image's bytes are copied out of the page here)
        r = record(src, unit.rowStart + k, img, v[image.length], label ? v[image.length + 1] : undefined);
      } catch (e) {
        yield* failed(e);
        return;
      }
      yield r;
    }
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The label column alone (to discover the classes); cheap next to the images. */
export async function readParquetLabels(src: ParquetSource): Promise<unknown[]> {
  if (!src.hasLabel) return [];
  const rows = await parquetReadObjects({ file: src.buffer, metadata: src.metadata, columns: [src.columns.label], compressors });
  return rows.map((r) => r[src.columns.label]);
}

// Decompressed pages of a row group's columns, reused from one row group to the next: a page is fresh memory
// otherwise, and its page faults cost as much as the decompression. Its images are copied out, each into a buffer of
// its own (the one copy an image needs anyway: it is transferred to the batch thread alone), and its strings made
// JS strings, before it is reused.
// A column chunk holds several pages (writers cut them at ~1 MB), all decompressed before its rows are assembled, and
// two reading slots read at once: the pool keeps up to 64 MB of pages.
const pagePool = new BufferPool<Uint8Array>(64 << 20);

/** Snappy into pages from the pool (each noted in `taken`, to be given back), or null without the addon's snappy. */
function pooledSnappy(taken: Uint8Array[]): Compressors['SNAPPY'] | null {
  const f = snappyIntoPool;
  if (!f) return null;
  return (input, n) => {
    const page = pagePool.take(n) ?? new Uint8Array(Buffer.allocUnsafeSlow(Math.max(n, 1 << 20)).buffer);
    taken.push(page);
    return f(input, n, page.subarray(0, n));
  };
}

// A row group's column chunks (its images, compressed or not, its texts and labels) are read into reused memory too:
// resizable ArrayBuffers, each resized to the chunk's exact length (hyparquet reads nested columns to the buffer's
// end). A fresh buffer a chunk was fresh pages to fault in, and its garbage started most of this thread's collections.
// The buffer taken is the one whose length changes least (takeClosest): growing one zero-fills the bytes it adds, and a
// buffer last used for a text chunk grown to a row group's photos (6.5 MB) cost ~5 ms, ~3x the rest of the read.
const chunkPool = new BufferPool<ResizableBuffer>(64 << 20, (b) => b.maxByteLength);

/**
 * `src`'s file as hyparquet reads it, its slices in pooled chunk buffers (each noted in `taken`, with its read, to be
 * given back once that read has ended: hyparquet may give up on a row group while another of its reads is running).
 */
function pooledFile(src: ParquetSource, taken: { chunk: ResizableBuffer; read: Promise<unknown> }[]): AsyncBuffer {
  const size = src.buffer.byteLength;
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const n = Math.max(0, Math.min(end, size) - start);
      const chunk = chunkPool.takeClosest(n) ?? (new (ArrayBuffer as ResizableBufferConstructor)(n, { maxByteLength: Math.max(2 * n, 32 << 20) }) as ResizableBuffer);
      chunk.resize(n);
      const read = readRange(src.file, start, start + n, new Uint8Array(chunk));
      taken.push({ chunk, read });
      await read;
      return chunk;
    },
  };
}

/** ES2024's resizable ArrayBuffer (Node 20 has it; TypeScript's ES2022 library does not). */
interface ResizableBuffer extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(n: number): void;
}
type ResizableBufferConstructor = new (n: number, o: { maxByteLength: number }) => ArrayBuffer;

/** A string column's value as hyparquet gives it with utf8: false (its bytes), as a string; anything else as it is. */
const asText = (t: unknown) => (t instanceof Uint8Array ? Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('utf8') : t);

/**
 * A row's record: its image (bytes copied into a buffer of their own, as the pages and chunks they are in are reused;
 * or, at `offset` in the file, a byte range, read by the batch thread as a shard's are; a path relative to the file),
 * text and label.
 */
function record(src: ParquetSource, row: number, v: unknown, text: unknown, label: unknown, at: { offset: number; ino: number } | null = null): RawRecord {
  const where = `${src.file}: row ${row}`;
  const image = (b: Uint8Array, name: string) => (at && b.byteLength ? { range: { file: src.file, offset: at.offset, length: b.byteLength, ino: at.ino }, name } : { bytes: ownImage(b), name });
  let img: RawRecord['image'] = null;
  if (src.imageKind === 'bytes') {
    if (v instanceof Uint8Array) img = image(v, where);
  } else if (src.imageKind === 'path') img = asPath(src, asText(v));
  else if (v && typeof v === 'object') {
    const s = v as { bytes?: unknown; path?: unknown };
    const path = asText(s.path);
    img = s.bytes instanceof Uint8Array && s.bytes.length ? image(s.bytes, typeof path === 'string' ? `${where} (${path})` : where) : asPath(src, path);
  }
  return { where, image: img, text: asText(text), label: src.hasLabel ? asText(label) : undefined };
}

/** A struct's or column's image bytes as decoded (anything else as it is). */
const imageBytes = (src: ParquetSource, v: unknown) => (src.imageKind === 'struct' ? (v as { bytes?: unknown } | null | undefined)?.bytes : v);

/**
 * Where each row's image of row group `g` lies in the file (parquet-pages.ts inPlaceOffsets), when the image column
 * stores its values in place (uncompressed, PLAIN: datasets' layout); else null. `values`: the row group's images
 * as decoded, by row.
 */
function imageOffsets(src: ParquetSource, g: number, values: unknown[]): { offsets: (number | null)[]; ino: number } | null {
  if (src.imageKind === 'path') return null;
  const leaf = leavesOf(src, g)?.image[0];
  if (!leaf) return null;
  // the leaf's definition level: one for each optional field on its path
  const maxDefinition = leaf.schemaPath.slice(1).filter((n) => n.element.repetition_type === 'OPTIONAL').length;
  let fd = -1;
  try {
    fd = openSync(src.file, 'r');
    const offsets = inPlaceOffsets(fd, leaf.meta, maxDefinition, values);
    // the inode read now (the file may have been replaced since it was opened, by one holding the same rows)
    return offsets && { offsets, ino: fstatSync(fd).ino };
  } catch {
    return null; // (the images then come in memory, as hyparquet decoded them)
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** A path column's value as the image's path (relative to the file's folder), or null. */
const asPath = (src: ParquetSource, p: unknown) => (typeof p === 'string' && p ? { path: isAbsolute(p) ? p : resolve(dirname(src.file), p) } : null);

/**
 * The records of one row group, in order, each image in a buffer of its own. A row group that does not decode is one
 * problem for all its rows. Its columns are read in one call: hyparquet reads adjacent column chunks in one range when
 * they come to 2 MB at most, and copies each out of it (small images: a copy of ~100 KB a row group), and leaves
 * larger ones (photos) to a range each. Two calls (the image column alone, then text and label) cost ~9 us a row with
 * 2 KB images against ~7.5 us (a loop over 8 row groups of 50, 20 times), the planning and assembly done twice.
 */
export async function readRowGroup(src: ParquetSource, unit: StreamUnit, imageRanges = false): Promise<RawRecord[]> {
  const { image, text, label } = src.columns;
  const taken: Uint8Array[] = [];
  const chunks: { chunk: ResizableBuffer; read: Promise<unknown> }[] = [];
  try {
    let rows: Record<string, unknown>[];
    try {
      const SNAPPY = pooledSnappy(taken);
      rows = await parquetReadObjects({
        file: pooledFile(src, chunks), metadata: src.metadata, rowStart: unit.rowStart, rowEnd: unit.rowStart + unit.count, utf8: false,
        columns: src.hasLabel ? [image, text, label] : [image, text], compressors: SNAPPY ? { ...compressors, SNAPPY } : compressors,
      });
      if (rows.length !== unit.count) throw new Error(`${rows.length} rows decoded, the footer says ${unit.count}`);
    } catch (e) {
      const where = `${src.file}: row group ${unit.rowGroup} (rows ${unit.rowStart}-${unit.rowStart + unit.count - 1})`;
      return Array.from({ length: unit.count }, (_, k) => ({ where, image: null, text: null, label: null, problem: k === 0 ? `does not decode (${(e as Error).message})` : '' }));
    }
    const out: RawRecord[] = new Array(rows.length);
    // a unit read whole is its row group: its rows are the chunk's
    const inPlace = imageRanges && unit.count === src.rowGroups[unit.rowGroup] ? imageOffsets(src, unit.rowGroup, rows.map((r) => imageBytes(src, r[image]))) : null;
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k]!;
      const offset = inPlace?.offsets[k] ?? null;
      out[k] = record(src, unit.rowStart + k, r[image], r[text], src.hasLabel ? r[label] : undefined, offset === null ? null : { offset, ino: inPlace!.ino });
    }
    return out;
  } finally {
    // nothing refers to the pages any more: their images were copied out
    for (const p of taken) pagePool.give(p);
    await Promise.allSettled(chunks.map((c) => c.read));
    for (const c of chunks) chunkPool.give(c.chunk);
  }
}
