// DeiT (Touvron et al. 2021) as Hugging Face's DeiTModel computes it: ViT's encoder, final LayerNorm and pooler
// (vit.ts) under ViT's key names, with a learned distillation token after the class token, so the sequence is
// [CLS], [DIST], then the patches. facebook/deit-base-distilled-patch16-224 (with its `deit.` prefix and two
// classification heads, which are skipped) loads directly.
import { MmtrainError } from '../errors.js';
import { Dropout, Module } from '../nn/index.js';
import { type Tensor, cat, zeros } from '../tensor/tensor.js';
import { type DeiTConfig, deitConfig } from './deit-config.js';
import { loadPretrained, type PretrainedLoad } from './loading.js';
import { ViTModel, ViTPatchEmbeddings, positionEmbeddingsFor } from './vit.js';

// ---- config (Hugging Face `config.json` field names: ./deit-config.ts) ----

export { DEIT_PRESETS, deitConfig, type DeiTConfig } from './deit-config.js';

// ---- blocks ----

// Copied from ViTEmbeddings (src/models/vit.ts) with ViT->DeiT, plus the distillation token
export class DeiTEmbeddings extends Module {
  readonly cls_token: Tensor;
  readonly distillation_token: Tensor;
  readonly position_embeddings: Tensor;
  readonly patch_embeddings: ViTPatchEmbeddings;
  readonly dropout: Dropout;
  constructor(readonly config: DeiTConfig) {
    super();
    const n = (config.image_size / config.patch_size) ** 2;
    this.cls_token = this.registerParameter('cls_token', zeros([1, 1, config.hidden_size]));
    this.distillation_token = this.registerParameter('distillation_token', zeros([1, 1, config.hidden_size]));
    this.position_embeddings = this.registerParameter('position_embeddings', zeros([1, n + 2, config.hidden_size]));
    this.patch_embeddings = this.registerModule('patch_embeddings', new ViTPatchEmbeddings(config));
    this.dropout = this.registerModule('dropout', new Dropout(config.hidden_dropout_prob));
  }
  forward(pixels: Tensor): Tensor {
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    const p = this.config.patch_size;
    if (H % p || W % p) {
      throw new MmtrainError(`DeiT: image size ${H}x${W} is not a multiple of patch_size ${p}: resize images to a multiple of ${p}`);
    }
    const patches = this.patch_embeddings.forward(pixels); // (B, N, C)
    const C = this.config.hidden_size;
    const h = cat([this.cls_token.expand(B, 1, C), this.distillation_token.expand(B, 1, C), patches], 1); // (B, 2 + N, C)
    return this.dropout.forward(h.add(this.positionEmbeddingsFor(H / p, W / p)));
  }
  /** Position embeddings for an h x w patch grid, the two special tokens' rows kept (vit.ts positionEmbeddingsFor). */
  positionEmbeddingsFor(h: number, w: number): Tensor {
    return positionEmbeddingsFor(this.position_embeddings, 2, h, w);
  }
}

// ---- model ----

/** ViTModel with DeiT's embeddings; its config is DeiT's. lastHiddenState is (B, 2 + N, C): [CLS], [DIST], patches. */
export class DeiTModel extends ViTModel {
  constructor(override readonly config: DeiTConfig, opts: { addPoolingLayer?: boolean } = {}) {
    super(config, { ...opts, embeddings: new DeiTEmbeddings(config) });
  }

  /** Loads config.json and model.safetensors (DeiTModel keys, or `deit.`-prefixed with its heads). */
  static override fromPretrained(dir: string, opts: { strict?: boolean; addPoolingLayer?: boolean } = {}): PretrainedLoad<DeiTModel> {
    return loadPretrained(dir, deitConfig, (c) => new DeiTModel(c, { addPoolingLayer: opts.addPoolingLayer }), { prefixes: ['deit.'], strict: opts.strict });
  }
}
