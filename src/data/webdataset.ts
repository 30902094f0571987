// WebDataset shards: tar files whose members are grouped into samples by key ("dir/000123.jpg", "dir/000123.txt",
// "dir/000123.json": the key is the path up to the first dot of the file name, as webdataset's own reader splits
// it). Read member by member from the file (tar.ts): nothing is extracted to disk, the small members are read, and a
// sample's image is not read here at all: it is handed on as its byte range in the shard, which the batch thread
// reads when it decodes it (as it reads an image file). A sample's image is its first member with an image extension
// (jpg, jpeg, png, webp; or data.columns.image, extensions separated by ";"); its text a member named by
// data.columns.text (default txt) or that key of its .json member (default: "text", then "caption"); its label a
// member named by data.columns.label (default cls) or that key of its .json (default "label").
import { TarError, TarReader } from './tar.js';
import type { ColumnNames, RawRecord } from './stream-types.js';

const IMAGE_EXTS = ['jpg', 'jpeg', 'png', 'webp'];

/** key and extension of a member name: "a/b/000123.seg.png" -> ["a/b/000123", "seg.png"]; null without a dot */
export function splitMemberName(name: string): [string, string] | null {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === name.length - 1) return null;
  return [name.slice(0, dot), name.slice(dot + 1).toLowerCase()];
}

interface Fields {
  images: string[];
  text: string[];
  textJson: string[];
  label: string[];
  labelJson: string[];
}

function fieldsOf(cols: ColumnNames): Fields {
  return {
    images: cols.image ? cols.image.split(';').map((s) => s.trim().toLowerCase()).filter(Boolean) : IMAGE_EXTS,
    text: [cols.text ?? 'txt'],
    textJson: cols.text ? [cols.text] : ['text', 'caption'],
    label: [cols.label ?? 'cls'],
    labelJson: [cols.label ?? 'label'],
  };
}

/** One sample's members as read: where its image is, its small members as text. */
interface Group {
  key: string;
  /** the file offset of its first member's first header */
  start: number;
  image: { offset: number; length: number; name: string } | null;
  small: Map<string, string>;
  /** the extensions of all its members, read or not */
  exts: string[];
  /** its first member, when the key had a group before, other samples' members between (the shard is not grouped) */
  apart: string | null;
}

function toRecord(file: string, ino: number, g: Group, f: Fields): RawRecord {
  const where = `${file}: sample ${g.key}`;
  if (g.apart !== null) {
    return {
      where, image: null, text: null, label: null, apart: true,
      problem: `the sample's members are not next to each other: ${g.apart} comes after other samples' members. A shard keeps each sample's files together (as webdataset reads them); write it with its files sorted by name (tar --sort=name -cf shard.tar ...) or with mmtrain convert`,
    };
  }
  let json: Record<string, unknown> | null = null;
  const rawJson = g.small.get('json');
  if (rawJson !== undefined) {
    try {
      const j = JSON.parse(rawJson) as unknown;
      if (j && typeof j === 'object' && !Array.isArray(j)) json = j as Record<string, unknown>;
    } catch {
      return { where, image: null, text: null, label: null, problem: `${g.key}.json is not valid JSON` };
    }
  }
  const pick = (members: string[], keys: string[]) => {
    for (const m of members) if (g.small.has(m)) return g.small.get(m)!.trim();
    for (const k of keys) if (json && k in json) return json[k];
    return undefined;
  };
  let text = pick(f.text, f.textJson);
  if (text === undefined) text = null;
  const label = pick(f.label, f.labelJson);
  const image = g.image ? { range: { file, offset: g.image.offset, length: g.image.length, ino }, name: `${file}: ${g.image.name}` } : null;
  if (!g.image) {
    // "a.0001.jpg" is sample "a" with member "0001.jpg", as webdataset splits it: say so when a name has such dots
    const dots = g.exts.some((e) => e.includes('.')) ? '; a sample\'s key is its file name up to the first dot' : '';
    return { where, image: null, text, label, problem: `no image member (expected ${g.key}.${f.images.join(' / .')}; found ${g.exts.map((e) => `${g.key}.${e}`).join(', ')}${dots})` };
  }
  if (text === null) return { where, image: null, text, label, problem: `no text (expected a ${g.key}.${f.text[0]} member or a "${f.textJson.join('" / "')}" key in ${g.key}.json)` };
  return { where, image, text, label };
}

/**
 * The samples of a shard, in order, their images as byte ranges of the shard; from the sample whose first header is
 * at byte `from` (a part of the shard: see ShardCuts), to the end. A shard that ends early or holds a corrupt header
 * ends with one record carrying the problem, naming the last member read. Synchronous reads, one window of the file
 * at a time: counting a shard reads its headers and small members only. `onSample` is told where each sample's first
 * header is, before its record.
 */
export function* readShard(file: string, cols: ColumnNames, from = 0, onSample?: (start: number) => void): Generator<RawRecord> {
  const f = fieldsOf(cols);
  const smallExts = new Set([...f.text, ...f.label, 'json']);
  let tar: TarReader;
  try {
    tar = new TarReader(file);
  } catch (e) {
    yield { where: file, image: null, text: null, label: null, problem: `cannot read the shard (${(e as Error).message})` };
    return;
  }
  let group: Group | null = null;
  let last = '(none)';
  const ended = new Set<string>(); // keys whose group has ended
  try {
    for (const m of tar.members(from)) {
      const parts = m.file ? splitMemberName(m.name) : null;
      if (!parts) continue;
      last = m.name;
      const [key, ext] = parts;
      if (group && group.key !== key) {
        ended.add(group.key);
        onSample?.(group.start);
        yield toRecord(file, tar.ino, group, f);
        group = null;
      }
      const g: Group = (group ??= { key, start: m.start, image: null, small: new Map(), exts: [], apart: ended.has(key) ? m.name : null });
      g.exts.push(ext);
      if (f.images.includes(ext)) g.image ??= { offset: m.offset, length: m.size, name: m.name };
      else if (smallExts.has(ext)) g.small.set(ext, tar.bytes(m.offset, m.size).toString('utf8'));
    }
  } catch (e) {
    if (!(e instanceof TarError) && !(e as NodeJS.ErrnoException).code) throw e;
    if (e instanceof TarError && e.notTar) yield { where: file, image: null, text: null, label: null, problem: e.message };
    else if (from && last === '(none)' && e instanceof TarError) {
      // a part's first header was a header when the shard was counted
      yield { where: `${file}: at byte ${from}`, image: null, text: null, label: null, problem: `the shard has changed since the data set was opened (${(e as Error).message}); open the data set again` };
    } else yield { where: `${file}: after member ${last}`, image: null, text: null, label: null, problem: `the shard is truncated or corrupt (${(e as Error).message})` };
    return;
  } finally {
    tar.close();
  }
  if (group) {
    onSample?.(group.start);
    yield toRecord(file, tar.ino, group, f);
  }
}

/** Which shards are read in parts, and how large the parts are. */
export interface ShardLimits {
  /** shards larger than this (bytes) are cut into parts */
  splitBytes: number;
  /** a part runs to the first sample starting at least this many bytes after its own first sample */
  partBytes: number;
}

export const SHARD_LIMITS: ShardLimits = { splitBytes: 64 << 20, partBytes: 32 << 20 };

/** A part of a shard: the byte offset of its first sample's first header, the shard's index of that sample, its samples. */
export interface ShardPart {
  at: number;
  first: number;
  count: number;
}

/**
 * Where a shard is cut into parts, from its samples' starts in order (sample()); one part when the shard is not larger
 * than `splitBytes`. Parts are units of the stream, as a Parquet file's row groups are: shuffled and dealt to ranks and
 * reading slots, so that a few large shards still share out evenly (a shard a unit, 3 shards over 2 ranks are 2 and 1).
 */
export class ShardCuts {
  readonly parts: ShardPart[] = [{ at: 0, first: 0, count: 0 }];
  readonly #split: boolean;

  constructor(bytes: number, readonly limits: ShardLimits = SHARD_LIMITS) {
    this.#split = bytes > limits.splitBytes;
  }

  /** The next sample, its first header at byte `start`. */
  sample(start: number): void {
    let p = this.parts[this.parts.length - 1]!;
    if (this.#split && p.count && start - p.at >= this.limits.partBytes) this.parts.push((p = { at: start, first: p.first + p.count, count: 0 }));
    p.count++;
  }
}
