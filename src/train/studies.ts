// Built-in studies, runnable with no data or download: `mmtrain study --builtin NAME`.
import type { StudyInput } from './study.js';

/** The tiny model both built-in studies train: 2 layers at width 64, 64px images with 16px patches (cheap per step). */
function tinyBase(epochs: number): Record<string, unknown> {
  const enc = { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.5 };
  return {
    model: {
      preset: 'tiny',
      text: { preset: 'bert-tiny', config: { ...enc, max_position_embeddings: 64 } },
      image: { preset: 'vit-tiny', config: { ...enc, image_size: 64, patch_size: 16 } },
      fusion_type: 'cross-attention', fusion_num_heads: 4, head_hidden_size: 128, head_dropout: 0,
    },
    data: { maxLength: 32, cache: true, image: { size: 64, resize: 'exact' } },
    train: { epochs, batchSize: 32, lr: 1e-3, schedule: { type: 'cosine', warmupRatio: 0.1 }, clipGradNorm: 1 },
    eval: { every: 'epoch', metric: 'accuracy' },
    checkpoint: { keepLast: 1, saveBest: false },
    diagnostics: { every: 20 },
    log: { every: 10, tensorboard: false },
  };
}

/** The tiny encoders at width 64 with Hugging Face's initialisation (initializer_range 0.02): what the finetune-regime study pretrains. */
function tinyEncoders(): { text: Record<string, unknown>; image: Record<string, unknown> } {
  const enc = { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
  return {
    text: { preset: 'bert-tiny', config: { ...enc, max_position_embeddings: 64 } },
    image: { preset: 'vit-tiny', config: { ...enc, image_size: 64, patch_size: 16 } },
  };
}

/**
 * The original design's regime: pretrained encoders fine-tuned jointly. Both encoders are pretrained first on a
 * corpus of the same synthetic world that holds none of the task's samples (masked language modelling on
 * captions, masked image modelling on images), then the matching task is fine-tuned from them with the original
 * recipe and corrected ones, 5 seeds each, with from-scratch encoders as the control. Probes of the task's
 * attributes (colour, shape) on each encoder at the start and end of every run show what fine-tuning keeps.
 */
function finetuneRegime(): StudyInput {
  const base = tinyBase(5) as Record<string, any>;
  const scratch = tinyEncoders();
  base.model = { ...base.model, text: { pretrained: '${study}/pretrained/text' }, image: { pretrained: '${study}/pretrained/image' } };
  base.train = { ...base.train, lr: 1e-4, schedule: { type: 'cosine', warmupRatio: 0.06 } };
  base.diagnostics = {
    ...base.diagnostics,
    probeSets: [
      ...['text', 'image'].flatMap((modality) => ['color', 'shape'].map((a) => ({ data: `\${data}/probe-${a}.jsonl`, modality, name: a }))),
      { data: '${data}/probe-binding.jsonl', modality: 'text', name: 'binding' },
    ],
  };
  const pretraining = { 'train.lr': 1e-3, 'train.batchSize': 64, 'train.schedule': { type: 'cosine', warmupRatio: 0.06 }, 'eval.metric': 'loss', 'diagnostics.probe': false, 'checkpoint.every': 'epoch' };
  return {
    name: 'finetune-regime',
    base,
    synth: { task: 'match', difficulty: 'easy', n: 4000, imageSize: 64, seed: 11 },
    corpus: { captions: 20000, images: 4000, seed: 5 },
    pretrain: [
      { name: 'text', modality: 'text', data: '${corpus}/captions.txt', val: '${data}/val.jsonl', set: { ...pretraining, 'model.text': scratch.text, 'data.maxLength': 64, 'train.epochs': 8 } },
      { name: 'image', modality: 'image', data: '${corpus}/images.jsonl', val: '${data}/val.jsonl', set: { ...pretraining, 'model.image': scratch.image, 'pretrain.imageLoss': 'mse', 'train.epochs': 12 } },
    ],
    seeds: [1, 2, 3, 4, 5],
    metric: 'accuracy',
    target: 0.7,
    reference: 'original',
    variants: [
      { name: 'original', set: { 'train.lr': 1e-5, 'train.schedule': { type: 'original' } } },
      { name: 'lr=1e-5,warmup=0', set: { 'train.lr': 1e-5, 'train.schedule.warmupRatio': 0 } },
      { name: 'lr=1e-5,warmup=0.06', set: { 'train.lr': 1e-5 } },
      { name: 'lr=1e-5,warmup=0.1', set: { 'train.lr': 1e-5, 'train.schedule.warmupRatio': 0.1 } },
      { name: 'lr=3e-5', set: { 'train.lr': 3e-5 } },
      { name: 'lr=1e-4', set: {} },
      { name: 'lr=1e-4,layer-decay=0.75', set: { 'train.layerDecay': 0.75 } },
      { name: 'lr=1e-4,frozen-first-epoch', set: { 'model.freeze': { text: true, image: true, untilEpoch: 1 } } },
      { name: 'lr=1e-3', set: { 'train.lr': 1e-3 } },
      { name: 'lr=1e-3,encoder-lr=1e-4', set: { 'train.lr': 1e-3, 'train.encoderLr': 1e-4 } },
      { name: 'scratch,lr=1e-4', set: { 'model.text': scratch.text, 'model.image': scratch.image } },
      { name: 'scratch,lr=1e-3', set: { 'model.text': scratch.text, 'model.image': scratch.image, 'train.lr': 1e-3 } },
      { name: 'scratch,lr=1e-3,encoder-lr=1e-4', set: { 'model.text': scratch.text, 'model.image': scratch.image, 'train.lr': 1e-3, 'train.encoderLr': 1e-4 } },
    ],
  };
}

export const BUILTIN_STUDIES: Record<string, () => StudyInput> = {
  /**
   * The original design's training choices, one factor at a time around a baseline that fixes them (cross-attention
   * over tokens, warmup + cosine stepped per step, clipping at 1.0, lr 1e-3), on the synthetic matching task.
   */
  'original-design-ablation': () => ({
    name: 'original-design-ablation',
    base: tinyBase(8),
    synth: { task: 'match', difficulty: 'easy', n: 4000, imageSize: 64, seed: 11 },
    seeds: [1, 2, 3],
    metric: 'accuracy',
    target: 0.7,
    variants: [
      { name: 'baseline', set: {} },
      { name: 'schedule=original', set: { 'train.schedule': { type: 'original' } } },
      { name: 'warmup=none', set: { 'train.schedule.warmupRatio': 0 } },
      { name: 'clip=none', set: { 'train.clipGradNorm': null } },
      { name: 'fusion=cls-cross-attention', set: { 'model.fusion_type': 'cls-cross-attention' } },
      { name: 'fusion=shared-cls-cross-attention', set: { 'model.fusion_type': 'shared-cls-cross-attention' } },
      { name: 'fusion=concat', set: { 'model.fusion_type': 'concat' } },
      { name: 'lr=1e-5', set: { 'train.lr': 1e-5 } },
      { name: 'lr=5e-5', set: { 'train.lr': 5e-5 } },
      { name: 'lr=1e-4', set: { 'train.lr': 1e-4 } },
    ],
  }),
  /** The `imbalanced` task (text alone predicts most labels, the image the rest) with and without OGM-GE. */
  'modality-balance': () => ({
    name: 'modality-balance',
    base: tinyBase(8),
    synth: { task: 'imbalanced', difficulty: 'easy', n: 4000, imageSize: 64, seed: 12 },
    seeds: [1, 2, 3],
    metric: 'accuracy',
    variants: [
      { name: 'none', set: {} },
      { name: 'ogm-ge', set: { 'balance.method': 'ogm-ge' } },
      { name: 'modality-dropout', set: { 'balance.modalityDropout': 0.3 } },
    ],
  }),
  'finetune-regime': finetuneRegime,
};
