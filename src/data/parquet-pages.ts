// Large Parquet row groups read page by page. Most writers other than datasets cut row groups by rows, not bytes
// (pyarrow's default is 1M rows a group, polars' 512K, DuckDB's 122,880): a file of images from them is often one
// row group of hundreds of MB. Read whole, as hyparquet reads a row group (every column chunk in memory, its pages
// decoded, each image then copied out), one took ~3.5x its size in memory per reading slot (a 250 MB row group:
// +890 MB). Here a row group's column chunks are read one page at a time (a writer's page is ~1 MB), with
// synchronous reads (as WebDataset shards are, tar.ts), so that memory stays bounded by the pages in flight; and a
// part of a row group (a unit of the stream: parquetUnits splits large ones) starts at the page holding its first
// row, the pages before it skipped by their headers alone.
//
// Pages are decoded by hyparquet's own page reader (hyparquet/src/column.js, exported by its package but not part of
// its documented API, hence the ~1.33.0 range in package.json): the page header (thrift), decompression, dictionary
// and data pages v1 and v2, definition levels (nulls, {bytes, path} structs' fields). The tests compare every part
// with the same rows read whole by parquetReadObjects. Only leaves that hold one value a row are read this way.
import type { ColumnMetaData, Compressors, DecodedArray, PageHeader, SchemaTree } from 'hyparquet';
import type { ColumnDecoder } from 'hyparquet/src/types.js';
import { parquetHeader, readPage } from 'hyparquet/src/column.js';
import { DEFAULT_PARSERS, convert } from 'hyparquet/src/convert.js';
import { readFullySync } from './file-reads.js';

/** A data page of a column chunk: where its header starts, and its rows (the group row of its first). */
export interface PageEntry {
  offset: number;
  firstRow: number;
  rows: number;
}

/**
 * A column chunk's pages: its dictionary page (if any) and its data pages in order; `broken`, why the pages end
 * before the row group's last row (a header that does not parse): rows up to there can still be read.
 */
export interface PageTable {
  dictionary: number | null;
  pages: PageEntry[];
  broken: string | null;
}

/** A page header, and where the page's data starts (after the header). */
interface HeaderAt {
  header: PageHeader;
  dataOffset: number;
}

/** Page headers are read through a window of this many bytes, doubled for one larger (its statistics) up to 16 MB. */
const HEADER_WINDOW = 16 << 10;
const MAX_HEADER = 16 << 20;

/** The header of the page at `offset` (a chunk ends at `end`). */
function readHeader(fd: number, offset: number, end: number, window: { buf: Buffer }): HeaderAt {
  for (let size = HEADER_WINDOW; ; size *= 2) {
    const n = Math.min(size, end - offset);
    if (window.buf.length < n) window.buf = Buffer.allocUnsafeSlow(n);
    const view = window.buf.subarray(0, n);
    readFullySync(fd, view, offset);
    const reader = { view: new DataView(view.buffer, view.byteOffset, n), offset: 0 };
    let header: PageHeader;
    try {
      header = parquetHeader(reader);
    } catch (e) {
      // a header running past the window (its thrift cut off) is read again through a larger one; one that does not
      // parse up to the chunk's end (or 16 MB) is corrupt
      if (n >= end - offset || size >= MAX_HEADER) throw e;
      continue;
    }
    const n2 = header.compressed_page_size;
    if (!Number.isSafeInteger(n2) || n2 < 0 || offset + reader.offset + n2 > end) throw new Error(`the page at byte ${offset} gives a size of ${n2} bytes, past the column chunk's end (${end})`);
    return { header, dataOffset: offset + reader.offset };
  }
}

/**
 * Where a column chunk's pages start and end in the file: at its dictionary page when it has one (an offset of 0, as
 * some writers leave it, is none: parquet-java and hyparquet read it so), else at its first data page.
 */
function chunkRange(meta: ColumnMetaData): [number, number] {
  const dict = Number(meta.dictionary_page_offset ?? 0);
  const data = Number(meta.data_page_offset);
  const start = dict > 0 && dict < data ? dict : data;
  return [start, start + Number(meta.total_compressed_size)];
}

/**
 * A column chunk's page table, from its page headers alone (each read where the one before says the next starts),
 * up to the page that holds the row group's last row (`rows`: bytes after it are left alone, as hyparquet leaves
 * them). A header that does not parse ends the table there (`broken`): the rows before it can still be read.
 */
export function pageTable(fd: number, meta: ColumnMetaData, rows: number): PageTable {
  const [start, end] = chunkRange(meta);
  const window = { buf: Buffer.allocUnsafeSlow(HEADER_WINDOW) };
  const table: PageTable = { dictionary: null, pages: [], broken: null };
  let row = 0;
  for (let at = start; row < rows; ) {
    try {
      if (at >= end) throw new Error(`its pages hold ${row} rows, the row group ${rows}`);
      const { header, dataOffset } = readHeader(fd, at, end, window);
      if (header.type === 'DICTIONARY_PAGE') {
        if (table.dictionary !== null || table.pages.length) throw new Error(`a second dictionary page at byte ${at}`);
        table.dictionary = at;
      } else if (header.type === 'DATA_PAGE' || header.type === 'DATA_PAGE_V2') {
        // one value a row (no lists: see the file's opening comment): a v1 page's values are its rows
        const n = header.type === 'DATA_PAGE' ? header.data_page_header?.num_values : header.data_page_header_v2?.num_rows;
        if (!Number.isSafeInteger(n) || n! <= 0 || row + n! > rows) throw new Error(`the page at byte ${at} holds ${n} rows, past the row group's ${rows}`);
        table.pages.push({ offset: at, firstRow: row, rows: n! });
        row += n!;
      }
      // (index pages are skipped; every page moves on by its header at least)
      at = dataOffset + header.compressed_page_size;
    } catch (e) {
      table.broken = (e as Error).message;
      break;
    }
  }
  return table;
}

/**
 * One leaf column's values row by row, from a given row of the row group on: its pages read and decoded one at a
 * time (the dictionary first), each page read into one buffer reused for the next (a compressed page decompresses
 * into memory of its own). A value (bytes) is a view into that buffer or the decompressed page: use it before taking
 * the next one.
 */
export class PageCursor {
  readonly #decoder: ColumnDecoder;
  readonly #window = { buf: Buffer.allocUnsafeSlow(HEADER_WINDOW) };
  #body = Buffer.allocUnsafeSlow(0);
  #dictionary: DecodedArray | undefined = undefined;
  /** the next page to read (an index into the table), the values of the page being used, and the next of them */
  #page = 0;
  #values: DecodedArray = [];
  #next = 0;

  constructor(readonly fd: number, readonly meta: ColumnMetaData, schemaPath: SchemaTree[], readonly table: PageTable, compressors: Compressors, row: number) {
    this.#decoder = { pathInSchema: meta.path_in_schema, type: meta.type, element: schemaPath[schemaPath.length - 1]!.element, schemaPath, codec: meta.codec, parsers: DEFAULT_PARSERS, compressors, utf8: false };
    if (table.dictionary !== null) {
      // in a buffer of its own: its values (bytes) are views into it, used by every data page
      const { data } = this.#read(table.dictionary, true);
      this.#dictionary = data && convert(data, this.#decoder);
    }
    // the page holding `row`, and the row's place in it (past the pages read: the reason they end)
    const last = table.pages[table.pages.length - 1];
    if (table.broken !== null && (!last || last.firstRow + last.rows <= row)) throw new Error(table.broken);
    let p = 0;
    while (p < table.pages.length - 1 && table.pages[p]!.firstRow + table.pages[p]!.rows <= row) p++;
    this.#page = p;
    const skip = row - (table.pages[p]?.firstRow ?? 0);
    if (skip > 0) {
      this.#load();
      this.#next = skip;
    }
  }

  /** The value of the next row (null or undefined when it has none). */
  take(): unknown {
    while (this.#next >= this.#values.length) this.#load();
    // a struct's field comes wrapped in its struct's level(s) (hyparquet assembles them into objects later)
    let v: unknown = this.#values[this.#next++];
    while (Array.isArray(v)) v = v[0];
    return v;
  }

  #load(): void {
    const entry = this.table.pages[this.#page++];
    if (!entry) throw new Error(this.table.broken ?? 'read past the last page of the column chunk');
    const { data } = this.#read(entry.offset);
    if (!data || data.length !== entry.rows) throw new Error(`a page at byte ${entry.offset} gives ${data?.length ?? 0} values for ${entry.rows} rows`);
    this.#values = data;
    this.#next = 0;
  }

  /** The page at `offset`, decoded (read into a buffer of its own when `own`, else into the one reused). */
  #read(offset: number, own = false): { data?: DecodedArray } {
    const end = chunkRange(this.meta)[1];
    const { header, dataOffset } = readHeader(this.fd, offset, end, this.#window);
    const n = header.compressed_page_size;
    if (!own && this.#body.length < n) this.#body = Buffer.allocUnsafeSlow(Math.max(n, 2 * this.#body.length));
    const body = own ? Buffer.allocUnsafeSlow(n) : this.#body.subarray(0, n);
    readFullySync(this.fd, body, dataOffset);
    return readPage({ view: new DataView(body.buffer, body.byteOffset, n), offset: 0 }, header, this.#decoder, this.#dictionary, undefined, 0);
  }
}

/**
 * Where each row's value of a BYTE_ARRAY column chunk lies in the file, when the chunk stores its values in place:
 * uncompressed, PLAIN-encoded data pages (datasets' image column), one value a row. `values` are the chunk's values
 * as decoded (null or undefined for a row without one), by row of the row group; each page's values region (after its
 * definition levels) must hold exactly its rows' values, each a 4-byte length and the bytes, or the answer is null:
 * for a chunk stored otherwise (compressed, dictionary or other encodings) the values are only in memory.
 * `maxDefinition`: the leaf's definition level (0: required, no levels stored).
 */
export function inPlaceOffsets(fd: number, meta: ColumnMetaData, maxDefinition: number, values: readonly unknown[]): (number | null)[] | null {
  if (meta.type !== 'BYTE_ARRAY') return null;
  const table = pageTable(fd, meta, values.length);
  if (table.broken !== null || table.dictionary !== null) return null;
  const end = chunkRange(meta)[1];
  const window = { buf: Buffer.allocUnsafeSlow(HEADER_WINDOW) };
  const out: (number | null)[] = new Array(values.length).fill(null);
  const word = Buffer.allocUnsafe(4);
  for (const page of table.pages) {
    const { header, dataOffset } = readHeader(fd, page.offset, end, window);
    let at: number;
    if (header.type === 'DATA_PAGE') {
      const h = header.data_page_header!;
      if (meta.codec !== 'UNCOMPRESSED' || h.encoding !== 'PLAIN') return null;
      at = dataOffset;
      if (maxDefinition > 0) {
        // the levels, RLE / bit-packed hybrid, after their length
        if (h.definition_level_encoding !== 'RLE') return null;
        readFullySync(fd, word, at);
        at += 4 + word.readUInt32LE(0);
      }
    } else {
      const h = header.data_page_header_v2!;
      if ((h.is_compressed !== false && meta.codec !== 'UNCOMPRESSED') || h.encoding !== 'PLAIN') return null;
      at = dataOffset + h.definition_levels_byte_length + h.repetition_levels_byte_length;
    }
    const pageEnd = dataOffset + header.compressed_page_size;
    /** the page's first value: its row */
    let first = -1;
    for (let r = page.firstRow; r < page.firstRow + page.rows; r++) {
      const v = values[r];
      if (v === null || v === undefined) continue;
      if (!(v instanceof Uint8Array)) return null;
      if (first < 0) first = r;
      out[r] = at + 4;
      at += 4 + v.byteLength;
    }
    if (at !== pageEnd) return null;
    // the first value's length word where the page's levels end: the values are where they were found to be
    if (first >= 0) {
      readFullySync(fd, word, out[first]! - 4);
      if (word.readUInt32LE(0) !== (values[first] as Uint8Array).byteLength) return null;
    }
  }
  return out;
}
