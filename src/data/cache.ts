// On-disk cache of preprocessed images (uint8, size x size x 3), so later epochs do no decoding. One data file and
// one index per preprocessing setting; the data file is read in one go when opened. An entry is used only while
// its source file has the same size and modification time (checked once per run); new settings get a new file.
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DecodedImage, ImageConfig } from './image.js';
import { makeFolder, writeFileAtomic } from '../files.js';

interface Entry {
  offset: number;
  mtimeMs: number;
  size: number;
}

const FORMAT = 1;

export class ImageCache {
  readonly key: string;
  readonly dataFile: string;
  readonly indexFile: string;
  #entries = new Map<string, Entry>();
  #data: Buffer;
  #pending = new Map<string, Buffer>();
  #end: number;
  /** files whose size and mtime this object has checked against their entry */
  #verified = new Set<string>();
  hits = 0;
  misses = 0;

  constructor(readonly dir: string, readonly image: ImageConfig) {
    makeFolder(dir);
    // Only what changes the decoded pixels enters the key (augmentation never uses the cache).
    this.key = createHash('sha256').update(JSON.stringify({ FORMAT, size: image.size, resize: image.resize, resizeSize: image.resizeSize ?? image.size, kernel: `pil-${image.resample}`, maxPixels: image.maxPixels })).digest('hex').slice(0, 16);
    this.dataFile = join(dir, `images-${this.key}.u8`);
    this.indexFile = join(dir, `images-${this.key}.json`);
    this.#data = existsSync(this.dataFile) ? readFileSync(this.dataFile) : Buffer.alloc(0);
    this.#end = this.#data.length;
    if (existsSync(this.indexFile)) {
      try {
        const idx = JSON.parse(readFileSync(this.indexFile, 'utf8')) as Record<string, Entry>;
        const bytes = image.size * image.size * 3;
        for (const [k, e] of Object.entries(idx)) if (e.offset + bytes <= this.#data.length) this.#entries.set(k, e);
      } catch {
        this.#entries.clear(); // a damaged index only costs a re-decode
      }
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached pixels of `file`, or null when absent or stale. */
  get(file: string): DecodedImage | null {
    const e = this.#entries.get(file);
    if (!e) {
      this.misses++;
      return null;
    }
    if (!this.#verified.has(file)) {
      // A source file is checked once per cache object (one run): a stat on every read cost ~1 ms of the JS
      // thread per 32-image step. A file changed while a run goes on is decoded again by the next run.
      let st;
      try {
        st = statSync(file);
      } catch {
        this.misses++;
        return null;
      }
      if (st.size !== e.size || st.mtimeMs !== e.mtimeMs) {
        this.#entries.delete(file);
        this.misses++;
        return null;
      }
      this.#verified.add(file);
    }
    const S = this.image.size;
    const n = S * S * 3;
    const pending = this.#pending.get(file);
    const data = pending ?? this.#data.subarray(e.offset, e.offset + n);
    this.hits++;
    return { data: new Uint8Array(data.buffer, data.byteOffset, n), width: S, height: S };
  }

  put(file: string, img: DecodedImage): void {
    let st;
    try {
      st = statSync(file);
    } catch {
      return;
    }
    const buf = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length);
    appendFileSync(this.dataFile, buf);
    this.#entries.set(file, { offset: this.#end, mtimeMs: st.mtimeMs, size: st.size });
    this.#verified.add(file);
    this.#pending.set(file, Buffer.from(buf));
    this.#end += buf.length;
  }

  /** Writes the index (atomically). Call at the end of an epoch. */
  flush(): void {
    writeFileAtomic(this.indexFile, JSON.stringify(Object.fromEntries(this.#entries)));
  }
}
