// DistilBERT (Sanh et al. 2019) as Hugging Face's DistilBertModel computes it: BERT's post-norm encoder at half the
// depth, word + position embeddings (no token types), no pooler. Module paths equal checkpoint keys
// (`transformer.layer.0.attention.q_lin.weight`), so distilbert-base-uncased (with its `distilbert.` prefix and
// masked-LM head, which are skipped) loads directly.
import { MmtrainError, invalid } from '../errors.js';
import { Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, additivePaddingMask } from '../nn/index.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../tensor/functional.js';
import { type Tensor, arange, tensor } from '../tensor/tensor.js';
import { type DistilBertConfig, DISTILBERT_LAYER_NORM_EPS, distilBertConfig } from './distilbert-config.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import type { EncoderOutputs } from './towers.js';

// ---- config (Hugging Face `config.json` field names: ./distilbert-config.ts) ----

export { DISTILBERT_PRESETS, distilBertConfig, type DistilBertConfig } from './distilbert-config.js';

// ---- blocks ----

export class DistilBertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(readonly config: DistilBertConfig) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(config.vocab_size, config.dim, config.pad_token_id));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(config.max_position_embeddings, config.dim));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.dim, DISTILBERT_LAYER_NORM_EPS));
    this.dropout = this.registerModule('dropout', new Dropout(config.dropout));
  }
  forward(inputIds: Tensor): Tensor {
    const T = inputIds.size(1);
    if (T > this.config.max_position_embeddings) {
      throw new MmtrainError(`DistilBERT input has ${T} tokens but max_position_embeddings is ${this.config.max_position_embeddings}: truncate the text (maxLength)`);
    }
    const positions = arange(T).unsqueeze(0); // (1, T)
    return this.dropout.forward(this.LayerNorm.forward(this.word_embeddings.forward(inputIds).add(this.position_embeddings.forward(positions)))); // (B, T, C)
  }
}

// Adapted from BertSelfAttention (src/models/bert.ts): q_lin/k_lin/v_lin/out_lin, q scaled before the product
/** Multi-head self-attention over sequence-first (T, B, C) hidden states, with its output projection. */
export class MultiHeadSelfAttention extends Module {
  readonly q_lin: Linear;
  readonly k_lin: Linear;
  readonly v_lin: Linear;
  readonly out_lin: Linear;
  readonly nh: number;
  readonly hs: number;
  constructor(readonly config: DistilBertConfig) {
    super();
    const C = config.dim;
    this.nh = config.n_heads;
    this.hs = C / this.nh;
    this.q_lin = this.registerModule('q_lin', new Linear(C, C));
    this.k_lin = this.registerModule('k_lin', new Linear(C, C));
    this.v_lin = this.registerModule('v_lin', new Linear(C, C));
    this.out_lin = this.registerModule('out_lin', new Linear(C, C));
  }
  /** x: (T, B, C); mask: additive (B, 1, 1, T) or null. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [T, B, C] = x.shape as [number, number, number];
    const { nh, hs } = this;
    const heads = (t: Tensor) => t.view(T, B * nh, hs).transpose(0, 1); // (T, B, C) -> (B*nh, T, hs)
    const q = heads(this.q_lin.forward(x).mul(1 / Math.sqrt(hs)));
    const k = heads(this.k_lin.forward(x));
    const v = heads(this.v_lin.forward(x));
    let scores = q.bmm(k.transpose(1, 2)); // (B*nh, T, T)
    if (mask) scores = scores.view(B, nh, T, T).add(mask).view(B * nh, T, T);
    let probs = F.softmax(scores, -1);
    if (this.training && this.config.attention_dropout > 0) probs = F.dropout(probs, this.config.attention_dropout, true);
    return this.out_lin.forward(probs.bmm(v).transpose(0, 1).contiguous().view(T, B, C)); // (B*nh, T, hs) -> (T, B, C)
  }
}

/** lin1 -> activation -> lin2 -> dropout. */
export class FFN extends Module {
  readonly lin1: Linear;
  readonly lin2: Linear;
  readonly dropout: Dropout;
  constructor(readonly config: DistilBertConfig) {
    super();
    this.lin1 = this.registerModule('lin1', new Linear(config.dim, config.hidden_dim));
    this.lin2 = this.registerModule('lin2', new Linear(config.hidden_dim, config.dim));
    this.dropout = this.registerModule('dropout', new Dropout(config.dropout));
  }
  forward(x: Tensor): Tensor {
    const h = this.lin1.forward(x);
    return this.dropout.forward(this.lin2.forward(this.config.activation === 'relu' ? h.relu() : h.gelu('none')));
  }
}

/** Post-norm block: LN(x + attention(x)), then LN(a + ffn(a)). */
export class TransformerBlock extends Module {
  readonly attention: MultiHeadSelfAttention;
  readonly sa_layer_norm: LayerNorm;
  readonly ffn: FFN;
  readonly output_layer_norm: LayerNorm;
  constructor(config: DistilBertConfig) {
    super();
    this.attention = this.registerModule('attention', new MultiHeadSelfAttention(config));
    this.sa_layer_norm = this.registerModule('sa_layer_norm', new LayerNorm(config.dim, DISTILBERT_LAYER_NORM_EPS));
    this.ffn = this.registerModule('ffn', new FFN(config));
    this.output_layer_norm = this.registerModule('output_layer_norm', new LayerNorm(config.dim, DISTILBERT_LAYER_NORM_EPS));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.sa_layer_norm.forward(this.attention.forward(x, mask).add(x));
    return this.output_layer_norm.forward(this.ffn.forward(a).add(a));
  }
}

export class Transformer extends Module {
  readonly layer: ModuleList<TransformerBlock>;
  constructor(config: DistilBertConfig) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: config.n_layers }, () => new TransformerBlock(config))));
  }
}

// ---- model ----

export class DistilBertModel extends Module {
  readonly embeddings: DistilBertEmbeddings;
  readonly transformer: Transformer;

  constructor(readonly config: DistilBertConfig) {
    super();
    this.embeddings = this.registerModule('embeddings', new DistilBertEmbeddings(config));
    this.transformer = this.registerModule('transformer', new Transformer(config));
    initDistilBertWeights(this, config);
  }

  get hiddenSize(): number {
    return this.config.dim;
  }

  /** The embeddings, then the blocks from the input up: what freezing and layer-wise lr decay walk. */
  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.embeddings, layers: [...this.transformer.layer] };
  }

  // Adapted from BertModel.forward (src/models/bert.ts): no token types, no pooler
  /** inputIds (B, T) int64; attentionMask (B, T), 1 for real tokens; token types are not used by DistilBERT. */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null, _tokenTypeIds: Tensor | null = null): EncoderOutputs {
    if (inputIds.ndim !== 2) invalid('inputIds', 'a (batch, tokens) tensor', `shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape as [number, number];
    if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.size(0) !== B || attentionMask.size(1) !== T)) {
      invalid('attentionMask', `shape [${B}, ${T}] like inputIds`, `shape [${attentionMask.shape.join(', ')}]`);
    }
    const mask = attentionMask ? additivePaddingMask(attentionMask) : null; // (B, 1, 1, T)
    let x = tidy(() => this.embeddings.forward(inputIds).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    for (const layer of this.transformer.layer) x = tidy(() => layer.forward(x, mask));
    return { lastHiddenState: x.transpose(0, 1), poolerOutput: null }; // (T, B, C) -> (B, T, C)
  }

  /** Loads config.json and model.safetensors (DistilBertModel keys, or `distilbert.`-prefixed with a head). */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<DistilBertModel> {
    return loadPretrained(dir, distilBertConfig, (c) => new DistilBertModel(c), { prefixes: ['distilbert.'], strict: opts.strict });
  }
}

// Copied from initBertWeights (src/models/bert.ts) with Bert->DistilBert, plus the sinusoidal position table
/** Hugging Face's initializer: normal(0, initializer_range) for Linear and Embedding, zero bias and padding row, LayerNorm 1/0. */
export function initDistilBertWeights(model: Module, config: DistilBertConfig): void {
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
    if (config.sinusoidal_pos_embds && model instanceof DistilBertModel) {
      // create_sinusoidal_embeddings: sin on even columns, cos on odd, of pos / 10000^(2 (j // 2) / dim)
      const { max_position_embeddings: P, dim } = config;
      const table = new Float32Array(P * dim);
      for (let p = 0; p < P; p++) {
        for (let j = 0; j < dim; j++) {
          const a = p / 10000 ** ((2 * Math.floor(j / 2)) / dim);
          table[p * dim + j] = j % 2 === 0 ? Math.sin(a) : Math.cos(a);
        }
      }
      model.embeddings.position_embeddings.weight.copy_(tensor(table, { shape: [P, dim] }));
    }
  }));
}
