// CLIP's towers (Radford et al. 2021) as Hugging Face's CLIPTextModel and CLIPVisionModel compute them: pre-norm
// transformer layers with quick-GELU, a causal text encoder whose pooled vector is the end-of-text token's state,
// and a vision encoder with a class embedding, a bias-free patch convolution, `pre_layrnorm` before the layers and
// `post_layernorm` on the pooled [CLS]. Module paths equal checkpoint keys (`text_model.encoder.layers.0.self_attn.
// q_proj.weight`), so CLIPTextModel / CLIPVisionModel folders load directly, and each tower also loads out of a
// full CLIPModel folder (the other tower, the projections and logit_scale are skipped: encoders.ts).
import { MmtrainError, invalid } from '../errors.js';
import { Conv2d, Embedding, LayerNorm, Linear, Module, MASK_LOWEST, ModuleList, additivePaddingMask } from '../nn/index.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../tensor/functional.js';
import { type Tensor, arange, cat, full, zeros } from '../tensor/tensor.js';
import { type CLIPTextConfig, type CLIPVisionConfig, clipTextConfig, clipVisionConfig } from './clip-config.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import type { EncoderOutputs } from './towers.js';

// ---- config (Hugging Face `config.json` field names: ./clip-config.ts) ----

export { CLIP_TEXT_PRESETS, CLIP_VISION_PRESETS, clipTextConfig, clipVisionConfig, type CLIPTextConfig, type CLIPVisionConfig } from './clip-config.js';

/** What CLIP's encoder layers read of a config (SigLIP's configs have the same fields: siglip.ts). */
export interface CLIPLayerConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act: CLIPTextConfig['hidden_act'];
  layer_norm_eps: number;
  attention_dropout: number;
}
type CLIPConfig = CLIPLayerConfig;

function activation(x: Tensor, act: CLIPConfig['hidden_act']): Tensor {
  if (act === 'quick_gelu') return x.mul(x.mul(1.702).sigmoid());
  if (act === 'relu') return x.relu();
  return x.gelu(act === 'gelu' ? 'none' : 'tanh');
}

// ---- blocks (shared by both towers) ----

/** Multi-head self-attention over sequence-first (T, B, C) states; q scaled before the product. */
export class CLIPAttention extends Module {
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly q_proj: Linear;
  readonly out_proj: Linear;
  readonly nh: number;
  readonly hs: number;
  constructor(readonly config: CLIPConfig) {
    super();
    const C = config.hidden_size;
    this.nh = config.num_attention_heads;
    this.hs = C / this.nh;
    this.k_proj = this.registerModule('k_proj', new Linear(C, C));
    this.v_proj = this.registerModule('v_proj', new Linear(C, C));
    this.q_proj = this.registerModule('q_proj', new Linear(C, C));
    this.out_proj = this.registerModule('out_proj', new Linear(C, C));
  }
  /** x: (T, B, C); mask: additive, broadcastable to (B, 1, T, T), or null. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [T, B, C] = x.shape as [number, number, number];
    const { nh, hs } = this;
    const heads = (t: Tensor) => t.view(T, B * nh, hs).transpose(0, 1); // (T, B, C) -> (B*nh, T, hs)
    const q = heads(this.q_proj.forward(x).mul(hs ** -0.5));
    const k = heads(this.k_proj.forward(x));
    const v = heads(this.v_proj.forward(x));
    let scores = q.bmm(k.transpose(1, 2)); // (B*nh, T, T)
    if (mask) scores = scores.view(B, nh, T, T).add(mask).view(B * nh, T, T);
    let probs = F.softmax(scores, -1);
    if (this.training && this.config.attention_dropout > 0) probs = F.dropout(probs, this.config.attention_dropout, true);
    return this.out_proj.forward(probs.bmm(v).transpose(0, 1).contiguous().view(T, B, C)); // (B*nh, T, hs) -> (T, B, C)
  }
}

export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly config: CLIPConfig) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(config.hidden_size, config.intermediate_size));
    this.fc2 = this.registerModule('fc2', new Linear(config.intermediate_size, config.hidden_size));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(activation(this.fc1.forward(x), this.config.hidden_act));
  }
}

/** Pre-norm layer: x + attention(LN1(x)), then h + mlp(LN2(h)). */
export class CLIPEncoderLayer extends Module {
  readonly self_attn: CLIPAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layer_norm2: LayerNorm;
  constructor(config: CLIPConfig) {
    super();
    this.self_attn = this.registerModule('self_attn', new CLIPAttention(config));
    this.layer_norm1 = this.registerModule('layer_norm1', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.mlp = this.registerModule('mlp', new CLIPMLP(config));
    this.layer_norm2 = this.registerModule('layer_norm2', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(config: CLIPConfig) {
    super();
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new CLIPEncoderLayer(config))));
  }
  /** x: (T, B, C) -> (T, B, C) */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    let h = x;
    for (const layer of this.layers) h = tidy(() => layer.forward(h, mask));
    return h;
  }
}

// ---- text tower ----

/** Token + position embeddings; SigLIP's text tower has the same (siglip.ts), `model` names it in messages. */
export class CLIPTextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;
  constructor(readonly config: Pick<CLIPTextConfig, 'vocab_size' | 'hidden_size' | 'max_position_embeddings'>, readonly model = 'CLIP text') {
    super();
    this.token_embedding = this.registerModule('token_embedding', new Embedding(config.vocab_size, config.hidden_size));
    this.position_embedding = this.registerModule('position_embedding', new Embedding(config.max_position_embeddings, config.hidden_size));
  }
  forward(inputIds: Tensor): Tensor {
    const T = inputIds.size(1);
    if (T > this.config.max_position_embeddings) {
      throw new MmtrainError(`${this.model} input has ${T} tokens but max_position_embeddings is ${this.config.max_position_embeddings}: truncate the text (maxLength)`);
    }
    return this.token_embedding.forward(inputIds).add(this.position_embedding.forward(arange(T).unsqueeze(0))); // (B, T, C)
  }
}

export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(config));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.final_layer_norm = this.registerModule('final_layer_norm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
}

export class CLIPTextModel extends Module {
  readonly text_model: CLIPTextTransformer;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.text_model = this.registerModule('text_model', new CLIPTextTransformer(config));
    initCLIPWeights(this, config);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.text_model.embeddings, layers: [...this.text_model.encoder.layers] };
  }

  /**
   * inputIds (B, T); attentionMask (B, T), 1 for real tokens. Causal attention; the last hidden state after the
   * final LayerNorm; the pooled vector is the end-of-text token's state (its first occurrence, or the largest id
   * for the legacy eos_token_id 2, as Hugging Face does).
   */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null, _tokenTypeIds: Tensor | null = null): EncoderOutputs {
    if (inputIds.ndim !== 2) invalid('inputIds', 'a (batch, tokens) tensor', `shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape as [number, number];
    const m = this.text_model;
    // additive (B, 1, T, T): keys after the query, and padded keys, at float32's lowest
    let mask = full([T, T], MASK_LOWEST).triu(1).view(1, 1, T, T);
    if (attentionMask) mask = mask.add(additivePaddingMask(attentionMask)).clamp(MASK_LOWEST); // + (B, 1, 1, T)
    let x = tidy(() => m.embeddings.forward(inputIds).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    x = m.encoder.forward(x, mask);
    const lastHiddenState = m.final_layer_norm.forward(x).transpose(0, 1); // (T, B, C) -> (B, T, C)
    const eos = this.config.eos_token_id === 2 ? inputIds.argmax(-1) : inputIds.eq(this.config.eos_token_id).to('int32').argmax(-1); // (B,)
    const poolerOutput = lastHiddenState.gather(1, eos.view(B, 1, 1).expand(B, 1, this.config.hidden_size)).squeeze(1); // (B, 1, C) -> (B, C)
    return { lastHiddenState, poolerOutput };
  }

  /** Loads a CLIPTextModel folder (`text_model.*` keys); a CLIPModel folder goes through encoders.ts loadTower. */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<CLIPTextModel> {
    return loadPretrained(dir, clipTextConfig, (c) => new CLIPTextModel(c), { prefixes: [], strict: opts.strict });
  }
}

// ---- vision tower ----

export class CLIPVisionEmbeddings extends Module {
  readonly class_embedding: Tensor;
  readonly patch_embedding: Conv2d;
  readonly position_embedding: Embedding;
  constructor(readonly config: CLIPVisionConfig) {
    super();
    const n = (config.image_size / config.patch_size) ** 2;
    this.class_embedding = this.registerParameter('class_embedding', zeros([config.hidden_size]));
    this.patch_embedding = this.registerModule('patch_embedding', new Conv2d(config.num_channels, config.hidden_size, config.patch_size, { stride: config.patch_size, bias: false }));
    this.position_embedding = this.registerModule('position_embedding', new Embedding(n + 1, config.hidden_size));
  }
  forward(pixels: Tensor): Tensor {
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    const S = this.config.image_size;
    if (H !== S || W !== S) throw new MmtrainError(`CLIP vision: image size ${H}x${W}, expected ${S}x${S} (the checkpoint's image_size): set data.image.size to ${S}`);
    const patches = this.patch_embedding.forward(pixels).flatten(2).transpose(1, 2); // (B, C, h, w) -> (B, N, C)
    const C = this.config.hidden_size;
    const h = cat([this.class_embedding.view(1, 1, C).expand(B, 1, C), patches], 1); // (B, 1 + N, C)
    return h.add(this.position_embedding.weight.unsqueeze(0)); // + (1, 1 + N, C)
  }
}

export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly post_layernorm: LayerNorm;
  constructor(readonly config: CLIPVisionConfig) {
    super();
    this.embeddings = this.registerModule('embeddings', new CLIPVisionEmbeddings(config));
    this.pre_layrnorm = this.registerModule('pre_layrnorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.post_layernorm = this.registerModule('post_layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
}

export class CLIPVisionModel extends Module {
  readonly vision_model: CLIPVisionTransformer;
  constructor(readonly config: CLIPVisionConfig) {
    super();
    this.vision_model = this.registerModule('vision_model', new CLIPVisionTransformer(config));
    initCLIPWeights(this, config);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.vision_model.embeddings, layers: [...this.vision_model.encoder.layers] };
  }

  /** pixelValues (B, 3, S, S): the last hidden state (before post_layernorm, as Hugging Face), pooled = post_layernorm([CLS]). */
  forward(pixelValues: Tensor): EncoderOutputs {
    if (pixelValues.ndim !== 4 || pixelValues.size(1) !== this.config.num_channels) {
      invalid('pixelValues', `a (batch, ${this.config.num_channels}, height, width) tensor`, `shape [${pixelValues.shape.join(', ')}]`);
    }
    const m = this.vision_model;
    let x = tidy(() => m.pre_layrnorm.forward(m.embeddings.forward(pixelValues)).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    x = m.encoder.forward(x, null);
    const lastHiddenState = x.transpose(0, 1); // (T, B, C) -> (B, T, C)
    return { lastHiddenState, poolerOutput: m.post_layernorm.forward(lastHiddenState.select(1, 0)) };
  }

  /** Loads a CLIPVisionModel folder (`vision_model.*` keys); a CLIPModel folder goes through encoders.ts loadTower. */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<CLIPVisionModel> {
    return loadPretrained(dir, clipVisionConfig, (c) => new CLIPVisionModel(c), { prefixes: [], strict: opts.strict });
  }
}

/**
 * Hugging Face's CLIP initializer (CLIPPreTrainedModel._init_weights, initializer_factor f): token and position
 * embeddings normal(0, 0.02 f); the class embedding normal(0, C^-0.5 f), the patch convolution normal(0, range f);
 * attention projections normal(0, C^-0.5 (2L)^-0.5 f) (out_proj C^-0.5 f), MLP fc1 (2C)^-0.5 f and fc2
 * C^-0.5 (2L)^-0.5 f; zero biases, LayerNorm 1/0.
 */
export function initCLIPWeights(model: Module, config: CLIPTextConfig | CLIPVisionConfig): void {
  const f = config.initializer_factor;
  const C = config.hidden_size;
  const L = config.num_hidden_layers;
  tidy(() => noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof CLIPTextEmbeddings) {
        m.token_embedding.weight.normal_(0, 0.02 * f);
        m.position_embedding.weight.normal_(0, 0.02 * f);
      } else if (m instanceof CLIPVisionEmbeddings) {
        m.class_embedding.normal_(0, C ** -0.5 * f);
        m.patch_embedding.weight.normal_(0, config.initializer_range * f);
        m.position_embedding.weight.normal_(0, config.initializer_range * f);
      } else if (m instanceof CLIPAttention) {
        for (const l of [m.q_proj, m.k_proj, m.v_proj]) l.weight.normal_(0, C ** -0.5 * (2 * L) ** -0.5 * f);
        m.out_proj.weight.normal_(0, C ** -0.5 * f);
      } else if (m instanceof CLIPMLP) {
        m.fc1.weight.normal_(0, (2 * C) ** -0.5 * f);
        m.fc2.weight.normal_(0, C ** -0.5 * (2 * L) ** -0.5 * f);
      } else if (m instanceof LayerNorm) {
        m.weight?.fill_(1);
        m.bias?.zero_();
      }
      if (m instanceof Linear) m.bias?.zero_();
    }
  }));
}
