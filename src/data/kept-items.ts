// A streamed set's samples kept between epochs, when they are small. A WebDataset shard's sample is a byte range of
// its image (read by the batch thread), its text and its label: a few hundred bytes. Reading them again each epoch
// (the tar headers, the text members, a message to the main thread per chunk) cost the stream thread and V8's helper
// threads ~35-45 us of CPU a sample at 320 px on 2 cores: more than the batch thread saves over image files (no open
// and close per image), so that shards were 3-5% slower than the same images as files. Once every sample of this
// rank has been read once, and their tokens are kept too (encoding-cache.ts), later epochs take them from here: the
// same units, order and shuffle buffer (epochChunks), no stream thread. Up to a budget (KEPT_ITEMS_BYTES, about
// 150,000 captioned samples): a larger set is streamed every epoch, as before. Samples whose images are held in
// memory (Parquet) are not kept: their bytes are handed on to the batch thread, and would be the size of the set.
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
  /** this rank's samples */
  readonly #need: number;

  constructor(readonly set: StreamSet, rank: number, worldSize: number, readonly budget = KEPT_ITEMS_BYTES) {
    this.#need = assignUnits(set.units, worldSize)[rank]!.reduce((a, u) => a + set.units[u]!.count, 0);
  }

  /**
   * Keeps a sample read from the set (the first time its index is seen), unless keeping is given up: its image is
   * in memory, the encoding cache refused its tokens (`tokens`; it would be tokenized on the main thread every epoch,
   * where the stream thread does it beside the training step), or the budget is spent. Giving up frees what was
   * kept. A sample whose tokens are not made yet ("absent") is kept when it comes again.
   */
  add(item: StreamItem, tokens: 'kept' | 'refused' | 'absent'): void {
    const items = this.#items;
    if (!items || items.has(item.index) || tokens === 'absent') return;
    const s = item.sample;
    const bytes = ITEM_OVERHEAD + 2 * (s ? s.image.length + s.text.length + s.where.length + (s.range?.file.length ?? 0) : (item.problem?.where.length ?? 0) + (item.problem?.message.length ?? 0));
    if (s?.bytes || tokens === 'refused' || this.#bytes + bytes > this.budget) {
      this.#items = null;
      return;
    }
    // kept without its tokens: the main thread's encoding cache holds them
    items.set(item.index, { index: item.index, sample: s, problem: item.problem });
    this.#held++;
    this.#bytes += bytes;
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

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#items ? this.#bytes : 0;
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
