// Evaluation and prediction from a checkpoint directory (written by the trainer): weights, labels, tokenizer and
// preprocessing all come from the directory.
import { join } from 'node:path';
import { DataLoader } from '../data/loader.js';
import { imageConfig, loadImage, type ImageConfig } from '../data/image.js';
import { imagesToTensor } from '../data/loader.js';
import { readManifest } from '../data/manifest.js';
import { TextTokenizer } from '../data/tokenizer.js';
import { FusionClassifier } from '../models/fusion.js';
import * as F from '../tensor/functional.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { tensor } from '../tensor/tensor.js';
import { readInferenceInfo, type InferenceInfo } from './checkpoint.js';
import type { EvalMetrics } from './metrics.js';
import { evaluateLoader } from './trainer.js';

export interface Predictor {
  model: FusionClassifier;
  tokenizer: TextTokenizer;
  image: ImageConfig;
  info: InferenceInfo;
  dispose(): void;
}

export function loadPredictor(checkpoint: string): Predictor {
  const info = readInferenceInfo(checkpoint);
  const tokFile = join(checkpoint, info.tokenizer);
  const tokenizer = info.tokenizer === 'vocab.txt' ? TextTokenizer.fromVocab(tokFile, { doLowerCase: info.doLowerCase }) : TextTokenizer.fromFile(tokFile);
  const model = FusionClassifier.fromPretrained(checkpoint).eval();
  return { model, tokenizer, image: imageConfig({ ...info.image }), info, dispose: () => model.dispose() };
}

export interface Prediction {
  label: string;
  index: number;
  probabilities: Record<string, number>;
}

/** Predicts labels for image-text pairs. */
export async function predict(p: Predictor, items: { image: string; text: string }[]): Promise<Prediction[]> {
  const images = await Promise.all(items.map((it) => loadImage(it.image, p.image)));
  const encs = items.map((it) => p.tokenizer.encode(it.text, p.info.maxLength));
  const T = Math.max(...encs.map((e) => e.ids.length));
  const B = items.length;
  const ids = new Int32Array(B * T).fill(p.tokenizer.padId);
  const mask = new Int32Array(B * T);
  encs.forEach((e, b) => e.ids.forEach((id, t) => {
    ids[b * T + t] = id;
    mask[b * T + t] = 1;
  }));
  const probs = noGrad(() => tidy(() => {
    const logits = p.model.forward({
      inputIds: tensor(ids, { shape: [B, T], dtype: 'int64' }), attentionMask: tensor(mask, { shape: [B, T], dtype: 'int64' }),
      pixelValues: imagesToTensor(images, p.image),
    }).logits;
    return F.softmax(logits, -1).toNumbers();
  }));
  const k = p.info.labels.length;
  return items.map((_, i) => {
    const row = probs.slice(i * k, (i + 1) * k);
    const index = row.indexOf(Math.max(...row));
    return { label: p.info.labels[index]!, index, probabilities: Object.fromEntries(p.info.labels.map((l, j) => [l, row[j]!])) };
  });
}

/** Metrics of a checkpoint on a manifest (labels mapped through the checkpoint's label list). */
export async function evaluate(checkpoint: string, manifest: string, opts: { batchSize?: number; onBadSample?: 'error' | 'skip' } = {}): Promise<EvalMetrics> {
  const p = loadPredictor(checkpoint);
  try {
    const m = readManifest(manifest, { labels: p.info.labels, onBadSample: opts.onBadSample });
    const loader = new DataLoader(m.samples, p.tokenizer, p.image, { batchSize: opts.batchSize ?? 64, shuffle: false, maxLength: p.info.maxLength, onBadSample: opts.onBadSample });
    return await evaluateLoader(p.model, loader);
  } finally {
    p.dispose();
  }
}
