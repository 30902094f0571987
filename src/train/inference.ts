// Evaluation and prediction from a checkpoint directory (written by the trainer): weights, labels, tokenizer and
// preprocessing all come from the directory.
import { existsSync } from 'node:fs';
import { MmtrainError } from '../errors.js';
import { readJsonFile } from '../files.js';
import { dirname, join, relative, resolve } from 'node:path';
import { DataLoader } from '../data/loader.js';
import { type Batch, disposeBatch } from '../data/collate.js';
import { imageConfig, type ImageConfig } from '../data/image.js';
import { type Sample, readManifest } from '../data/manifest.js';
import { TextTokenizer } from '../data/tokenizer.js';
import { isStreamSet, openDataset } from '../data/dataset.js';
import type { ColumnNames } from '../data/stream-types.js';
import { FusionClassifier, isHfExport } from '../models/fusion.js';
import * as F from '../tensor/functional.js';
import { autocast, noGrad } from '../tensor/modes.js';
import { autocastFor, deviceOf } from './precision.js';
import { tidy } from '../tensor/scope.js';
import { resolveDevice } from '../tensor/device.js';
import { readInferenceInfo, type InferenceInfo } from './checkpoint.js';
import type { EvalMetrics } from './metrics.js';
import { evaluateLoader } from './evaluate.js';

export interface Predictor {
  model: FusionClassifier;
  tokenizer: TextTokenizer;
  image: ImageConfig;
  info: InferenceInfo;
  dispose(): void;
}

/** Loads a checkpoint for inference on `device` (auto: the first GPU LibTorch sees, else the CPU). */
export function loadPredictor(checkpoint: string, opts: { device?: string } = {}): Predictor {
  const device = resolveDevice(opts.device ?? 'auto', 'device');
  // a Hugging Face export keeps mmtrain.json in fusion/, its tokenizer path relative to that folder
  const infoDir = isHfExport(checkpoint) ? join(checkpoint, 'fusion') : checkpoint;
  const info = readInferenceInfo(infoDir);
  const tokFile = join(infoDir, info.tokenizer);
  const tokenizer = /vocab\.txt$/.test(info.tokenizer) ? TextTokenizer.fromVocab(tokFile, { doLowerCase: info.doLowerCase }) : TextTokenizer.fromFile(tokFile);
  const model = FusionClassifier.fromPretrained(checkpoint).to(device).eval();
  return { model, tokenizer, image: imageConfig({ ...info.image }), info, dispose: () => model.dispose() };
}

/** How inference batches and computes: by default as the checkpoint's run did (its padding and precision). */
export interface InferenceOptions {
  batchSize?: number;
  precision?: 'fp32' | 'bf16' | 'fp16';
}

function loaderOptions(p: Predictor, opts: InferenceOptions) {
  return { batchSize: opts.batchSize ?? 64, shuffle: false, maxLength: p.info.maxLength, padding: p.info.padding ?? 'longest', device: deviceOf(p.model) } as const;
}

export interface Prediction {
  label: string;
  index: number;
  probabilities: Record<string, number>;
}

/**
 * Predictions for samples, in their order, through the same loader (decoding, tokenization, collation) as training
 * and evaluation use; labels, if the samples have them, are not read.
 */
export async function predictSamples(p: Predictor, samples: Sample[], opts: InferenceOptions = {}): Promise<Prediction[]> {
  const loader = new DataLoader(samples, p.tokenizer, p.image, { ...loaderOptions(p, opts), decodeThread: samples.length > 1 });
  const out: Prediction[] = new Array(samples.length);
  p.model.eval();
  for await (const b of loader.epoch(0)) {
    const preds = predictBatch(p, b, opts);
    disposeBatch(b);
    b.indices.forEach((s, i) => (out[s] = preds[i]!));
  }
  return out;
}

/** The predictions for one collated batch, in its order (the batch stays the caller's to free). */
export function predictBatch(p: Predictor, b: Batch, opts: Pick<InferenceOptions, 'precision'> = {}): Prediction[] {
  const cast = autocastFor(opts.precision ?? p.info.precision ?? 'fp32', deviceOf(p.model));
  const k = p.info.labels.length;
  const probs = noGrad(() => tidy(() => F.softmax(autocast(cast, () => p.model.forward(b)).logits.float(), -1).toNumbers()));
  return b.indices.map((_, i) => {
    const row = probs.slice(i * k, (i + 1) * k);
    const index = row.indexOf(Math.max(...row));
    return { label: p.info.labels[index]!, index, probabilities: Object.fromEntries(p.info.labels.map((l, j) => [l, row[j]!])) };
  });
}

/** Predicts labels for image-text pairs (image paths as given, relative to the working directory). */
export async function predict(p: Predictor, items: { image: string; text: string }[], opts: InferenceOptions = {}): Promise<Prediction[]> {
  return predictSamples(p, items.map((it, i) => ({ image: resolve(it.image), text: it.text, label: -1, where: `item ${i + 1}` })), opts);
}

/** Predictions for every line of a manifest (JSONL or CSV; labels optional), with each line's image and text. */
export async function predictManifest(p: Predictor, manifest: string, opts: InferenceOptions & { onBadSample?: 'error' | 'skip' } = {}): Promise<(Prediction & { image: string; text: string })[]> {
  const m = readManifest(manifest, { labels: p.info.labels, label: 'optional', onBadSample: opts.onBadSample });
  const base = dirname(m.file);
  const preds = await predictSamples(p, m.samples, opts);
  return m.samples.map((s, i) => ({ image: relative(base, s.image), text: s.text, ...preds[i]! }));
}

/** The columns the checkpoint's run read streamed data with (its train_config.json), for data given without them. */
function checkpointColumns(checkpoint: string): ColumnNames | undefined {
  const cfg = join(isHfExport(checkpoint) ? join(checkpoint, 'fusion') : checkpoint, 'train_config.json');
  return existsSync(cfg) ? readJsonFile<{ data?: { columns?: ColumnNames } }>(cfg).data?.columns : undefined;
}

/** A prediction for a sample of streamed data: its position in the data set, where it was read, its text. */
export interface StreamPrediction extends Prediction {
  /** the sample's position in the data set (files in order, rows or samples in order within each) */
  row: number;
  /** the file and row ("train-000000.parquet: row 12") or shard and sample key it was read from */
  source: string;
  text: string;
}

/**
 * Predictions for every sample of Parquet files or WebDataset shards (labels optional), in the data set's order,
 * handed to `onPrediction` batch by batch as they are made (the data is streamed, not held). Columns are as
 * given, else those the checkpoint's run read its data with.
 */
export async function predictStream(p: Predictor, checkpoint: string, data: string, onPrediction: (batch: StreamPrediction[]) => void, opts: InferenceOptions & { onBadSample?: 'error' | 'skip'; columns?: ColumnNames } = {}): Promise<{ predicted: number; skipped: number }> {
  const d = await openDataset('--data', data, { labels: p.info.labels, label: 'optional', onBadSample: opts.onBadSample, columns: opts.columns ?? checkpointColumns(checkpoint) });
  if (!isStreamSet(d)) throw new MmtrainError(`--data ${data}: a manifest; predict it with predictManifest`);
  const loader = new DataLoader(d, p.tokenizer, p.image, { ...loaderOptions(p, opts), onBadSample: opts.onBadSample, keepSamples: true });
  p.model.eval();
  let predicted = 0;
  for await (const b of loader.epoch(0)) {
    const preds = predictBatch(p, b, opts);
    disposeBatch(b);
    onPrediction(preds.map((pr, i) => ({ row: b.indices[i]!, source: b.samples![i]!.where, text: b.samples![i]!.text, ...pr })));
    predicted += preds.length;
  }
  return { predicted, skipped: loader.skipped.length };
}

/**
 * Metrics of a checkpoint on a data set: a manifest, or Parquet files / WebDataset shards streamed as training reads
 * them (labels mapped through the checkpoint's label list).
 */
export async function evaluate(checkpoint: string, data: string, opts: InferenceOptions & { onBadSample?: 'error' | 'skip'; device?: string; columns?: ColumnNames } = {}): Promise<EvalMetrics> {
  const p = loadPredictor(checkpoint, { device: opts.device });
  try {
    // streamed data's columns: as given, else as the checkpoint's run named them
    const d = await openDataset('--data', data, { labels: p.info.labels, onBadSample: opts.onBadSample, columns: opts.columns ?? checkpointColumns(checkpoint) });
    const loader = new DataLoader(isStreamSet(d) ? d : d.samples, p.tokenizer, p.image, { ...loaderOptions(p, opts), onBadSample: opts.onBadSample });
    return await evaluateLoader(p.model, loader, { precision: opts.precision ?? p.info.precision });
  } finally {
    p.dispose();
  }
}
