// `mmtrain probe`: the linear-probe accuracy of one encoder of a model folder on a labelled manifest. The folder is a
// fusion checkpoint (its text_encoder / image_encoder), or an encoder's own (a pretraining's output, a Hugging
// Face BertModel / ViTModel folder). Its tokenizer and image preprocessing come from the folder when it has them.
import { existsSync } from 'node:fs';
import { readJsonFile } from '../files.js';
import { join } from 'node:path';
import { imageConfig } from '../data/image.js';
import { DataLoader } from '../data/loader.js';
import { readManifest } from '../data/manifest.js';
import { TextTokenizer } from '../data/tokenizer.js';
import { MmtrainError } from '../errors.js';
import { collectBatches, disposeProbeSets, imageVectors, probeAccuracy, textVectors } from '../diagnostics/encoder-probe.js';
import { loadTower } from '../models/encoders.js';
import { FusionClassifier } from '../models/fusion.js';
import { readConfigJson } from '../models/loading.js';
import type { ImageTower, TextTower } from '../models/towers.js';
import { resolveDevice } from '../tensor/device.js';
import { bundledTokenizer } from './config.js';

export interface ProbeResult {
  accuracy: number | null;
  n: number;
  labels: string[];
}

/** Loads the encoder of one side of a model folder, probes it on `data`, frees it. */
export async function probeModel(dir: string, side: 'text' | 'image', data: string, opts: { batchSize?: number; device?: string } = {}): Promise<ProbeResult> {
  const raw = readConfigJson(dir);
  const fusion = raw.text_config !== undefined && raw.image_config !== undefined ? FusionClassifier.fromPretrained(dir) : null;
  const tower: TextTower | ImageTower = fusion ? (side === 'text' ? fusion.text_encoder : fusion.image_encoder) : side === 'text' ? loadTower('text', dir).model : loadTower('image', dir).model;
  try {
    const device = resolveDevice(opts.device ?? 'auto', '--device');
    tower.to(device);
    const info = existsSync(join(dir, 'mmtrain.json')) ? readJsonFile<{ maxLength: number; image: Record<string, unknown> }>(join(dir, 'mmtrain.json')) : null;
    const tokFile = ['tokenizer.json', 'vocab.txt'].map((f) => join(dir, f)).find((f) => existsSync(f)) ?? bundledTokenizer();
    const tokenizer = tokFile.endsWith('.txt') ? TextTokenizer.fromVocab(tokFile) : TextTokenizer.fromFile(tokFile);
    const size = side === 'image' ? (tower as ImageTower).config.image_size : 224;
    const image = imageConfig({ ...(info?.image ?? { size, resize: 'exact' }), ...preprocessor(dir) });
    const m = readManifest(data);
    if (m.labels.length < 2) throw new MmtrainError(`--data ${data}: has ${m.labels.length} label; a probe needs at least 2`);
    const loader = new DataLoader(m.samples, tokenizer, image, { batchSize: opts.batchSize ?? 64, shuffle: false, maxLength: info?.maxLength ?? Math.min(128, (tower.config as { max_position_embeddings?: number }).max_position_embeddings ?? 128), device, images: side === 'image' });
    const set = { name: 'probe', modality: side, batches: await collectBatches(loader), numLabels: m.labels.length };
    try {
      const encode = side === 'text' ? textVectors(tower as TextTower) : imageVectors(tower as ImageTower);
      return { accuracy: probeAccuracy(encode, set, tower), n: m.samples.length, labels: m.labels };
    } finally {
      disposeProbeSets([set]);
    }
  } finally {
    (fusion ?? tower).dispose();
  }
}

/** Size, mean and std from a Hugging Face preprocessor_config.json, where the folder has one. */
function preprocessor(dir: string): Record<string, unknown> {
  const f = join(dir, 'preprocessor_config.json');
  if (!existsSync(f)) return {};
  const p = readJsonFile<{ size?: { height?: number }; image_mean?: number[]; image_std?: number[] }>(f);
  return { ...(p.size?.height ? { size: p.size.height, resize: 'exact' } : {}), ...(p.image_mean ? { mean: p.image_mean } : {}), ...(p.image_std ? { std: p.image_std } : {}) };
}
