// WebDataset shards: tar files whose members are grouped into samples by key ("dir/000123.jpg", "dir/000123.txt",
// "dir/000123.json": the key is the path up to the first dot of the file name, as webdataset's own reader splits
// it). Read with tar-stream, streamed from the file: nothing is extracted to disk and only the sample being
// assembled is in memory. A sample's image is its first member with an image extension (jpg, jpeg, png, webp; or
// data.columns.image, extensions separated by ";"); its text a member named by data.columns.text (default txt) or
// that key of its .json member (default: "text", then "caption"); its label a member named by data.columns.label
// (default cls) or that key of its .json (default "label").
import { createReadStream } from 'node:fs';
import tar from 'tar-stream';
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
 */
export async function* readShard(file: string, cols: ColumnNames, opts: { images: boolean }): AsyncGenerator<RawRecord> {
  const f = fieldsOf(cols);
  const smallExts = new Set([...f.text, ...f.label, 'json']);
  const extract = tar.extract();
  // chunks of 1 MiB: most members arrive whole, in a few reads and allocations
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  input.on('error', (e) => extract.destroy(e));
  input.pipe(extract);
  let group: Group | null = null;
  let last = '(none)';
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const parts = h.type === 'file' ? splitMemberName(h.name) : null;
      if (!parts) {
        entry.resume();
        continue;
      }
      last = h.name;
      const [key, ext] = parts;
      if (group && group.key !== key) {
        yield toRecord(file, group, f);
        group = null;
      }
      group ??= { key, image: null, sawImage: false, small: new Map() };
      const isImage = f.images.includes(ext) && !group.image && !group.sawImage;
      if ((isImage && opts.images) || smallExts.has(ext)) {
        // copied once, into a buffer of its own (not Node's shared pool): the image is then handed to the decoding
        // thread by transfer, without another copy
        const body = Buffer.allocUnsafeSlow(h.size ?? 0);
        let at = 0;
        for await (const c of entry) {
          const chunk = c as Buffer;
          if (at + chunk.length > body.length) throw new Error(`member ${h.name} is longer than its header's ${body.length} bytes`);
          chunk.copy(body, at);
          at += chunk.length;
        }
        if (at !== body.length) throw new Error(`member ${h.name} ends after ${at} of its ${body.length} bytes`);
        if (isImage) group.image = { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), ext };
        else group.small.set(ext, body.toString('utf8'));
      } else {
        if (isImage) group.sawImage = true;
        entry.resume();
      }
    }
  } catch (e) {
    input.destroy();
    const msg = (e as Error).message;
    yield { where: `${file}: after member ${last}`, image: null, text: null, label: null, problem: `the shard is truncated or corrupt (${msg})` };
    return;
  } finally {
    input.destroy();
  }
  if (group) yield toRecord(file, group, f);
}
