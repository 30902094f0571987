// ViT (Dosovitskiy et al. 2021) as Hugging Face's ViTModel computes it: Conv2d patch embedding, a [CLS] token,
// learned position embeddings (interpolated when the image size differs from the checkpoint's), pre-norm encoder
// layers, a final LayerNorm and an optional tanh pooler over [CLS]. Module paths equal checkpoint keys
// (`encoder.layer.0.attention.attention.query.weight`), so google/vit-base-patch16-224(-in21k) load directly.
import { MmtrainError, invalid } from '../errors.js';
import { Conv2d, Dropout, LayerNorm, Linear, Module, ModuleList } from '../nn/index.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../tensor/functional.js';
import { Tensor, cat, zeros } from '../tensor/tensor.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import { type ViTConfig, vitConfig } from './vit-config.js';
import type { DeiTConfig } from './deit-config.js';

/** A config ViTModel runs: ViT's, or DeiT's (the same fields). */
export type ViTLikeConfig = ViTConfig | DeiTConfig;

// ---- config (Hugging Face `config.json` field names: ./vit-config.ts) ----

export { VIT_PRESETS, vitConfig, type ViTConfig } from './vit-config.js';

function activation(x: Tensor, act: ViTConfig['hidden_act']): Tensor {
  if (act === 'relu') return x.relu();
  return x.gelu(act === 'gelu' ? 'none' : 'tanh');
}

// ---- blocks ----

export class ViTPatchEmbeddings extends Module {
  readonly projection: Conv2d;
  constructor(readonly config: ViTLikeConfig) {
    super();
    this.projection = this.registerModule('projection', new Conv2d(config.num_channels, config.hidden_size, config.patch_size, { stride: config.patch_size }));
  }
  forward(pixels: Tensor): Tensor {
    return this.projection.forward(pixels).flatten(2).transpose(1, 2); // (B, C, h, w) -> (B, h*w, C)
  }
}

export class ViTEmbeddings extends Module {
  readonly cls_token: Tensor;
  readonly position_embeddings: Tensor;
  readonly patch_embeddings: ViTPatchEmbeddings;
  readonly dropout: Dropout;
  constructor(readonly config: ViTLikeConfig) {
    super();
    const n = (config.image_size / config.patch_size) ** 2;
    this.cls_token = this.registerParameter('cls_token', zeros([1, 1, config.hidden_size]));
    this.position_embeddings = this.registerParameter('position_embeddings', zeros([1, n + 1, config.hidden_size]));
    this.patch_embeddings = this.registerModule('patch_embeddings', new ViTPatchEmbeddings(config));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(pixels: Tensor): Tensor {
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    const p = this.config.patch_size;
    if (H % p || W % p) {
      throw new MmtrainError(`ViT: image size ${H}x${W} is not a multiple of patch_size ${p}: resize images to a multiple of ${p}`);
    }
    const patches = this.patch_embeddings.forward(pixels); // (B, N, C)
    const C = this.config.hidden_size;
    const h = cat([this.cls_token.expand(B, 1, C), patches], 1); // (B, 1 + N, C)
    return this.dropout.forward(h.add(this.positionEmbeddingsFor(H / p, W / p)));
  }
  /**
   * Position embeddings for an h x w patch grid: the checkpoint's, or its patch part resized bicubically (as
   * Hugging Face's interpolate_pos_encoding) when the grid differs.
   */
  positionEmbeddingsFor(h: number, w: number): Tensor {
    return positionEmbeddingsFor(this.position_embeddings, 1, h, w);
  }
}

/**
 * Position embeddings (1, leading + N, C) for an h x w patch grid: as they are when N = h * w on a square grid,
 * else the `leading` special tokens' rows followed by the patch rows resized bicubically from their square grid.
 */
export function positionEmbeddingsFor(pos: Tensor, leading: number, h: number, w: number): Tensor {
  const n = pos.size(1) - leading;
  if (h * w === n && h === w) return pos;
  const side = Math.round(Math.sqrt(n));
  const C = pos.size(2);
  const grid = pos.slice(1, leading).reshape(1, side, side, C).permute(0, 3, 1, 2); // (1, N, C) -> (1, C, side, side)
  const resized = F.interpolate(grid, [h, w], 'bicubic', false).permute(0, 2, 3, 1).reshape(1, h * w, C); // (1, C, h, w) -> (1, h*w, C)
  return cat([pos.slice(1, 0, leading), resized], 1);
}

// Adapted from BertSelfAttention (src/models/bert.ts): no attention mask (every patch attends to every patch)
/** Self-attention over (T, B, C) sequence-first hidden states. */
export class ViTSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly nh: number;
  readonly hs: number;
  constructor(readonly config: ViTLikeConfig) {
    super();
    const C = config.hidden_size;
    this.nh = config.num_attention_heads;
    this.hs = C / this.nh;
    this.query = this.registerModule('query', new Linear(C, C, { bias: config.qkv_bias }));
    this.key = this.registerModule('key', new Linear(C, C, { bias: config.qkv_bias }));
    this.value = this.registerModule('value', new Linear(C, C, { bias: config.qkv_bias }));
  }
  forward(x: Tensor): Tensor {
    const [T, B, C] = x.shape as [number, number, number];
    const { nh, hs } = this;
    const heads = (t: Tensor) => t.view(T, B * nh, hs).transpose(0, 1); // (T, B, C) -> (B*nh, T, hs)
    const q = heads(this.query.forward(x));
    const k = heads(this.key.forward(x));
    const v = heads(this.value.forward(x));
    let probs = F.softmax(q.bmm(k.transpose(1, 2)).mul(1 / Math.sqrt(hs)), -1); // (B*nh, T, T)
    if (this.training && this.config.attention_probs_dropout_prob > 0) probs = F.dropout(probs, this.config.attention_probs_dropout_prob, true);
    return probs.bmm(v).transpose(0, 1).contiguous().view(T, B, C); // (B*nh, T, hs) -> (T, B, C)
  }
}

// Adapted from BertSelfOutput (src/models/bert.ts): ViT normalises before each block, so no LayerNorm here
/** dense + dropout (the residual is added by the layer, unlike BERT). */
export class ViTSelfOutput extends Module {
  readonly dense: Linear;
  readonly dropout: Dropout;
  constructor(config: ViTLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(h: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(h));
  }
}

// Copied from BertAttention (src/models/bert.ts) with Bert->ViT, without the attention mask
export class ViTAttention extends Module {
  readonly attention: ViTSelfAttention;
  readonly output: ViTSelfOutput;
  constructor(config: ViTLikeConfig) {
    super();
    this.attention = this.registerModule('attention', new ViTSelfAttention(config));
    this.output = this.registerModule('output', new ViTSelfOutput(config));
  }
  forward(x: Tensor): Tensor {
    return this.output.forward(this.attention.forward(x));
  }
}

// Copied from BertIntermediate (src/models/bert.ts) with Bert->ViT
export class ViTIntermediate extends Module {
  readonly dense: Linear;
  constructor(readonly config: ViTLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.intermediate_size));
  }
  forward(x: Tensor): Tensor {
    return activation(this.dense.forward(x), this.config.hidden_act);
  }
}

// Adapted from BertOutput (src/models/bert.ts): the residual without a LayerNorm (pre-norm blocks)
export class ViTOutput extends Module {
  readonly dense: Linear;
  readonly dropout: Dropout;
  constructor(config: ViTLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.intermediate_size, config.hidden_size));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(h)).add(residual);
  }
}

// Adapted from BertLayer (src/models/bert.ts): pre-norm (layernorm_before / layernorm_after) instead of post-norm
/** Pre-norm layer: x + attn(LN(x)), then h + mlp(LN(h)). */
export class ViTLayer extends Module {
  readonly attention: ViTAttention;
  readonly intermediate: ViTIntermediate;
  readonly output: ViTOutput;
  readonly layernorm_before: LayerNorm;
  readonly layernorm_after: LayerNorm;
  constructor(config: ViTLikeConfig) {
    super();
    this.attention = this.registerModule('attention', new ViTAttention(config));
    this.intermediate = this.registerModule('intermediate', new ViTIntermediate(config));
    this.output = this.registerModule('output', new ViTOutput(config));
    this.layernorm_before = this.registerModule('layernorm_before', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.layernorm_after = this.registerModule('layernorm_after', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
  forward(x: Tensor): Tensor {
    const h = this.attention.forward(this.layernorm_before.forward(x)).add(x);
    return this.output.forward(this.intermediate.forward(this.layernorm_after.forward(h)), h);
  }
}

// Copied from BertEncoder (src/models/bert.ts) with Bert->ViT
export class ViTEncoder extends Module {
  readonly layer: ModuleList<ViTLayer>;
  constructor(config: ViTLikeConfig) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new ViTLayer(config))));
  }
}

// Adapted from BertPooler (src/models/bert.ts)
export class ViTPooler extends Module {
  readonly dense: Linear;
  constructor(config: ViTLikeConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
  }
  forward(hidden: Tensor): Tensor {
    return this.dense.forward(hidden.select(1, 0)).tanh();
  }
}

// ---- model ----

export interface ViTOutputs {
  /** (B, 1 + N, C): [CLS] then the patches */
  lastHiddenState: Tensor;
  /** (B, C), or null without a pooler */
  poolerOutput: Tensor | null;
}

/** The embeddings ViTModel runs: ViT's own, or another model's of the same interface (DeiT's). */
export interface ImageEmbeddings extends Module {
  readonly cls_token: Tensor;
  readonly position_embeddings: Tensor;
  readonly patch_embeddings: ViTPatchEmbeddings;
  forward(pixels: Tensor): Tensor;
  positionEmbeddingsFor(h: number, w: number): Tensor;
}

export class ViTModel extends Module {
  readonly embeddings: ImageEmbeddings;
  readonly encoder: ViTEncoder;
  readonly layernorm: LayerNorm;
  readonly pooler: ViTPooler | null;

  constructor(readonly config: ViTLikeConfig, opts: { addPoolingLayer?: boolean; embeddings?: ImageEmbeddings } = {}) {
    super();
    this.embeddings = this.registerModule('embeddings', opts.embeddings ?? new ViTEmbeddings(config));
    this.encoder = this.registerModule('encoder', new ViTEncoder(config));
    this.layernorm = this.registerModule('layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.pooler = (opts.addPoolingLayer ?? true) ? this.registerModule('pooler', new ViTPooler(config)) : null;
    initViTWeights(this, config);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  /** The embeddings, then the layers from the input up: what freezing and layer-wise lr decay walk. */
  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.embeddings, layers: [...this.encoder.layer] };
  }

  /** pixelValues (B, num_channels, H, W), normalised. */
  forward(pixelValues: Tensor): ViTOutputs {
    if (pixelValues.ndim !== 4 || pixelValues.size(1) !== this.config.num_channels) {
      invalid('pixelValues', `a (batch, ${this.config.num_channels}, height, width) tensor`, `shape [${pixelValues.shape.join(', ')}]`);
    }
    // One scope per stage: a stage's intermediates are freed as soon as it returns, so only what autograd saved
    // stays alive, and backward frees that as it goes (as Python's reference counting does for PyTorch).
    let x = tidy(() => this.embeddings.forward(pixelValues).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    for (const layer of this.encoder.layer) x = tidy(() => layer.forward(x));
    const lastHiddenState = this.layernorm.forward(x).transpose(0, 1); // (T, B, C) -> (B, T, C)
    return { lastHiddenState, poolerOutput: this.pooler ? this.pooler.forward(lastHiddenState) : null };
  }

  /**
   * Loads config.json and model.safetensors from a local directory. ViTForImageClassification checkpoints
   * (google/vit-base-patch16-224) have no pooler: it is reported missing and keeps its random initialisation.
   */
  static fromPretrained(dir: string, opts: { strict?: boolean; addPoolingLayer?: boolean } = {}): PretrainedLoad<ViTModel> {
    return loadPretrained(dir, vitConfig, (c) => new ViTModel(c, { addPoolingLayer: opts.addPoolingLayer }), { prefixes: ['vit.'], strict: opts.strict });
  }
}

/**
 * Hugging Face's initializer: truncated normal(0, initializer_range) for Linear/Conv2d weights, position
 * embeddings and the [CLS] token (truncation at ±2, as torch.nn.init.trunc_normal_'s defaults), zero biases,
 * LayerNorm 1/0.
 */
export function initViTWeights(model: Module, config: ViTLikeConfig): void {
  const std = config.initializer_range;
  // tidy: views made while initialising (a padding row) are freed at once
  tidy(() => noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof Linear || m instanceof Conv2d) {
        m.weight.normal_(0, std).clamp_(-2, 2);
        m.bias?.zero_();
      } else if (m instanceof LayerNorm) {
        m.weight?.fill_(1);
        m.bias?.zero_();
      } else if (m === (model as { embeddings?: unknown }).embeddings && m instanceof Module && 'cls_token' in m) {
        // the embeddings' own parameters: the position table, the class token (and DeiT's distillation token)
        const e = m as unknown as ImageEmbeddings & { distillation_token?: Tensor };
        for (const p of [e.position_embeddings, e.cls_token, e.distillation_token]) p?.normal_(0, std).clamp_(-2, 2);
      }
    }
  }));
}
