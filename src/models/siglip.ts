// SigLIP's towers (Zhai et al. 2023) as Hugging Face's SiglipTextModel and SiglipVisionModel compute them: CLIP's
// pre-norm layers (clip.ts, the same key names) with GELU's tanh form; a bidirectional text encoder whose pooled
// vector is a Linear head over the last position; a vision encoder without a class token (patches plus position
// embeddings, a biased patch convolution), `post_layernorm` on every token, and an attention-pooling head (a
// learned probe attending to the patches). SiglipTextModel / SiglipVisionModel folders load directly, and each
// tower out of a full SiglipModel folder (encoders.ts).
import { MmtrainError, invalid } from '../errors.js';
import { Conv2d, Embedding, LayerNorm, Linear, Module, MultiheadAttention, additivePaddingMask } from '../nn/index.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor, zeros } from '../tensor/tensor.js';
import { CLIPEncoder, CLIPMLP, CLIPTextEmbeddings } from './clip.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import { type SiglipTextConfig, type SiglipVisionConfig, siglipTextConfig, siglipVisionConfig } from './siglip-config.js';
import type { EncoderOutputs } from './towers.js';

// ---- config (Hugging Face `config.json` field names: ./siglip-config.ts) ----

export { SIGLIP_TEXT_PRESETS, SIGLIP_VISION_PRESETS, siglipTextConfig, siglipVisionConfig, type SiglipTextConfig, type SiglipVisionConfig } from './siglip-config.js';

// ---- text tower ----

export class SiglipTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;
  readonly head: Linear;
  constructor(readonly config: SiglipTextConfig) {
    super();
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(config, 'SigLIP text'));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.final_layer_norm = this.registerModule('final_layer_norm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.head = this.registerModule('head', new Linear(config.hidden_size, config.projection_size ?? config.hidden_size));
  }
}

export class SiglipTextModel extends Module {
  readonly text_model: SiglipTextTransformer;
  constructor(readonly config: SiglipTextConfig) {
    super();
    this.text_model = this.registerModule('text_model', new SiglipTextTransformer(config));
    initSiglipWeights(this, config.hidden_size);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.text_model.embeddings, layers: [...this.text_model.encoder.layers] };
  }

  /** inputIds (B, T); attentionMask (B, T) or null. Pooled = head(the last position's state), as Hugging Face. */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null, _tokenTypeIds: Tensor | null = null): EncoderOutputs {
    if (inputIds.ndim !== 2) invalid('inputIds', 'a (batch, tokens) tensor', `shape [${inputIds.shape.join(', ')}]`);
    const T = inputIds.size(1);
    const m = this.text_model;
    const mask = attentionMask ? additivePaddingMask(attentionMask) : null; // (B, 1, 1, T)
    let x = tidy(() => m.embeddings.forward(inputIds).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    x = m.encoder.forward(x, mask);
    const lastHiddenState = m.final_layer_norm.forward(x).transpose(0, 1); // (T, B, C) -> (B, T, C)
    return { lastHiddenState, poolerOutput: m.head.forward(lastHiddenState.select(1, T - 1)) };
  }

  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<SiglipTextModel> {
    return loadPretrained(dir, siglipTextConfig, (c) => new SiglipTextModel(c), { prefixes: [], strict: opts.strict });
  }
}

// ---- vision tower ----

export class SiglipVisionEmbeddings extends Module {
  readonly patch_embedding: Conv2d;
  readonly position_embedding: Embedding;
  constructor(readonly config: SiglipVisionConfig) {
    super();
    const n = (config.image_size / config.patch_size) ** 2;
    this.patch_embedding = this.registerModule('patch_embedding', new Conv2d(config.num_channels, config.hidden_size, config.patch_size, { stride: config.patch_size }));
    this.position_embedding = this.registerModule('position_embedding', new Embedding(n, config.hidden_size));
  }
  forward(pixels: Tensor): Tensor {
    const [, , H, W] = pixels.shape as [number, number, number, number];
    const S = this.config.image_size;
    if (H !== S || W !== S) throw new MmtrainError(`SigLIP vision: image size ${H}x${W}, expected ${S}x${S} (the checkpoint's image_size): set data.image.size to ${S}`);
    const patches = this.patch_embedding.forward(pixels).flatten(2).transpose(1, 2); // (B, C, h, w) -> (B, N, C)
    return patches.add(this.position_embedding.weight.unsqueeze(0)); // + (1, N, C)
  }
}

/** A learned probe attends to every token (torch MultiheadAttention), then LayerNorm and a residual MLP. */
export class SiglipMultiheadAttentionPoolingHead extends Module {
  readonly probe: Tensor;
  readonly attention: MultiheadAttention;
  readonly layernorm: LayerNorm;
  readonly mlp: CLIPMLP;
  constructor(readonly config: SiglipVisionConfig) {
    super();
    this.probe = this.registerParameter('probe', zeros([1, 1, config.hidden_size]));
    this.attention = this.registerModule('attention', new MultiheadAttention(config.hidden_size, config.num_attention_heads, { batchFirst: true }));
    this.layernorm = this.registerModule('layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.mlp = this.registerModule('mlp', new CLIPMLP(config));
  }
  /** (B, N, C) -> (B, C) */
  forward(h: Tensor): Tensor {
    const [B, , C] = h.shape as [number, number, number];
    const a = this.attention.forward(this.probe.expand(B, 1, C), h, h, { needWeights: false }).output; // (B, 1, C)
    return a.add(this.mlp.forward(this.layernorm.forward(a))).select(1, 0);
  }
}

export class SiglipVisionTransformer extends Module {
  readonly embeddings: SiglipVisionEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly post_layernorm: LayerNorm;
  readonly head: SiglipMultiheadAttentionPoolingHead;
  constructor(readonly config: SiglipVisionConfig) {
    super();
    this.embeddings = this.registerModule('embeddings', new SiglipVisionEmbeddings(config));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.post_layernorm = this.registerModule('post_layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.head = this.registerModule('head', new SiglipMultiheadAttentionPoolingHead(config));
  }
}

export class SiglipVisionModel extends Module {
  readonly vision_model: SiglipVisionTransformer;
  constructor(readonly config: SiglipVisionConfig) {
    super();
    this.vision_model = this.registerModule('vision_model', new SiglipVisionTransformer(config));
    initSiglipWeights(this, config.hidden_size);
  }

  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  stages(): { embeddings: Module; layers: Module[] } {
    return { embeddings: this.vision_model.embeddings, layers: [...this.vision_model.encoder.layers] };
  }

  /** pixelValues (B, 3, S, S): every patch's state after post_layernorm (no class token), pooled by the head. */
  forward(pixelValues: Tensor): EncoderOutputs {
    if (pixelValues.ndim !== 4 || pixelValues.size(1) !== this.config.num_channels) {
      invalid('pixelValues', `a (batch, ${this.config.num_channels}, height, width) tensor`, `shape [${pixelValues.shape.join(', ')}]`);
    }
    const m = this.vision_model;
    let x = tidy(() => m.embeddings.forward(pixelValues).transpose(0, 1).contiguous()); // (B, N, C) -> (N, B, C)
    x = m.encoder.forward(x, null);
    const lastHiddenState = m.post_layernorm.forward(x).transpose(0, 1); // (N, B, C) -> (B, N, C)
    return { lastHiddenState, poolerOutput: m.head.forward(lastHiddenState) };
  }

  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<SiglipVisionModel> {
    return loadPretrained(dir, siglipVisionConfig, (c) => new SiglipVisionModel(c), { prefixes: [], strict: opts.strict });
  }
}

/**
 * A fan-in scaled initializer in the spirit of Hugging Face's SigLIP one (whose lecun and xavier mixes matter only
 * before pretraining): Linear and convolution weights normal(0, fan_in^-0.5), embeddings and the probe
 * normal(0, C^-0.5), zero biases, LayerNorm 1/0.
 */
export function initSiglipWeights(model: Module, C: number): void {
  tidy(() => noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof Linear) {
        m.weight.normal_(0, m.weight.size(1) ** -0.5);
        m.bias?.zero_();
      } else if (m instanceof Conv2d) {
        const [, cin, kh, kw] = m.weight.shape as [number, number, number, number];
        m.weight.normal_(0, (cin * kh * kw) ** -0.5);
        m.bias?.zero_();
      } else if (m instanceof Embedding) {
        m.weight.normal_(0, C ** -0.5);
      } else if (m instanceof LayerNorm) {
        m.weight?.fill_(1);
        m.bias?.zero_();
      } else if (m instanceof SiglipMultiheadAttentionPoolingHead) {
        m.probe.normal_(0, C ** -0.5);
      } else if (m instanceof MultiheadAttention) {
        m.inProjWeight.normal_(0, C ** -0.5);
        m.inProjBias?.zero_();
      }
    }
  }));
}
