// The image-text fusion classifier: a BERT text encoder, a ViT image encoder, a fusion module and an MLP head
// (Linear(2C, 512) -> ReLU -> Dropout(0.1) -> Linear(512, num_labels)). Checkpoint keys: `text_encoder.*`,
// `image_encoder.*`, `fusion.*`, `classifier.*`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../errors.js';
import { Dropout, LayerNorm, Linear, Module, MultiheadAttention, ReLU, Sequential } from '../nn/index.js';
import { saveSafetensors } from '../tensor/safetensors.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, cat, rand, zerosLike } from '../tensor/tensor.js';
import { type Side, encoderConfigKind, hasClassToken, presetConfig, presetNames, summarisesLast, textWidth } from './encoder-configs.js';
import { createTower, loadTower } from './encoders.js';
import { type FusionConfig, type FusionConfigInput, fusionConfig, presetPair } from './fusion-config.js';
import { checkpointFile, checkpointStateDict, loadMapped, readConfigJson, type PretrainedLoad } from './loading.js';
import { loadSafetensors } from '../tensor/safetensors.js';
import type { ImageTower, TextTower, Tower } from './towers.js';
import { type ParameterRole, type TrainableModel, decayPredicate, encoderRoles } from './trainable.js';
import { parseConfig } from '../validation.js';
import { makeFolder, writeFileAtomic } from '../files.js';

// ---- config (./fusion-config.ts) ----

export {
  FUSION_PRESETS, FUSION_TYPES, fusionConfig, fusionPresetConfig, type FusionConfig, type FusionConfigInput, type FusionType,
} from './fusion-config.js';

// ---- inputs and outputs ----

export interface FusionInputs {
  /** (B, T) int64 token ids */
  inputIds: Tensor;
  /** (B, T) 1 for real tokens, 0 for padding */
  attentionMask: Tensor;
  tokenTypeIds?: Tensor | null;
  /** (B, 3, H, W) normalised images */
  pixelValues: Tensor;
}

export interface FusionFeatures {
  textHidden: Tensor;
  attentionMask: Tensor;
  imageHidden: Tensor;
  imagePooled: Tensor | null;
}

export interface FusionOutputs {
  /** (B, num_labels) */
  logits: Tensor;
  /** the vectors concatenated for the head: (B, C) each */
  textVector: Tensor;
  imageVector: Tensor;
  /** cross-attention weights averaged over heads, when asked: text->image (B, T, N) and image->text (B, N, T) */
  attention?: { textToImage: Tensor; imageToText: Tensor };
  /** each encoder's own pooled vector before any fusion (for unimodal probes), when asked: (B, C) and (B, Ci) */
  encoderVectors?: { text: Tensor; image: Tensor };
}

export interface ForwardOptions {
  /** return the cross-attention weights (slower: the fused attention kernel cannot return them) */
  returnAttention?: boolean;
  /** return each encoder's pooled vector before fusion */
  returnEncoderVectors?: boolean;
  /**
   * Modality dropout (training only): with this probability a sample loses one modality, chosen evenly, by zeroing
   * that modality's vector before the head, so the head cannot lean on one side alone.
   */
  modalityDropout?: number;
}

// ---- fusion blocks ----

/** Mean over real tokens only: padded positions never enter the text vector. */
export function maskedMean(h: Tensor, attentionMask: Tensor): Tensor {
  const m = attentionMask.to(h.dtype).unsqueeze(-1); // (B, T) -> (B, T, 1)
  return h.mul(m).sum(1).div(m.sum(1).clamp(1e-9)); // (B, T, C) -> (B, C)
}

/**
 * Sequence-level cross-attention: text tokens attend to image tokens and image tokens to text tokens, with two
 * separate attention modules (one per direction), key padding masks for text, residual + LayerNorm on each side.
 */
export class CrossAttentionFusion extends Module {
  readonly text_to_image: MultiheadAttention;
  readonly image_to_text: MultiheadAttention;
  readonly text_norm: LayerNorm;
  readonly image_norm: LayerNorm;
  constructor(readonly config: FusionConfig) {
    super();
    const C = textWidth(config.text_config);
    const opts = { batchFirst: true, dropout: config.fusion_attention_dropout };
    this.text_to_image = this.registerModule('text_to_image', new MultiheadAttention(C, config.fusion_num_heads, opts));
    this.image_to_text = this.registerModule('image_to_text', new MultiheadAttention(C, config.fusion_num_heads, opts));
    this.text_norm = this.registerModule('text_norm', new LayerNorm(C));
    this.image_norm = this.registerModule('image_norm', new LayerNorm(C));
  }
  forward(text: Tensor, image: Tensor, attentionMask: Tensor, needWeights: boolean) {
    const padding = attentionMask.eq(0); // (B, T) true at padding
    const t = this.text_to_image.forward(text, image, image, { needWeights });
    const i = this.image_to_text.forward(image, text, text, { keyPaddingMask: padding, needWeights });
    return {
      text: this.text_norm.forward(text.add(t.output)), // (B, T, C)
      image: this.image_norm.forward(image.add(i.output)), // (B, N, C)
      weights: needWeights ? { textToImage: t.weights!, imageToText: i.weights! } : undefined,
    };
  }
}

/**
 * The original design's single-vector form: the text [CLS] vector attends to the image pooler vector and back,
 * each unsqueezed to a sequence of length 1, with one module per direction. Attention over a single key is a
 * fixed linear map — the softmax over one key is always 1 — so each direction is out_proj(W_v x) of the other
 * side's vector and no token-level interaction happens. Kept for comparison studies; `cross-attention` is the
 * default for that reason.
 */
export class ClsCrossAttentionFusion extends Module {
  readonly text_to_image: MultiheadAttention;
  readonly image_to_text: MultiheadAttention;
  constructor(readonly config: FusionConfig) {
    super();
    const C = textWidth(config.text_config);
    const opts = { batchFirst: true, dropout: config.fusion_attention_dropout };
    this.text_to_image = this.registerModule('text_to_image', new MultiheadAttention(C, config.fusion_num_heads, opts));
    this.image_to_text = this.registerModule('image_to_text', new MultiheadAttention(C, config.fusion_num_heads, opts));
  }
  forward(textCls: Tensor, imageVec: Tensor, needWeights: boolean) {
    const t = textCls.unsqueeze(1); // (B, C) -> (B, 1, C)
    const i = imageVec.unsqueeze(1);
    const a = this.text_to_image.forward(t, i, i, { needWeights });
    const b = this.image_to_text.forward(i, t, t, { needWeights });
    return { text: a.output.squeeze(1), image: b.output.squeeze(1), weights: needWeights ? { textToImage: a.weights!, imageToText: b.weights! } : undefined };
  }
}

/**
 * The original design exactly: the single-vector form with ONE attention module shared by both directions. The
 * same fixed-linear-map caveat as ClsCrossAttentionFusion applies.
 */
export class SharedClsCrossAttentionFusion extends Module {
  readonly cross_attention: MultiheadAttention;
  constructor(readonly config: FusionConfig) {
    super();
    const C = textWidth(config.text_config);
    this.cross_attention = this.registerModule('cross_attention', new MultiheadAttention(C, config.fusion_num_heads, { batchFirst: true, dropout: config.fusion_attention_dropout }));
  }
  forward(textCls: Tensor, imageVec: Tensor, needWeights: boolean) {
    const t = textCls.unsqueeze(1); // (B, C) -> (B, 1, C)
    const i = imageVec.unsqueeze(1);
    const a = this.cross_attention.forward(t, i, i, { needWeights });
    const b = this.cross_attention.forward(i, t, t, { needWeights });
    return { text: a.output.squeeze(1), image: b.output.squeeze(1), weights: needWeights ? { textToImage: a.weights!, imageToText: b.weights! } : undefined };
  }
}

// ---- model ----

/** A trainable parameter as the model describes it to a trainer (see FusionClassifier.parameterRoles). */
export type { ParameterRole } from './trainable.js';

export class FusionClassifier extends Module implements TrainableModel {
  readonly text_encoder: TextTower;
  readonly image_encoder: ImageTower;
  /** maps image features to the text width when the two encoders differ */
  readonly image_projection: Linear | null;
  readonly fusion: CrossAttentionFusion | ClsCrossAttentionFusion | SharedClsCrossAttentionFusion | null;
  readonly classifier: Sequential;

  constructor(readonly config: FusionConfig, encoders: { text?: TextTower; image?: ImageTower } = {}) {
    super();
    const C = textWidth(config.text_config);
    const Ci = config.image_config.hidden_size;
    this.text_encoder = this.registerModule('text_encoder', encoders.text ?? createTower('text', config.text_config));
    this.image_encoder = this.registerModule('image_encoder', encoders.image ?? createTower('image', config.image_config));
    this.image_projection = Ci !== C ? this.registerModule('image_projection', new Linear(Ci, C)) : null;
    switch (config.fusion_type) {
      case 'cross-attention': this.fusion = this.registerModule('fusion', new CrossAttentionFusion(config)); break;
      case 'cls-cross-attention': this.fusion = this.registerModule('fusion', new ClsCrossAttentionFusion(config)); break;
      case 'shared-cls-cross-attention': this.fusion = this.registerModule('fusion', new SharedClsCrossAttentionFusion(config)); break;
      default: this.fusion = null;
    }
    this.classifier = this.registerModule('classifier', new Sequential(
      new Linear(2 * C, config.head_hidden_size), new ReLU(), new Dropout(config.head_dropout), new Linear(config.head_hidden_size, config.num_labels),
    ));
    // Fusion and head keep PyTorch's default initialisation (xavier for attention, kaiming-uniform for Linear), as
    // the original design's nn.MultiheadAttention and nn.Linear do; only the encoders use Hugging Face's.
  }

  /**
   * What a trainer needs to know of each trainable parameter, so that it knows no encoder's key names: its role
   * (learning-rate group), its depth in its encoder for layer-wise decay (BEiT/ELECTRA convention: embeddings 0,
   * layer i at i + 1, pooler and final norm at L + 1, of L + 2 depths), and whether weight decay applies (not to
   * biases, norms, nor ViT's class token and position embeddings, as timm's no_weight_decay).
   */
  parameterRoles(): ParameterRole[] {
    const decays = decayPredicate(this);
    const out: ParameterRole[] = [
      ...encoderRoles('text_encoder', this.text_encoder, 'text_encoder', decays),
      ...encoderRoles('image_encoder', this.image_encoder, 'image_encoder', decays),
    ];
    for (const [n, p] of this.namedParameters()) {
      if (!p.requiresGrad || n.startsWith('text_encoder.') || n.startsWith('image_encoder.')) continue;
      out.push({ name: n, param: p, role: n.startsWith('classifier.') ? 'classifier' : 'fusion', depth: null, weightDecay: decays(n, p) });
    }
    return out;
  }

  forward(x: FusionInputs, opts: ForwardOptions = {}): FusionOutputs {
    // Scopes free each encoder's intermediates (masks, views) as it returns; the encoders scope their layers too.
    const text = tidy(() => this.text_encoder.forward(x.inputIds, x.attentionMask, x.tokenTypeIds ?? null));
    const image = tidy(() => this.image_encoder.forward(x.pixelValues));
    return this.forwardFeatures({
      textHidden: text.lastHiddenState, attentionMask: x.attentionMask, imageHidden: image.lastHiddenState,
      imagePooled: image.poolerOutput,
    }, opts);
  }

  /**
   * Fusion and head over encoder outputs: what the trainer's feature cache feeds when both encoders are frozen.
   * textHidden (B, T, C), attentionMask (B, T), imageHidden (B, N, Ci), imagePooled (B, Ci) or null.
   */
  forwardFeatures(x: FusionFeatures, opts: ForwardOptions = {}): FusionOutputs {
    const needWeights = opts.returnAttention ?? false;
    let encoderVectors: FusionOutputs['encoderVectors'];
    if (opts.returnEncoderVectors) {
      const cls = this.config.pooling === 'cls' || (this.fusion !== null && !(this.fusion instanceof CrossAttentionFusion));
      encoderVectors = {
        text: cls ? this.textSummary(x.textHidden, x.attentionMask) : maskedMean(x.textHidden, x.attentionMask), // (B, T, C) -> (B, C)
        image: cls ? x.imagePooled ?? this.imageSummary(x.imageHidden) : x.imageHidden.mean(1), // (B, N, Ci) -> (B, Ci)
      };
    }
    const project = (t: Tensor) => (this.image_projection ? this.image_projection.forward(t) : t);
    let textVector: Tensor;
    let imageVector: Tensor;
    let attention: FusionOutputs['attention'];
    const f = this.fusion;
    if (f instanceof CrossAttentionFusion) {
      const r = tidy(() => f.forward(x.textHidden, project(x.imageHidden), x.attentionMask, needWeights)); // frees its intermediates
      textVector = this.config.pooling === 'cls' ? this.textSummary(r.text, x.attentionMask) : maskedMean(r.text, x.attentionMask);
      imageVector = this.config.pooling === 'cls' ? this.imageSummary(r.image) : r.image.mean(1);
      attention = r.weights;
    } else if (f) {
      // The original reads the text [CLS] state and the image pooler output.
      const imageVec = project(x.imagePooled ?? this.imageSummary(x.imageHidden));
      const r = f.forward(this.textSummary(x.textHidden, x.attentionMask), imageVec, needWeights);
      textVector = r.text;
      imageVector = r.image;
      attention = r.weights;
    } else {
      const img = project(x.imageHidden);
      textVector = this.config.pooling === 'cls' ? this.textSummary(x.textHidden, x.attentionMask) : maskedMean(x.textHidden, x.attentionMask);
      imageVector = this.config.pooling === 'cls' ? this.imageSummary(img) : img.mean(1);
    }
    const p = opts.modalityDropout ?? 0;
    if (p > 0 && this.training) {
      const B = textVector.size(0);
      const drop = rand([B, 1], { device: textVector.device }).lt(p); // (B, 1): this sample loses a modality
      const side = rand([B, 1], { device: textVector.device }).lt(0.5); // which one: text when true
      textVector = textVector.mul(drop.logicalAnd(side).logicalNot().to(textVector.dtype));
      imageVector = imageVector.mul(drop.logicalAnd(side.logicalNot()).logicalNot().to(imageVector.dtype));
    }
    const logits = this.classifier.forward(cat([textVector, imageVector], 1)); // (B, 2C) -> (B, num_labels)
    return { logits, textVector, imageVector, attention, encoderVectors };
  }

  /**
   * The text's one-vector summary that the "cls" paths read: the first token ([CLS]), or for CLIP's causal text
   * tower the end-of-text token, its last real one (the only state that has seen the whole text), and for SigLIP's
   * the last real token too (its own head reads the last position).
   * (B, T, C) states and the (B, T) mask -> (B, C).
   */
  textSummary(h: Tensor, attentionMask: Tensor): Tensor {
    if (!summarisesLast(this.config.text_config)) return h.select(1, 0);
    const [B, , C] = h.shape as [number, number, number];
    const last = attentionMask.sum(1).sub(1).clamp(0).to('int64'); // (B,)
    return h.gather(1, last.view(B, 1, 1).expand(B, 1, C)).squeeze(1); // (B, 1, C) -> (B, C)
  }

  /** The image tokens' one-vector summary for the "cls" paths: the class token, or their mean without one (SigLIP). (B, N, C) -> (B, C) */
  imageSummary(h: Tensor): Tensor {
    return hasClassToken(this.config.image_config) ? h.select(1, 0) : h.mean(1);
  }

  /**
   * Each modality's share of the logits, as OGM-GE defines it for a head over concatenated features: the head
   * applied to one modality's vector with the other's half of the input zeroed (its slice of the first layer, the
   * first bias, then the rest of the head; dropout off). (B, C) each -> (B, num_labels) each.
   */
  unimodalLogits(textVector: Tensor, imageVector: Tensor): { text: Tensor; image: Tensor } {
    const first = this.classifier.layers[0] as Linear;
    const last = this.classifier.layers[3] as Linear;
    const head = (v: Tensor) => last.forward(first.forward(v).relu());
    return {
      text: head(cat([textVector, zerosLike(imageVector)], 1)), // (B, 2C) with the image half zero
      image: head(cat([zerosLike(textVector), imageVector], 1)),
    };
  }

  /** Groups of parameters by role, for learning rates, diagnostics and freezing. */
  parameterGroups(): { text_encoder: Tensor[]; image_encoder: Tensor[]; fusion: Tensor[]; classifier: Tensor[] } {
    return {
      text_encoder: this.text_encoder.parameters(),
      image_encoder: this.image_encoder.parameters(),
      fusion: [...(this.fusion?.parameters() ?? []), ...(this.image_projection?.parameters() ?? [])],
      classifier: this.classifier.parameters(),
    };
  }

  /**
   * Freezes an encoder: all of it, or its embeddings and lower `layers` layers (the layers nearest the input).
   */
  freeze(which: 'text' | 'image', opts: { layers?: number } = {}): void {
    const enc = which === 'text' ? this.text_encoder : which === 'image' ? this.image_encoder : invalid('which', '"text" or "image"', which);
    const { embeddings, layers } = enc.stages();
    const n = layers.length;
    if (opts.layers === undefined) {
      enc.requiresGrad_(false);
      return;
    }
    if (!Number.isInteger(opts.layers) || opts.layers < 0 || opts.layers > n) invalid('layers', `an integer in [0, ${n}]`, opts.layers);
    embeddings.requiresGrad_(false);
    for (let i = 0; i < opts.layers; i++) layers[i]!.requiresGrad_(false);
  }

  /** Makes every parameter of an encoder trainable again. */
  unfreeze(which: 'text' | 'image'): void {
    const enc = which === 'text' ? this.text_encoder : which === 'image' ? this.image_encoder : invalid('which', '"text" or "image"', which);
    enc.requiresGrad_(true);
  }

  /** Writes config.json and model.safetensors (each atomically) into dir. */
  save(dir: string): void {
    makeFolder(dir);
    writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify({ ...this.config, mmtrain_version: '0.1.0' }, null, 2)}\n`);
    saveSafetensors(join(dir, 'model.safetensors'), this.stateDict(), { format: 'pt', model_type: 'mmtrain-fusion' });
  }

  /** Loads a directory written by save(); every key must match (a different architecture is refused). */
  /**
   * Loads a model directory (a checkpoint: config.json + model.safetensors), or a Hugging Face export of one
   * (`mmtrain export --format hf`: text_encoder/, image_encoder/ and fusion/ folders).
   */
  static fromPretrained(dir: string): FusionClassifier {
    const exported = isHfExport(dir);
    const configDir = exported ? join(dir, 'fusion') : dir;
    const raw = readConfigJson(configDir);
    delete raw.mmtrain_version;
    const model = new FusionClassifier(fusionConfig(raw as FusionConfigInput, `${configDir}/config.json`));
    try {
      if (!exported) {
        checkpointStateDict(model, dir, { strict: true });
      } else {
        // the three folders' tensors under the whole model's names
        const parts: [string, string][] = [['fusion', ''], ...HF_EXPORT_ENCODERS.map((e): [string, string] => [e, `${e}.`])];
        const all = new Map<string, Tensor>();
        const loaded: Map<string, Tensor>[] = [];
        try {
          for (const [sub, prefix] of parts) {
            const { tensors } = loadSafetensors(checkpointFile(join(dir, sub)));
            loaded.push(tensors);
            for (const [k, t] of tensors) all.set(prefix + k, t);
          }
          loadMapped(model, all, `${dir}/{fusion,text_encoder,image_encoder}/model.safetensors`, { strict: true });
        } finally {
          for (const m of loaded) for (const t of m.values()) t.dispose();
        }
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }
}

/** Each parameter of an encoder's stages by depth: its embeddings 0, layer i at i + 1 (the rest: after the layers). */
/** The encoders a Hugging Face export gives folders of their own; each folder holds its module's `<name>.` subtree. */
export const HF_EXPORT_ENCODERS = ['text_encoder', 'image_encoder'] as const;

/** A Hugging Face export of a fusion model (mmtrain export --format hf): fusion/config.json and no config.json. */
export function isHfExport(dir: string): boolean {
  return !existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'fusion', 'config.json'));
}

export interface EncoderSpec {
  /** a preset name (bert-tiny ... bert-large, vit-tiny ... vit-large) with optional config overrides */
  preset?: string;
  config?: Record<string, unknown>;
  /** a local Hugging Face-style directory (config.json + model.safetensors) */
  pretrained?: string;
}

export interface CreateFusionOptions extends Omit<FusionConfigInput, 'text_config' | 'image_config'> {
  /** a fusion preset (tiny, mini, small, medium, base, large) for both encoders */
  preset?: string;
  text?: EncoderSpec;
  image?: EncoderSpec;
}

/** Builds a fusion classifier from presets and/or local pretrained encoders; reports what loading skipped. */
export function createFusionModel(opts: CreateFusionOptions = {}): PretrainedLoad<FusionClassifier> {
  const { preset, text, image, ...rest } = opts;
  const pair = presetPair(preset);
  const report = { missing: [] as string[], unexpected: [] as string[], mismatched: [] as { key: string; expected: number[]; received: number[] }[] };
  // each encoder: a local pretrained one as it is (its class from the folder's model_type, its loading report
  // prefixed with its place in the fusion model), or a preset (of any architecture) with the user's overrides
  const encoder = <T extends Tower>(side: Side, spec: EncoderSpec | undefined, defaultPreset: string): { model?: T; config: Record<string, unknown> } => {
    if (spec?.pretrained) {
      const r = (side === 'text' ? loadTower('text', spec.pretrained) : loadTower('image', spec.pretrained)) as unknown as PretrainedLoad<T>;
      report.missing.push(...r.report.missing.map((k) => `${side}_encoder.${k}`));
      report.unexpected.push(...r.report.unexpected.map((k) => `${side}_encoder.${k}`));
      return { model: r.model, config: r.model.config };
    }
    const name = spec?.preset ?? defaultPreset;
    const base = presetConfig(side, name);
    if (!base) invalid(`${side}.preset`, `one of ${presetNames(side).join(', ')}`, name);
    const kind = encoderConfigKind(side, base);
    return { config: { ...base, ...(parseConfig(kind.overrides, spec?.config ?? {}, `${side}.config`) as Record<string, unknown>) } };
  };
  const t = encoder<TextTower>('text', text, pair.text);
  const i = encoder<ImageTower>('image', image, pair.image);
  const config = fusionConfig({ ...rest, text_config: t.config as FusionConfigInput['text_config'], image_config: i.config as FusionConfigInput['image_config'] });
  return { model: new FusionClassifier(config, { text: t.model, image: i.model }), report };
}
