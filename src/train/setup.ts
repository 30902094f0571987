// What a training run is made of, from its configuration: the data (manifests, labels, tokenizer), the model (its
// head sized by the labels), the image preprocessing (the model's own image size unless data.image.size says
// otherwise), the loaders with their image cache, and the inference settings saved with every checkpoint.
import { basename, join } from 'node:path';
import { type ProbeSet, collectBatches, disposeProbeSets } from '../diagnostics/encoder-probe.js';
import { ImageCache } from '../data/cache.js';
import { type ImageConfig, imageConfig } from '../data/image.js';
import { type Dataset, isStreamSet, openDataset } from '../data/dataset.js';
import { DataLoader } from '../data/loader.js';
import { TextTokenizer } from '../data/tokenizer.js';
import { MmtrainError } from '../errors.js';
import { type FusionClassifier, createFusionModel } from '../models/fusion.js';
import type { InferenceInfo } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { ProcessGroup } from './distributed.js';
import type { Device } from '../tensor/dtype.js';
import { BertForMaskedLM } from '../models/bert-mlm.js';
import { type BertConfig, bertConfig } from '../models/bert-config.js';
import { ViTForMaskedImageModeling } from '../models/vit-mim.js';
import { type ViTConfig, vitConfig } from '../models/vit-config.js';
import { presetConfig } from '../models/encoder-configs.js';
import { presetPair } from '../models/fusion-config.js';
import { readConfigJson } from '../models/loading.js';
import { classificationTask } from './classify-task.js';
import { mimTask, mlmTask } from './pretrain-task.js';
import type { TrainTask } from './task.js';

export interface RunData {
  train: Dataset;
  val: Dataset | null;
  test: Dataset | null;
  labels: string[];
  tokenizer: TextTokenizer;
}

/** Opens the data sets (val and test through train's label list) and the tokenizer. */
export async function readData(c: TrainConfig, print?: (line: string) => void): Promise<RunData> {
  // pretraining reads unlabelled data too, and text pretraining plain .txt files
  const common = { onBadSample: c.data.onBadSample, columns: c.data.columns, print, ...(c.pretrain ? { label: 'optional' as const, textCorpus: c.pretrain.modality === 'text' } : {}) };
  const train = await openDataset('data.train', c.data.train, { ...common, labels: c.data.labels });
  const labels = train.labels;
  // val and test share train's labels; pretraining ignores labels (its texts may be a .txt corpus without any)
  const read = async (field: string, p?: string): Promise<Dataset | null> => (p ? openDataset(field, p, { ...common, labels: c.pretrain ? undefined : labels }) : null);
  const [val, test] = [await read('data.val', c.data.val), await read('data.test', c.data.test)];
  const tokenizer = /\.txt$/i.test(c.data.tokenizer!) ? TextTokenizer.fromVocab(c.data.tokenizer!, { doLowerCase: c.data.doLowerCase }) : TextTokenizer.fromFile(c.data.tokenizer!);
  return { train, val, test, labels, tokenizer };
}

/** The configured model with a head for `numLabels` classes. */
export function buildModel(c: TrainConfig, numLabels: number): FusionClassifier {
  return createFusionModel({
    preset: c.model.preset, text: c.model.text, image: c.model.image, fusion_type: c.model.fusion_type, pooling: c.model.pooling,
    fusion_num_heads: c.model.fusion_num_heads, fusion_attention_dropout: c.model.fusion_attention_dropout,
    head_hidden_size: c.model.head_hidden_size, head_dropout: c.model.head_dropout, num_labels: numLabels,
  }).model;
}

/**
 * The tokenizer against the text encoder: ids past its vocabulary would fail inside the embedding lookup, and a
 * RoBERTa numbers positions by its padding id, which must be the tokenizer's.
 */
export function checkTokenizerFits(model: FusionClassifier, tokenizer: TextTokenizer): void {
  const tc = model.config.text_config;
  if (tokenizer.vocabSize > tc.vocab_size) {
    throw new MmtrainError(`data.tokenizer: ${tokenizer.source} has ${tokenizer.vocabSize} tokens but the text encoder's vocab_size is ${tc.vocab_size}: use the encoder's own tokenizer (its folder's tokenizer.json) or a preset with vocab_size ${tokenizer.vocabSize}`);
  }
  if (tc.model_type === 'roberta' && tokenizer.padId !== tc.pad_token_id) {
    throw new MmtrainError(`data.tokenizer: ${tokenizer.source} pads with id ${tokenizer.padId} but the RoBERTa encoder's pad_token_id is ${tc.pad_token_id} (its positions count from it): use RoBERTa's own tokenizer.json`);
  }
}

/** Image preprocessing for the model: data.image, at the image encoder's image_size unless data.image.size is set. */
export function imageFor(c: TrainConfig, model: FusionClassifier | { imageSize: number }): ImageConfig {
  const size = 'imageSize' in model ? model.imageSize : model.image_encoder.config.image_size;
  return imageConfig({ ...c.data.image, size: c.data.image.size ?? size });
}

/**
 * The run's task: the fusion classifier with a head for the data's labels, or (with `pretrain`) one encoder with its
 * pretraining head, from a preset with the config's overrides or from a local folder (continued pretraining).
 */
export function buildTask(c: TrainConfig, data: RunData): { task: TrainTask; imageSize: number } {
  if (!c.pretrain) {
    const model = buildModel(c, data.labels.length);
    return { task: classificationTask(c, model), imageSize: model.image_encoder.config.image_size };
  }
  const side = c.pretrain.modality;
  const spec = c.model[side];
  const preset = spec?.preset ?? (side === 'text' ? presetPair(c.model.preset).text : presetPair(c.model.preset).image);
  const base = spec?.pretrained ? readConfigJson(spec.pretrained) : { ...presetConfig(side, preset), ...spec?.config };
  const type = String(base.model_type ?? (side === 'text' ? 'bert' : 'vit'));
  const supported = side === 'text' ? 'bert' : 'vit';
  if (type !== supported) {
    throw new MmtrainError(`model.${side}: pretraining ${side === 'text' ? 'with masked language modelling' : 'with masked image modelling'} supports ${supported === 'bert' ? 'BERT' : 'ViT'} encoders (model_type ${supported}); ${spec?.pretrained ?? `preset ${preset}`} is model_type ${type}`);
  }
  if (side === 'text') {
    const model = spec?.pretrained ? BertForMaskedLM.fromPretrained(spec.pretrained).model : new BertForMaskedLM(bertConfig(base as Partial<BertConfig>, `model.text (${preset})`));
    if (data.tokenizer.vocabSize > model.config.vocab_size) {
      model.dispose();
      throw new MmtrainError(`data.tokenizer: ${data.tokenizer.source} has ${data.tokenizer.vocabSize} tokens but the text encoder's vocab_size is ${model.config.vocab_size}: use the encoder's own tokenizer or a preset with vocab_size ${data.tokenizer.vocabSize}`);
    }
    return { task: mlmTask(c, model, data.tokenizer), imageSize: c.data.image.size ?? 224 };
  }
  const model = spec?.pretrained ? ViTForMaskedImageModeling.fromPretrained(spec.pretrained).model : new ViTForMaskedImageModeling(vitConfig(base as Partial<ViTConfig>, `model.image (${preset})`));
  if (c.data.image.size !== undefined && c.data.image.size !== model.config.image_size) {
    model.dispose();
    throw new MmtrainError(`data.image.size: masked image modelling reconstructs the encoder's own image_size (${model.config.image_size}); received ${c.data.image.size} (remove it)`);
  }
  return { task: mimTask(c, model), imageSize: model.config.image_size };
}

export function augments(c: TrainConfig): boolean {
  const a = c.data.image.augment;
  return Boolean(a.randomResizedCrop || a.horizontalFlip > 0 || a.colorJitter);
}

export interface RunLoaders {
  train: DataLoader;
  /** this rank's share of val and test (rank r takes samples r, r + world, ...); null loader for an empty share */
  val: { loader: DataLoader | null } | null;
  test: { loader: DataLoader | null } | null;
  cache: ImageCache | null;
  /** an unshuffled loader over the training set (the frozen encoders' feature cache reads it once) */
  trainInOrder(): DataLoader;
}

export function makeLoaders(c: TrainConfig, data: RunData, image: ImageConfig, runDir: string, pg: ProcessGroup | null, device: Device = 'cpu'): RunLoaders {
  const augment = augments(c);
  // each rank keeps its own image cache folder: no two processes write the same file
  const cacheDir = c.data.cache === false ? null : c.data.cache === true ? join(runDir, 'cache') : c.data.cache;
  const cache = cacheDir === null ? null : new ImageCache(pg ? join(cacheDir, `rank-${pg.rank}`) : cacheDir, image);
  const common = {
    maxLength: c.data.maxLength, padding: c.data.padding, prefetch: c.data.prefetch, decodeThread: c.data.decodeThread, onBadSample: c.data.onBadSample, cache, device,
    readers: c.data.stream.readers, shuffleBuffer: c.data.stream.shuffleBuffer, keptBytes: Math.round(c.data.stream.keepMB * 2 ** 20), images: c.pretrain?.modality !== 'text',
  } as const;
  const source = (d: Dataset) => (isStreamSet(d) ? d : d.samples);
  const train = new DataLoader(source(data.train), data.tokenizer, image, {
    ...common, batchSize: c.train.batchSize, seed: c.seed, shuffle: true, bucketByLength: c.data.bucketByLength, augment, cache: augment ? null : cache,
    shard: pg ? { rank: pg.rank, worldSize: pg.worldSize } : null,
  });
  const evalShard = (m: Dataset | null) => {
    if (!m) return null;
    // a streamed set: each rank reads its own units, without keeping in step
    if (isStreamSet(m)) return { loader: new DataLoader(m, data.tokenizer, image, { ...common, batchSize: c.eval.batchSize, shuffle: false, shard: pg ? { rank: pg.rank, worldSize: pg.worldSize } : null, lockstep: false }) };
    const samples = pg ? m.samples.filter((_, i) => i % pg.worldSize === pg.rank) : m.samples;
    return { loader: samples.length ? new DataLoader(samples, data.tokenizer, image, { ...common, batchSize: c.eval.batchSize, shuffle: false }) : null };
  };
  return {
    train, val: evalShard(data.val), test: evalShard(data.test), cache,
    trainInOrder: () => new DataLoader(source(data.train), data.tokenizer, image, { ...common, batchSize: c.eval.batchSize, shuffle: false }),
  };
}

/** What a checkpoint needs for inference on its own: labels, tokenizer kind, text length and image preprocessing. */
export function inferenceInfo(c: TrainConfig, labels: string[], image: ImageConfig): InferenceInfo {
  return {
    labels, maxLength: c.data.maxLength, doLowerCase: c.data.doLowerCase, tokenizer: /\.txt$/i.test(c.data.tokenizer!) ? 'vocab.txt' : 'tokenizer.json',
    image: { size: image.size, resize: image.resize, resizeSize: image.resizeSize, resample: image.resample, mean: image.mean, std: image.std, maxPixels: image.maxPixels },
    padding: c.data.padding, precision: c.train.precision,
  };
}

/** The run's probe sets (diagnostics.probeSets): labelled manifests, collated once into memory. */
export async function readProbeSets(c: TrainConfig, data: RunData, image: ImageConfig, device: Device): Promise<ProbeSet[]> {
  const out: ProbeSet[] = [];
  try {
    for (const [i, { data: file, modality, name }] of c.diagnostics.probeSets.entries()) {
      const field = `diagnostics.probeSets[${i}].data`;
      const m = await openDataset(field, file, { onBadSample: c.data.onBadSample });
      if (isStreamSet(m)) throw new MmtrainError(`${field}: ${file} is streamed data; a probe set is a labelled manifest (.jsonl or .csv)`);
      if (m.labels.length < 2) throw new MmtrainError(`${field}: ${file} has ${m.labels.length} label; a probe needs at least 2`);
      const loader = new DataLoader(m.samples, data.tokenizer, image, {
        batchSize: c.eval.batchSize, shuffle: false, maxLength: c.data.maxLength, padding: c.data.padding, onBadSample: c.data.onBadSample, device,
        images: modality === 'image',
      });
      out.push({ name: name ?? basename(file).replace(/\.(jsonl|json|ndjson|csv)$/i, ''), modality, batches: await collectBatches(loader), numLabels: m.labels.length });
    }
  } catch (e) {
    disposeProbeSets(out); // the sets read before the one that failed
    throw e;
  }
  return out;
}
