// BERT's masked language modelling objective as Hugging Face's BertForMaskedLM computes it: BertModel without the
// pooler, then cls.predictions: a dense + activation + LayerNorm transform and a decoder onto the vocabulary whose
// weight IS the word embedding table (tied: no parameter of its own) plus a bias of its own. The loss is the mean
// cross-entropy over the positions whose label is not -100; the head runs on those positions alone. Module paths
// equal Hugging Face's keys (`bert.encoder.layer.0...`, `cls.predictions.transform.dense.weight`), so the folder
// save() writes is a BertForMaskedLM checkpoint, and loadTower('text', dir) reads its encoder.
import { join } from 'node:path';
import { invalid } from '../errors.js';
import { makeFolder, writeFileAtomic } from '../files.js';
import { LayerNorm, Linear, Module } from '../nn/index.js';
import { loadSafetensors, saveSafetensors } from '../tensor/safetensors.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../tensor/functional.js';
import { Tensor, zeros } from '../tensor/tensor.js';
import { BertModel, initBertWeights } from './bert.js';
import { type BertConfig, bertConfig } from './bert-config.js';
import { type PretrainedLoad, checkpointFile, loadMapped, readConfigJson } from './loading.js';
import { type ParameterRole, type TrainableModel, decayPredicate, encoderRoles } from './trainable.js';

// Copied from activation (src/models/bert.ts)
function activation(x: Tensor, act: BertConfig['hidden_act']): Tensor {
  if (act === 'relu') return x.relu();
  return x.gelu(act === 'gelu' ? 'none' : 'tanh'); // "gelu" is the exact erf form in BERT
}

// ---- blocks ----

/** dense, activation, LayerNorm: the hidden state made ready for the vocabulary projection. */
export class BertPredictionHeadTransform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(readonly config: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
  forward(h: Tensor): Tensor {
    return this.LayerNorm.forward(activation(this.dense.forward(h), this.config.hidden_act));
  }
}

/** The transform, then the tied decoder: logits = transform(h) E^T + bias, E the word embeddings (V, C). */
export class BertLMPredictionHead extends Module {
  readonly transform: BertPredictionHeadTransform;
  readonly bias: Tensor;
  constructor(config: BertConfig) {
    super();
    this.transform = this.registerModule('transform', new BertPredictionHeadTransform(config));
    this.bias = this.registerParameter('bias', zeros([config.vocab_size]));
  }
  /** h (..., C), wordEmbeddings (V, C) -> logits (..., V) */
  forward(h: Tensor, wordEmbeddings: Tensor): Tensor {
    return F.linear(this.transform.forward(h), wordEmbeddings, this.bias);
  }
}

export class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;
  constructor(config: BertConfig) {
    super();
    this.predictions = this.registerModule('predictions', new BertLMPredictionHead(config));
  }
  forward(h: Tensor, wordEmbeddings: Tensor): Tensor {
    return this.predictions.forward(h, wordEmbeddings);
  }
}

// ---- model ----

export interface MaskedLMOutputs {
  /** mean cross-entropy over the predicted positions (a scalar), or null without labels */
  loss: Tensor | null;
  /** (M, V) for the M predicted positions with labels; (B, T, V) without */
  logits: Tensor;
  /** (M,) int64: the labels of those positions, or null without labels */
  labels: Tensor | null;
  /** (B, T, C): the encoder's last hidden state */
  hidden: Tensor;
}

/** HF's label for positions that are not predicted (CrossEntropyLoss's ignore_index). */
const IGNORE_LABEL = -100;
/** Keys of a hub checkpoint that are the tied tensors again (word embeddings, cls.predictions.bias): not loaded. */
const TIED_OR_BUFFER_KEYS = /^cls\.predictions\.decoder\.(weight|bias)$|(^|\.)position_ids$/;
/** The root modules of a plain BertModel checkpoint, whose keys lack the `bert.` prefix. */
const BERT_MODEL_ROOTS = /^(embeddings|encoder|pooler)\./;

export class BertForMaskedLM extends Module implements TrainableModel {
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;

  constructor(readonly config: BertConfig) {
    super();
    this.bert = this.registerModule('bert', new BertModel(config, { addPoolingLayer: false }));
    this.cls = this.registerModule('cls', new BertOnlyMLMHead(config));
    initBertWeights(this.cls, config); // the transform as Hugging Face initialises it; the decoder bias stays zero
  }

  /** The tied decoder weight: the word embedding table (V, C). */
  get decoderWeight(): Tensor {
    return this.bert.embeddings.word_embeddings.weight;
  }

  /**
   * inputIds (B, T) int64; attentionMask (B, T) 1 for real tokens or null; tokenTypeIds (B, T) or null; labels
   * (B, T) int64 with -100 at positions not predicted. With labels: loss = mean cross-entropy over the predicted
   * positions, logits (M, V) for those M positions only (the head runs on them alone) and their labels (M,);
   * without: logits (B, T, V).
   */
  forward(inputIds: Tensor, attentionMask: Tensor | null, tokenTypeIds: Tensor | null, labels: Tensor | null): MaskedLMOutputs {
    if (labels && (labels.ndim !== 2 || inputIds.ndim !== 2 || labels.size(0) !== inputIds.size(0) || labels.size(1) !== inputIds.size(1))) {
      invalid('labels', `shape [${inputIds.shape.join(', ')}] like inputIds`, `shape [${labels.shape.join(', ')}]`);
    }
    if (labels && labels.dtype !== 'int64' && labels.dtype !== 'int32') invalid('labels', 'an int64 tensor of token ids (-100 where not predicted)', `dtype ${labels.dtype}`);
    const hidden = this.bert.forward(inputIds, attentionMask, tokenTypeIds).lastHiddenState; // (B, T, C)
    if (!labels) return { loss: null, logits: tidy(() => this.cls.forward(hidden, this.decoderWeight)), labels: null, hidden }; // (B, T, V)
    return tidy(() => {
      const [B, T, C] = hidden.shape as [number, number, number];
      const flat = labels.reshape(B * T); // (B, T) -> (B*T,)
      const predicted = flat.ne(IGNORE_LABEL); // (B*T,) bool
      const h = hidden.reshape(B * T, C).index(predicted); // (B, T, C) -> (B*T, C) -> (M, C)
      const y = flat.index(predicted).long(); // (M,)
      const logits = this.cls.forward(h, this.decoderWeight); // (M, V)
      const loss = F.crossEntropy(logits, y); // mean over the M positions (NaN when M = 0, as Hugging Face's)
      return { loss, logits, labels: y, hidden };
    });
  }

  /** bert.* as the text encoder (depths for layer-wise decay), cls.* as the head. */
  parameterRoles(): ParameterRole[] {
    const decays = decayPredicate(this);
    const roles = encoderRoles('bert', this.bert, 'text_encoder', decays);
    for (const [n, p] of this.cls.namedParameters('cls')) {
      if (p.requiresGrad) roles.push({ name: n, param: p, role: 'classifier', depth: null, weightDecay: decays(n, p) });
    }
    return roles;
  }

  /** Writes config.json (a BertForMaskedLM config) and model.safetensors (Hugging Face's keys), each atomically. */
  save(dir: string): void {
    makeFolder(dir);
    writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify({ architectures: ['BertForMaskedLM'], ...this.config, model_type: 'bert' }, null, 2)}\n`);
    saveSafetensors(join(dir, 'model.safetensors'), this.stateDict(), { format: 'pt' });
  }

  /**
   * Loads a BertForMaskedLM folder (this class's save(), or a hub checkpoint whose tied `cls.predictions.decoder.*`
   * copies are skipped), or a plain BertModel / BertForPreTraining folder: keys the checkpoint lacks (the MLM head
   * of a BertModel) are reported missing and keep their initialisation unless strict; keys it has that this model
   * does not use (the pooler, NSP head) are reported unexpected.
   */
  static fromPretrained(dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<BertForMaskedLM> {
    const model = new BertForMaskedLM(bertConfig(readConfigJson(dir) as never, `${dir}/config.json`));
    try {
      const file = checkpointFile(dir);
      const { tensors } = loadSafetensors(file);
      try {
        // a plain BertModel's keys (embeddings.*, encoder.*, pooler.*) under this model's `bert.` prefix
        const named = new Map([...tensors].map(([k, t]) => [BERT_MODEL_ROOTS.test(k) ? `bert.${k}` : k, t]));
        return { model, report: loadMapped(model, named, file, { strict: opts.strict, ignore: TIED_OR_BUFFER_KEYS }) };
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
}
