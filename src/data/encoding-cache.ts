// Token ids of streamed samples, kept between epochs. A manifest's texts are tokenized once, when its loader is made;
// a streamed set's texts arrive with their samples, epoch after epoch, and tokenizing them again each time costs
// ~60 us (a caption) to ~150 us (a paragraph) of CPU per sample. Entries are kept by data set index until their
// tokens reach a budget (then later texts are tokenized every time): a set of ~100k captions is tokenized once.
import type { EncodedText, TextTokenizer } from './tokenizer.js';

/** Tokens kept at most (ids and token types: ~16 bytes a token). */
export const ENCODING_CACHE_TOKENS = 4_000_000;

export class EncodingCache {
  readonly #entries = new Map<number, { text: string; encoding: EncodedText }>();
  #tokens = 0;

  constructor(readonly tokenizer: TextTokenizer, readonly maxLength: number, readonly budget = ENCODING_CACHE_TOKENS) {}

  /** The encoding of sample `index`'s text: kept from an earlier epoch when the text is the same, else made now. */
  encode(index: number, text: string): EncodedText {
    const hit = this.#entries.get(index);
    if (hit && hit.text === text) return hit.encoding;
    const encoding = this.tokenizer.encode(text, this.maxLength);
    if (!hit && this.#tokens + encoding.ids.length <= this.budget) {
      this.#entries.set(index, { text, encoding });
      this.#tokens += encoding.ids.length;
    }
    return encoding;
  }

  /** Samples whose encodings are kept. */
  get size(): number {
    return this.#entries.size;
  }
}
