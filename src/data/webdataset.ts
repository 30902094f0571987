// WebDataset shards: tar files whose members are grouped into samples by key ("dir/000123.jpg", "dir/000123.txt",
// "dir/000123.json": the key is the path up to the first dot of the file name, as webdataset's own reader splits
// it). Read with tar-stream, streamed from the file: nothing is extracted to disk and only the sample being
// assembled is in memory. A sample's image is its first member with an image extension (jpg, jpeg, png, webp; or
// data.columns.image, extensions separated by ";"); its text a member named by data.columns.text (default txt) or
// that key of its .json member (default: "text", then "caption"); its label a member named by data.columns.label
// (default cls) or that key of its .json (default "label").
import tar from 'tar-stream';
import { fileStream } from './file-reads.js';
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

/** One sample's members as read: image bytes (when read), small members as text. */
interface Group {
  key: string;
  image: { bytes: Uint8Array; ext: string } | null;
  /** an image member seen but not read (count pass) */
  sawImage: boolean;
  small: Map<string, string>;
}

function toRecord(file: string, g: Group, f: Fields): RawRecord {
  const where = `${file}: sample ${g.key}`;
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
  const image = g.image ? { bytes: g.image.bytes, name: `${file}: ${g.key}.${g.image.ext}` } : null;
  if (!g.image && !g.sawImage) return { where, image: null, text, label, problem: `no image member (expected ${g.key}.${f.images.join(' / .')})` };
  if (text === null) return { where, image: null, text, label, problem: `no text (expected a ${g.key}.${f.text[0]} member or a "${f.textJson.join('" / "')}" key in ${g.key}.json)` };
  return { where, image, text, label };
}

/**
 * The samples of a shard, in order. `images: false` skips image bytes (counting, label discovery). A shard that
 * ends early or holds a corrupt header ends with one record carrying the problem, naming the last member read.
 * tar-stream's entries are taken by its event interface (its async iterators cost a promise per chunk and per
 * entry, a third of the reading); at most QUEUE samples are read ahead of the consumer.
 */
export async function* readShard(file: string, cols: ColumnNames, opts: { images: boolean }): AsyncGenerator<RawRecord> {
  const f = fieldsOf(cols);
  const smallExts = new Set([...f.text, ...f.label, 'json']);
  const extract = tar.extract();
  // chunks of 1 MiB: most members arrive whole, in a few reads and allocations
  const input = fileStream(file, 1 << 20);
  input.on('error', (e) => extract.destroy(e));
  const queue: RawRecord[] = [];
  const state: { group: Group | null; ended: boolean; failure: Error | null } = { group: null, ended: false, failure: null };
  let last = '(none)';
  let wake: (() => void) | null = null;
  /** tar-stream's callback for the next entry, held while the queue is full */
  const pause: { held: (() => void) | null } = { held: null };
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const fail = (e: Error) => {
    state.failure ??= e;
    signal();
  };
  const proceed = (next: () => void) => {
    if (queue.length >= QUEUE) pause.held = next;
    else next();
  };
  extract.on('entry', (h, entry, next) => {
    // a shard cut inside this member fails the entry too
    entry.on('error', fail);
    const parts = h.type === 'file' ? splitMemberName(h.name) : null;
    if (!parts) {
      entry.on('end', () => proceed(next));
      entry.resume();
      return;
    }
    last = h.name;
    const [key, ext] = parts;
    if (state.group && state.group.key !== key) {
      queue.push(toRecord(file, state.group, f));
      state.group = null;
      signal();
    }
    const g: Group = (state.group ??= { key, image: null, sawImage: false, small: new Map() });
    const isImage = f.images.includes(ext) && !g.image && !g.sawImage;
    if ((isImage && opts.images) || smallExts.has(ext)) {
      // copied once, into a buffer of its own (not Node's shared pool): the image is then handed to the decoding
      // thread by transfer, without another copy
      const body = Buffer.allocUnsafeSlow(h.size ?? 0);
      let at = 0;
      entry.on('data', (d: unknown) => {
        const c = d as Buffer;
        if (at + c.length > body.length) {
          extract.destroy(new Error(`member ${h.name} is longer than its header's ${body.length} bytes`));
          return;
        }
        c.copy(body, at);
        at += c.length;
      });
      entry.on('end', () => {
        if (at !== body.length) {
          extract.destroy(new Error(`member ${h.name} ends after ${at} of its ${body.length} bytes`));
          return;
        }
        if (isImage) g.image = { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), ext };
        else g.small.set(ext, body.toString('utf8'));
        proceed(next);
      });
    } else {
      if (isImage) g.sawImage = true;
      entry.on('end', () => proceed(next));
      entry.resume();
    }
  });
  extract.on('finish', () => {
    state.ended = true;
    signal();
  });
  extract.on('error', fail);
  input.pipe(extract);
  try {
    for (;;) {
      if (queue.length) {
        yield queue.shift()!;
        if (pause.held && queue.length < QUEUE) {
          const n = pause.held;
          pause.held = null;
          n();
        }
        continue;
      }
      if (state.failure) {
        const msg = state.failure.message;
        yield { where: `${file}: after member ${last}`, image: null, text: null, label: null, problem: `the shard is truncated or corrupt (${msg})` };
        return;
      }
      if (state.ended) break;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    input.destroy();
    extract.destroy();
  }
  if (state.group) yield toRecord(file, state.group, f);
}

/** Samples read ahead of the consumer, at most. */
const QUEUE = 16;
