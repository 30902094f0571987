// Text tokenization through @huggingface/tokenizers, from a tokenizer.json or from a BERT vocab.txt (for which the
// equivalent WordPiece tokenizer is built: BertNormalizer with lowercasing and accent stripping per do_lower_case,
// BertPreTokenizer, WordPiece with "##" continuations, [CLS] ... [SEP] post-processing).
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { MmtrainError, checkInt } from '../errors.js';

export interface EncodedText {
  ids: number[];
  tokenTypeIds: number[];
}

/** What a tokenizer is built from, to build the same one on another thread (structured-clonable). */
export interface TokenizerDescription {
  json: Record<string, any>;
  source: string;
  vocabSize: number;
}

export class TextTokenizer {
  readonly padId: number;
  readonly vocabSize: number;

  /** @param json the tokenizer.json it was built from (for a vocab.txt, the equivalent one) */
  private constructor(readonly json: Record<string, any>, readonly source: string, vocabSize: number, private readonly tok = new Tokenizer(json, {})) {
    // the padding id: tokenizer.json's padding settings, else BERT's [PAD] or RoBERTa's <pad>, else 0
    const pad = json.padding?.pad_id ?? tok.token_to_id('[PAD]') ?? tok.token_to_id('<pad>');
    this.padId = typeof pad === 'number' ? pad : 0;
    this.vocabSize = vocabSize;
  }

  /** Loads a Hugging Face tokenizer.json. */
  static fromFile(path: string): TextTokenizer {
    let json: Record<string, any>;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new MmtrainError(`${path}: cannot load tokenizer.json (${(e as Error).message})`);
    }
    if (!json || typeof json !== 'object' || !json.model) throw new MmtrainError(`${path}: not a tokenizer.json (no "model" field)`);
    try {
      const vocab = json.model.vocab;
      const size = Array.isArray(vocab) ? vocab.length : Object.keys(vocab ?? {}).length;
      return new TextTokenizer(json, path, size);
    } catch (e) {
      throw new MmtrainError(`${path}: unsupported tokenizer.json (${(e as Error).message})`);
    }
  }

  /** The same tokenizer again, from describe() (on another thread). */
  static fromDescription(d: TokenizerDescription): TextTokenizer {
    return new TextTokenizer(d.json, d.source, d.vocabSize);
  }

  describe(): TokenizerDescription {
    return { json: this.json, source: this.source, vocabSize: this.vocabSize };
  }

  /** Builds the WordPiece tokenizer equivalent to a BERT vocab.txt (one token per line, id = line index). */
  static fromVocab(path: string, opts: { doLowerCase?: boolean } = {}): TextTokenizer {
    let lines: string[];
    try {
      lines = readFileSync(path, 'utf8').split('\n');
    } catch (e) {
      throw new MmtrainError(`${path}: cannot read vocab.txt (${(e as Error).message})`);
    }
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const vocab: Record<string, number> = {};
    lines.forEach((t, i) => {
      const tok = t.replace(/\r$/, '');
      if (!(tok in vocab)) vocab[tok] = i;
    });
    for (const special of ['[UNK]', '[CLS]', '[SEP]']) {
      if (!(special in vocab)) throw new MmtrainError(`${path}: vocab.txt has no ${special} token; a BERT vocabulary is expected`);
    }
    const lower = opts.doLowerCase ?? true;
    const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((t) => t in vocab);
    const json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: specials.map((t) => ({ id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: lower },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } },
        ],
        special_tokens: {
          '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
          '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
        },
      },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    };
    return new TextTokenizer(json, path, lines.length);
  }

  /**
   * Token ids with [CLS]/[SEP], truncated to maxLength (the last kept token is [SEP], as Hugging Face's
   * truncation does), and token types (0 for a single text; 0/1 for a pair).
   */
  encode(text: string, maxLength = 128, pair?: string): EncodedText {
    checkInt('maxLength', maxLength, 2);
    const e = this.tok.encode(text, { text_pair: pair ?? null, return_token_type_ids: true });
    let ids = e.ids;
    let types = e.token_type_ids;
    if (ids.length > maxLength) {
      if (pair === undefined) {
        // keep [CLS] + first maxLength-2 tokens + [SEP]
        ids = [...ids.slice(0, maxLength - 1), ids[ids.length - 1]!];
        types = types.slice(0, maxLength);
      } else {
        // longest-first truncation of the pair
        const a = this.tok.encode(text, { add_special_tokens: false }).ids;
        const b = this.tok.encode(pair, { add_special_tokens: false }).ids;
        while (a.length + b.length > maxLength - 3) (a.length >= b.length ? a : b).pop();
        const cls = ids[0]!;
        const sep = ids[ids.length - 1]!;
        ids = [cls, ...a, sep, ...b, sep];
        types = [...new Array(a.length + 2).fill(0), ...new Array(b.length + 1).fill(1)];
      }
    }
    return { ids, tokenTypeIds: types };
  }

  tokenize(text: string): string[] {
    return this.tok.tokenize(text);
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: true });
  }

  /** The id of a token, or null when the vocabulary lacks it. */
  tokenId(token: string): number | null {
    const id = this.tok.token_to_id(token);
    return typeof id === 'number' ? id : null;
  }

  /** The ids of the special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], ...): what masked language modelling never masks. */
  specialIds(): Set<number> {
    const ids = new Set<number>();
    for (const t of (this.json.added_tokens ?? []) as { id: number; special?: boolean }[]) if (t.special) ids.add(t.id);
    for (const name of ['[CLS]', '[SEP]', '[PAD]', '[UNK]', '[MASK]', '<s>', '</s>', '<pad>', '<unk>', '<mask>']) {
      const id = this.tokenId(name);
      if (id !== null) ids.add(id);
    }
    return ids;
  }

  /**
   * Whether each vocabulary id continues the previous token's word (WordPiece's "##" pieces); all false for a
   * vocabulary without continuation prefix. For whole-word masking.
   */
  continuationTable(): Uint8Array {
    const out = new Uint8Array(this.vocabSize);
    const prefix = this.json.model?.continuing_subword_prefix as string | undefined;
    const vocab = this.json.model?.vocab;
    if (!prefix || !vocab || Array.isArray(vocab)) return out;
    for (const [tok, id] of Object.entries(vocab as Record<string, number>)) if (tok.startsWith(prefix) && tok.length > prefix.length && id < out.length) out[id] = 1;
    return out;
  }
}
