// A streamed set's samples kept between epochs, when they are small. A WebDataset shard's sample is a byte range of
// its image (read by the batch thread), its text and its label: a few hundred bytes. Reading them again each epoch
// (the tar headers, the text members, a message to the main thread per chunk) cost the stream thread and V8's helper
// threads ~35-45 us of CPU a sample at 320 px on 2 cores: more than the batch thread saves over image files (no open
// and close per image), so that shards were 3-5% slower than the same images as files. Once every sample of this
// rank has been read once, and their tokens are kept too (encoding-cache.ts), later epochs take them from here: the
// same units, order and shuffle buffer (epochChunks), no stream thread. Up to a budget (KEPT_ITEMS_BYTES, about
// 100,000 captioned samples): a larger set is streamed every epoch, as before. Samples whose images are held in
// memory (Parquet) are not kept: their bytes are handed on to the batch thread, and would be the size of the set.
// Nor is a set that gave any problem (a sample without text, a shard or row group that could not be read): a read
// that failed once (a network file system's hiccup) would otherwise fail every epoch, never read again. Each epoch
// from kept samples first looks at their files: one replaced (a new inode: a copy renamed over it, a download
// again) or changed (size, modification time) since is read again, as every file is, and kept anew.
import { statSync } from 'node:fs';
import type { StreamItem, StreamSet } from './stream.js';
import { assignUnits } from './stream.js';
import type { StreamUnit } from './stream-types.js';

/** What kept samples may take, estimated (strings at 2 bytes a character, ~250 bytes of objects a sample). */
export const KEPT_ITEMS_BYTES = 64 << 20;

/** per sample, beside its strings: the item, sample and range objects and the array's slot */
const ITEM_OVERHEAD = 250;

export class KeptItems {
  /** by data set index (this rank's units only) */
  #items: Map<number, StreamItem> | null = new Map();
  #held = 0;
  #bytes = 0;
  /** this rank's samples, and its files */
  readonly #need: number;
  readonly #files: string[];
  /** each file's inode as its samples were read (their ranges'), and its size and mtime when first looked at */
  readonly #inodes = new Map<string, number>();
  readonly #stamps = new Map<string, string>();

  constructor(set: StreamSet, rank: number, worldSize: number, readonly budget = KEPT_ITEMS_BYTES) {
    const mine = assignUnits(set.units, worldSize)[rank]!.map((u) => set.units[u]!);
    this.#need = mine.reduce((a, u) => a + u.count, 0);
    this.#files = [...new Set(mine.map((u) => u.file))];
  }

  /**
   * Keeps a sample read from the set (the first time its index is seen), unless keeping is given up: it is a
   * problem (no sample), its image is in memory, the encoding cache refused its tokens (`tokensKept` false: it
   * would be tokenized on the main thread every epoch, where the stream thread does it beside the training step), or
   * the budget is spent. Giving up frees what was kept.
   */
  add(item: StreamItem, tokensKept: boolean): void {
    const items = this.#items;
    if (!items || items.has(item.index)) return;
    const s = item.sample;
    const bytes = s ? ITEM_OVERHEAD + 2 * (s.image.length + s.text.length + s.where.length + (s.range?.file.length ?? 0)) : 0;
    if (!s || s.bytes || !tokensKept || this.#bytes + bytes > this.budget) {
      this.#forget(false);
      return;
    }
    // the files as they are when their first sample is kept: a change after that is seen by the next epoch
    if (this.#held === 0) this.#stampFiles();
    if (s.range?.ino !== undefined && !this.#inodes.has(s.range.file)) this.#inodes.set(s.range.file, s.range.ino);
    // kept without its tokens: the main thread's encoding cache holds them
    items.set(item.index, { index: item.index, sample: s, problem: null });
    this.#held++;
    this.#bytes += bytes;
  }

  #stampFiles(): void {
    this.#stamps.clear();
    for (const f of this.#files) {
      try {
        const st = statSync(f);
        this.#stamps.set(f, `${st.size}:${st.mtimeMs}`);
      } catch {
        // (one that cannot be looked at now is dropped by unchanged())
      }
    }
  }

  /**
   * Whether this rank's samples may all be kept (not given up, and at least ITEM_OVERHEAD bytes each within the
   * budget): their images are then asked for as byte ranges where the files hold them in place.
   */
  get keeping(): boolean {
    return this.#items !== null && this.#need * ITEM_OVERHEAD <= this.budget;
  }

  /** Whether every sample of this rank is kept: epochs can then be read from here. */
  get complete(): boolean {
    return this.#items !== null && this.#held === this.#need;
  }

  /**
   * Whether the files are as their kept samples were read (complete sets only): each file's inode as its ranges
   * give it, and its size and mtime as when the first sample was kept. A file that cannot be looked at, or has
   * changed, drops what is kept: the files are read again, and their samples kept anew.
   */
  unchanged(): boolean {
    if (!this.complete) return false;
    for (const f of this.#files) {
      let st;
      try {
        st = statSync(f);
      } catch {
        this.#forget(true);
        return false;
      }
      const ino = this.#inodes.get(f);
      if ((ino !== undefined && st.ino !== ino) || this.#stamps.get(f) !== `${st.size}:${st.mtimeMs}`) {
        this.#forget(true);
        return false;
      }
    }
    return true;
  }

  /** Forgets what is kept: to keep it anew from the next reading (`anew`), or for good (keeping is given up). */
  #forget(anew: boolean): void {
    this.#items = anew ? new Map() : null;
    this.#held = 0;
    this.#bytes = 0;
    this.#inodes.clear();
    this.#stamps.clear();
  }

  /** A unit's samples, in order (as unitItems gives them), when all are kept. */
  unit = (u: StreamUnit): StreamItem[] | null => {
    const items = this.#items;
    if (!items) return null;
    const out: StreamItem[] = [];
    for (let i = u.offset; i < u.offset + u.count; i++) {
      const x = items.get(i);
      if (!x) return null;
      out.push(x);
    }
    return out;
  };
}
