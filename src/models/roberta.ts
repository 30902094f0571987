// RoBERTa (Liu et al. 2019) as Hugging Face's RobertaModel computes it: BERT's encoder and pooler (bert.ts) under
// BERT's key names, with embeddings whose positions count real tokens only, starting after the padding id
// (create_position_ids_from_input_ids), so that padding never shifts a token's position. roberta-base (with its
// `roberta.` prefix and `lm_head.*`, which is skipped) loads directly.
import { MmtrainError } from '../errors.js';
import { Dropout, Embedding, LayerNorm, Module } from '../nn/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { BertModel } from './bert.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import { type RobertaConfig, robertaConfig } from './roberta-config.js';

// ---- config (Hugging Face `config.json` field names: ./roberta-config.ts) ----

export { ROBERTA_PRESETS, robertaConfig, type RobertaConfig } from './roberta-config.js';

// ---- blocks ----

// Copied from BertEmbeddings (src/models/bert.ts) with Bert->Roberta: positions from the input ids, a padding row
// in the position table
export class RobertaEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(readonly config: RobertaConfig) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(config.vocab_size, config.hidden_size, config.pad_token_id));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(config.max_position_embeddings, config.hidden_size, config.pad_token_id));
    this.token_type_embeddings = this.registerModule('token_type_embeddings', new Embedding(config.type_vocab_size, config.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(inputIds: Tensor, tokenTypeIds: Tensor | null): Tensor {
    const T = inputIds.size(1);
    const pad = this.config.pad_token_id;
    if (T + pad + 1 > this.config.max_position_embeddings) {
      throw new MmtrainError(`RoBERTa input has ${T} tokens but max_position_embeddings is ${this.config.max_position_embeddings} (positions start after the padding id ${pad}): truncate the text to ${this.config.max_position_embeddings - pad - 1} tokens (maxLength)`);
    }
    // real tokens numbered pad + 1, pad + 2, ...; padding keeps the padding id
    const real = inputIds.ne(pad).to('int64'); // (B, T)
    const positions = real.cumsum(1).mul(real).add(pad); // (B, T)
    let h = this.word_embeddings.forward(inputIds).add(this.position_embeddings.forward(positions)); // (B, T, C)
    h = h.add(tokenTypeIds ? this.token_type_embeddings.forward(tokenTypeIds) : this.token_type_embeddings.weight.select(0, 0));
    return this.dropout.forward(this.LayerNorm.forward(h));
  }
}

// ---- model ----

/** BertModel with RoBERTa's embeddings; its config is RoBERTa's. */
export class RobertaModel extends BertModel {
  constructor(override readonly config: RobertaConfig, opts: { addPoolingLayer?: boolean } = {}) {
    super(config, { ...opts, embeddings: new RobertaEmbeddings(config) });
  }

  /** Loads config.json and model.safetensors (RobertaModel keys, or `roberta.`-prefixed with a head). */
  static override fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<RobertaModel> {
    return loadPretrained(dir, robertaConfig, (c) => new RobertaModel(c), { prefixes: ['roberta.'], strict: opts.strict });
  }
}
