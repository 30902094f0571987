// SimMIM (Xie et al. 2022) masked image modelling as Hugging Face's ViTForMaskedImageModeling computes it: ViTModel
// without the pooler whose embeddings replace the masked patches' embeddings by a learned mask token (before the
// class token and position embeddings are added), then a 1x1 convolution from each patch token to its patch's
// pixels (patch_size^2 * num_channels values) and a pixel shuffle back to the image. The loss is the L1 error over
// the masked patches' pixels. Module paths equal Hugging Face's keys (`vit.embeddings.mask_token`,
// `decoder.0.weight`), so the folder save() writes is a ViTForMaskedImageModeling checkpoint and
// loadTower('image', dir) reads its encoder.
import { join } from 'node:path';
import { MmtrainError, invalid } from '../errors.js';
import { makeFolder, writeFileAtomic } from '../files.js';
import { Conv2d, Module, Sequential, type UnaryModule } from '../nn/index.js';
import { loadSafetensors, saveSafetensors } from '../tensor/safetensors.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, cat, zeros } from '../tensor/tensor.js';
import { ViTEmbeddings, ViTModel, initViTWeights } from './vit.js';
import { type ViTConfig, vitConfig } from './vit-config.js';
import { type PretrainedLoad, checkpointFile, loadMapped, readConfigJson } from './loading.js';
import { type ParameterRole, type TrainableModel, decayPredicate, encoderRoles } from './trainable.js';

// ---- blocks ----

/** ViT's embeddings with a mask token (1, 1, C) (zeros, as Hugging Face initialises it) for masked patches. */
export class MaskedViTEmbeddings extends ViTEmbeddings {
  readonly mask_token: Tensor;
  constructor(config: ViTConfig) {
    super(config);
    this.mask_token = this.registerParameter('mask_token', zeros([1, 1, config.hidden_size]));
  }
  override forward(pixels: Tensor): Tensor {
    return this.forwardMasked(pixels, null);
  }
  // Adapted from ViTEmbeddings (src/models/vit.ts): masked patches' embeddings replaced by the mask token
  /** pixels (B, ch, H, W); boolMaskedPos (B, N) 1 where the patch is masked, or null. Returns (B, 1 + N, C). */
  forwardMasked(pixels: Tensor, boolMaskedPos: Tensor | null): Tensor {
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    const p = this.config.patch_size;
    if (H % p || W % p) {
      throw new MmtrainError(`ViT: image size ${H}x${W} is not a multiple of patch_size ${p}: resize images to a multiple of ${p}`);
    }
    let patches = this.patch_embeddings.forward(pixels); // (B, N, C)
    const C = this.config.hidden_size;
    if (boolMaskedPos) {
      const N = patches.size(1);
      const m = boolMaskedPos.unsqueeze(-1).to(patches.dtype); // (B, N) -> (B, N, 1)
      // Hugging Face's blend: embeddings * (1 - mask) + mask_token * mask
      patches = patches.mul(m.rsub(1)).add(this.mask_token.expand(B, N, C).mul(m));
    }
    const h = cat([this.cls_token.expand(B, 1, C), patches], 1); // (B, 1 + N, C)
    return this.dropout.forward(h.add(this.positionEmbeddingsFor(H / p, W / p)));
  }
}

/** torch.nn.PixelShuffle: (B, ch * r * r, h, w) -> (B, ch, h * r, w * r). */
export class PixelShuffle extends Module implements UnaryModule {
  constructor(readonly upscaleFactor: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    const r = this.upscaleFactor;
    const [B, K, h, w] = x.shape as [number, number, number, number];
    const ch = K / (r * r);
    return x
      .view(B, ch, r, r, h, w) // (B, ch*r*r, h, w) -> (B, ch, r, r, h, w)
      .permute(0, 1, 4, 2, 5, 3) // -> (B, ch, h, r, w, r)
      .reshape(B, ch, h * r, w * r); // -> (B, ch, h*r, w*r)
  }
}

// ---- model ----

export interface MaskedImageModelingOutputs {
  /** the L1 error over the masked patches' pixels (a scalar), or null without a mask */
  loss: Tensor | null;
  /** (B, num_channels, H, W) */
  reconstruction: Tensor;
  /** (B, 1 + N, C): the encoder's last hidden state, [CLS] first */
  hidden: Tensor;
}

/** The root modules of a plain ViTModel checkpoint, whose keys lack the `vit.` prefix. */
const VIT_MODEL_ROOTS = /^(embeddings|encoder|layernorm|pooler)\./;

export class ViTForMaskedImageModeling extends Module implements TrainableModel {
  readonly vit: ViTModel;
  readonly decoder: Sequential;
  readonly #embeddings: MaskedViTEmbeddings;

  constructor(readonly config: ViTConfig) {
    super();
    this.#embeddings = new MaskedViTEmbeddings(config);
    this.vit = this.registerModule('vit', new ViTModel(config, { addPoolingLayer: false, embeddings: this.#embeddings }));
    const p = config.patch_size;
    this.decoder = this.registerModule('decoder', new Sequential(
      new Conv2d(config.hidden_size, p * p * config.num_channels, 1),
      new PixelShuffle(p),
    ));
    initViTWeights(this.decoder, config); // truncated normal weight, zero bias, as Hugging Face's Conv2d init
  }

  /**
   * pixelValues (B, num_channels, H, W), normalised; boolMaskedPos (B, N) 1 where the patch is masked (any int or
   * bool dtype; N = (H / patch_size) * (W / patch_size), row-major over the patch grid) or null (no loss).
   * `loss`: "l1" (SimMIM's and Hugging Face's, the default) or "mse" (MAE's squared error), each over the masked
   * pixels with Hugging Face's normalisation.
   */
  forward(pixelValues: Tensor, boolMaskedPos: Tensor | null, opts: { loss?: 'l1' | 'mse' } = {}): MaskedImageModelingOutputs {
    const { num_channels: ch, patch_size: p } = this.config;
    if (pixelValues.ndim !== 4 || pixelValues.size(1) !== ch) {
      invalid('pixelValues', `a (batch, ${ch}, height, width) tensor`, `shape [${pixelValues.shape.join(', ')}]`);
    }
    const [B, , H, W] = pixelValues.shape as [number, number, number, number];
    const [h, w] = [Math.floor(H / p), Math.floor(W / p)];
    if (boolMaskedPos && (boolMaskedPos.ndim !== 2 || boolMaskedPos.size(0) !== B || boolMaskedPos.size(1) !== h * w)) {
      invalid('boolMaskedPos', `shape [${B}, ${h * w}] (batch, patches)`, `shape [${boolMaskedPos.shape.join(', ')}]`);
    }
    // Adapted from ViTModel.forward (src/models/vit.ts): the embeddings take the patch mask
    let x = tidy(() => this.#embeddings.forwardMasked(pixelValues, boolMaskedPos).transpose(0, 1).contiguous()); // (B, T, C) -> (T, B, C)
    for (const layer of this.vit.encoder.layer) x = tidy(() => layer.forward(x));
    const hidden = this.vit.layernorm.forward(x).transpose(0, 1); // (T, B, C) -> (B, T, C)
    return tidy(() => {
      const C = hidden.size(2);
      const grid = hidden.slice(1, 1).permute(0, 2, 1).reshape(B, C, h, w); // (B, 1+N, C) -> (B, N, C) -> (B, C, N) -> (B, C, h, w)
      const reconstruction = this.decoder.forward(grid); // (B, C, h, w) -> (B, p*p*ch, h, w) -> (B, ch, H, W)
      if (!boolMaskedPos) return { loss: null, reconstruction, hidden };
      const mask = boolMaskedPos
        .to(pixelValues.dtype)
        .view(B, 1, h, 1, w, 1) // (B, N) -> (B, 1, h, 1, w, 1)
        .expand(B, 1, h, p, w, p) // -> (B, 1, h, p, w, p)
        .reshape(B, 1, H, W); // -> (B, 1, H, W): each patch's flag on its pixels
      const diff = pixelValues.sub(reconstruction); // (B, ch, H, W)
      const err = opts.loss === 'mse' ? diff.mul(diff) : diff.abs();
      const loss = err.mul(mask).sum().div(mask.sum().add(1e-5)).div(ch); // Hugging Face's normalisation
      return { loss, reconstruction, hidden };
    });
  }

  /** vit.* as the image encoder (depths for layer-wise decay), decoder.* as the head. */
  parameterRoles(): ParameterRole[] {
    const decays = decayPredicate(this);
    const roles = encoderRoles('vit', this.vit, 'image_encoder', decays);
    for (const [n, p] of this.decoder.namedParameters('decoder')) {
      if (p.requiresGrad) roles.push({ name: n, param: p, role: 'classifier', depth: null, weightDecay: decays(n, p) });
    }
    return roles;
  }

  /** Writes config.json (a ViTForMaskedImageModeling config) and model.safetensors (Hugging Face's keys), each atomically. */
  save(dir: string): void {
    makeFolder(dir);
    const config = { architectures: ['ViTForMaskedImageModeling'], ...this.config, model_type: 'vit', encoder_stride: this.config.patch_size };
    writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    saveSafetensors(join(dir, 'model.safetensors'), this.stateDict(), { format: 'pt' });
  }

  /**
   * Loads a ViTForMaskedImageModeling folder (this class's save() or Hugging Face's, with encoder_stride equal to
   * patch_size), or a plain ViTModel / ViTForImageClassification folder: keys the checkpoint lacks (the mask token,
   * the decoder) are reported missing and keep their initialisation unless strict; keys this model does not use
   * (the pooler, a classifier) are reported unexpected.
   */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<ViTForMaskedImageModeling> {
    const raw = readConfigJson(dir);
    const config = vitConfig(raw as never, `${dir}/config.json`);
    const stride = raw.encoder_stride;
    if (stride !== undefined && stride !== config.patch_size) {
      throw new MmtrainError(`${dir}/config.json: encoder_stride is ${String(stride)} but patch_size is ${config.patch_size}: ` +
        'ViTForMaskedImageModeling reconstructs one patch per token, so encoder_stride must equal patch_size');
    }
    const model = new ViTForMaskedImageModeling(config);
    try {
      const file = checkpointFile(dir);
      const { tensors } = loadSafetensors(file);
      try {
        // a plain ViTModel's keys (embeddings.*, encoder.*, layernorm.*, pooler.*) under this model's `vit.` prefix
        const named = new Map([...tensors].map(([k, t]) => [VIT_MODEL_ROOTS.test(k) ? `vit.${k}` : k, t]));
        return { model, report: loadMapped(model, named, file, { strict: opts.strict }) };
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
}
