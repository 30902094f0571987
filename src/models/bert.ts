// BERT (Devlin et al. 2019) as Hugging Face's BertModel computes it: word + position + token-type embeddings with
// LayerNorm, post-norm encoder layers (self-attention, residual, LayerNorm; GELU MLP, residual, LayerNorm), an
// additive attention-mask bias, and the tanh pooler over [CLS]. Module paths equal checkpoint keys
// (`encoder.layer.0.attention.self.query.weight`), so loading a bert-base-uncased model.safetensors is a direct
// mapping.
import { MmtrainError, invalid } from '../errors.js';
import { LayerNorm, Linear, ModuleList, Module, Dropout, Embedding, additivePaddingMask } from '../nn/index.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../tensor/functional.js';
import { Tensor, arange } from '../tensor/tensor.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import { type BertConfig, bertConfig } from './bert-config.js';
import type { RobertaConfig } from './roberta-config.js';

/** A config BertModel runs: BERT's, or RoBERTa's (the same fields). */
export type BertLikeConfig = BertConfig | RobertaConfig;

// ---- config (Hugging Face `config.json` field names: ./bert-config.ts) ----

export { BERT_PRESETS, bertConfig, type BertConfig } from './bert-config.js';

function activation(x: Tensor, act: BertConfig['hidden_act']): Tensor {
  if (act === 'relu') return x.relu();
  return x.gelu(act === 'gelu' ? 'none' : 'tanh'); // "gelu" is the exact erf form in BERT
}

// ---- blocks ----

export class BertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(readonly config: BertLikeConfig) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(config.vocab_size, config.hidden_size, config.pad_token_id));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(config.max_position_embeddings, config.hidden_size));
    this.token_type_embeddings = this.registerModule('token_type_embeddings', new Embedding(config.type_vocab_size, config.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(inputIds: Tensor, tokenTypeIds: Tensor | null): Tensor {
    const T = inputIds.size(1);
    if (T > this.config.max_position_embeddings) {
      throw new MmtrainError(`BERT input has ${T} tokens but max_position_embeddings is ${this.config.max_position_embeddings}: truncate the text (maxLength)`);
    }
    const positions = arange(T).unsqueeze(0); // (1, T)
    let h = this.word_embeddings.forward(inputIds).add(this.position_embeddings.forward(positions)); // (B, T, C)
    h = h.add(tokenTypeIds ? this.token_type_embeddings.forward(tokenTypeIds) : this.token_type_embeddings.weight.select(0, 0));
    return this.dropout.forward(this.LayerNorm.forward(h));
  }
}

/** Multi-head self-attention. Hidden states are sequence-first (T, B, C) inside the encoder. */
export class BertSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly nh: number;
  readonly hs: number;
  constructor(readonly config: BertLikeConfig) {
    super();
    const C = config.hidden_size;
    this.nh = config.num_attention_heads;
    this.hs = C / this.nh;
    this.query = this.registerModule('query', new Linear(C, C));
    this.key = this.registerModule('key', new Linear(C, C));
    this.value = this.registerModule('value', new Linear(C, C));
  }
  /** x: (T, B, C); mask: additive (B, 1, 1, T) or null. Returns the context (T, B, C). */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [T, B, C] = x.shape as [number, number, number];
    const { nh, hs } = this;
    const heads = (t: Tensor) => t.view(T, B * nh, hs).transpose(0, 1); // (T, B, C) -> (B*nh, T, hs)
    const q = heads(this.query.forward(x));
    const k = heads(this.key.forward(x));
    const v = heads(this.value.forward(x));
    let scores = q.bmm(k.transpose(1, 2)).mul(1 / Math.sqrt(hs)); // (B*nh, T, T)
    if (mask) scores = scores.view(B, nh, T, T).add(mask).view(B * nh, T, T);
    let probs = F.softmax(scores, -1);
    if (this.training && this.config.attention_probs_dropout_prob > 0) probs = F.dropout(probs, this.config.attention_probs_dropout_prob, true);
    return probs.bmm(v).transpose(0, 1).contiguous().view(T, B, C); // (B*nh, T, hs) -> (T, B, C)
  }
}

/** dense + dropout, then LayerNorm(x + residual): BERT's post-norm residual block. */
export class BertSelfOutput extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(config: BertLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(h)).add(residual));
  }
}

export class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: BertSelfOutput;
  constructor(config: BertLikeConfig) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(config));
    this.output = this.registerModule('output', new BertSelfOutput(config));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, mask), x);
  }
}

export class BertIntermediate extends Module {
  readonly dense: Linear;
  constructor(readonly config: BertLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.intermediate_size));
  }
  forward(x: Tensor): Tensor {
    return activation(this.dense.forward(x), this.config.hidden_act);
  }
}

export class BertOutput extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(config: BertLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.intermediate_size, config.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(h)).add(residual));
  }
}

export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: BertOutput;
  constructor(config: BertLikeConfig) {
    super();
    this.attention = this.registerModule('attention', new BertAttention(config));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(config));
    this.output = this.registerModule('output', new BertOutput(config));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.attention.forward(x, mask);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

export class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  constructor(config: BertLikeConfig) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new BertLayer(config))));
  }
}

export class BertPooler extends Module {
  readonly dense: Linear;
  constructor(config: BertLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
  }
  /** tanh(dense(h[:, 0])) over the [CLS] token. */
  forward(hidden: Tensor): Tensor {
    return this.dense.forward(hidden.select(1, 0)).tanh();
  }
}

// ---- model ----

export interface BertOutputs {
  /** (B, T, C) */
  lastHiddenState: Tensor;
  /** (B, C), or null without a pooler */
  poolerOutput: Tensor | null;
}

/** The embeddings BertModel runs: BERT's own, or another model's of the same interface (RoBERTa's). */
export interface TextEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  forward(inputIds: Tensor, tokenTypeIds: Tensor | null): Tensor;
}

export class BertModel extends Module {
  readonly embeddings: TextEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler: BertPooler | null;

  constructor(readonly config: BertLikeConfig, opts: { addPoolingLayer?: boolean; embeddings?: TextEmbeddings } = {}) {
    super();
    this.embeddings = this.registerModule('embeddings', opts.embeddings ?? new BertEmbeddings(config));
    this.encoder = this.registerModule('encoder', new BertEncoder(config));
    this.pooler = (opts.addPoolingLayer ?? true) ? this.registerModule('pooler', new BertPooler(config)) : null;
    initBertWeights(this, config);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  /** The embeddings, then the layers from the input up: what freezing and layer-wise lr decay walk. */
  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.embeddings, layers: [...this.encoder.layer] };
  }

  /**
   * inputIds (B, T) int64; attentionMask (B, T) with 1 for real tokens and 0 for padding; tokenTypeIds (B, T) or
   * null (all segment 0).
   */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null, tokenTypeIds: Tensor | null = null): BertOutputs {
    if (inputIds.ndim !== 2) invalid('inputIds', 'a (batch, tokens) tensor', `shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape as [number, number];
    if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.size(0) !== B || attentionMask.size(1) !== T)) {
      invalid('attentionMask', `shape [${B}, ${T}] like inputIds`, `shape [${attentionMask.shape.join(', ')}]`);
    }
    // HF's extended mask: (1 - mask) * finfo(float32).min, added to the scores of padded keys.
    const mask = attentionMask ? additivePaddingMask(attentionMask) : null; // (B, 1, 1, T)
    // One scope per stage: a stage's intermediates are freed as soon as it returns, so only what autograd saved
    // stays alive, and backward frees that as it goes (as Python's reference counting does for PyTorch).
    let x = tidy(() => this.embeddings.forward(inputIds, tokenTypeIds).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    for (const layer of this.encoder.layer) x = tidy(() => layer.forward(x, mask));
    const lastHiddenState = x.transpose(0, 1); // (T, B, C) -> (B, T, C)
    return { lastHiddenState, poolerOutput: this.pooler ? this.pooler.forward(lastHiddenState) : null };
  }

  /** Loads config.json and model.safetensors from a local Hugging Face-style directory. */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<BertModel> {
    return loadPretrained(dir, bertConfig, (c) => new BertModel(c), { prefixes: ['bert.'], strict: opts.strict });
  }
}

/** Hugging Face's initializer: normal(0, initializer_range) for Linear and Embedding, zero bias and padding row, LayerNorm 1/0. */
export function initBertWeights(model: Module, config: BertLikeConfig): void {
  // tidy: views made while initialising (a padding row) are freed at once
  tidy(() => noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof Linear) {
        m.weight.normal_(0, config.initializer_range);
        m.bias?.zero_();
      } else if (m instanceof Embedding) {
        m.weight.normal_(0, config.initializer_range);
        if (m.paddingIdx !== null) m.weight.select(0, m.paddingIdx).zero_();
      } else if (m instanceof LayerNorm) {
        m.weight?.fill_(1);
        m.bias?.zero_();
      }
    }
  }));
}

