// Token ids of streamed samples, kept between epochs. A manifest's texts are tokenized once, when its loader is made;
// a streamed set's texts arrive with their samples, epoch after epoch, and tokenizing them again each time costs
// ~60 us (a caption) to ~150 us (a paragraph) of CPU per sample. Entries are kept by data set index until their
// tokens reach a budget (then later texts are tokenized every time): a set of ~100k captions is tokenized once.
// The stream thread tokenizes and keeps one; the main thread keeps a copy of what it was sent (put), and the thread
// sends a sample's tokens only when it made them (not kept: `kept`): two arrays of numbers cloned per sample and
// epoch (~5 us of CPU a sample, and garbage on the main thread) are then sent once.
import type { EncodedText, TextTokenizer } from './tokenizer.js';

/** Tokens kept at most (ids and token types: ~16 bytes a token). */
export const ENCODING_CACHE_TOKENS = 4_000_000;

export class EncodingCache {
  readonly #entries = new Map<number, { text: string; encoding: EncodedText }>();
  #tokens = 0;

  constructor(readonly tokenizer: TextTokenizer, readonly maxLength: number, readonly budget = ENCODING_CACHE_TOKENS) {}

  /** The encoding of sample `index`'s text: kept from an earlier epoch when the text is the same, else made now. */
  encode(index: number, text: string): EncodedText {
    const kept = this.kept(index, text);
    if (kept) return kept;
    const encoding = this.tokenizer.encode(text, this.maxLength);
    this.put(index, text, encoding);
    return encoding;
  }

  /** The kept encoding of sample `index`'s text, if there is one. */
  kept(index: number, text: string): EncodedText | undefined {
    const hit = this.#entries.get(index);
    return hit && hit.text === text ? hit.encoding : undefined;
  }

  /**
   * Keeps an encoding (made here or by another thread), unless the sample's text is kept already or the budget is
   * spent; one kept for another text of the sample (its file changed) is replaced.
   */
  put(index: number, text: string, encoding: EncodedText): void {
    const old = this.#entries.get(index);
    if (old?.text === text) return;
    const tokens = this.#tokens - (old?.encoding.ids.length ?? 0);
    if (tokens + encoding.ids.length > this.budget) return;
    this.#entries.set(index, { text, encoding });
    this.#tokens = tokens + encoding.ids.length;
  }

  /** Samples whose encodings are kept. */
  get size(): number {
    return this.#entries.size;
  }
}
