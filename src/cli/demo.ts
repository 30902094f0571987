// The demo: synthesizes the built-in image-text matching data set, trains the tiny fusion preset on it with the
// trainer, evaluates on the test split and leaves a complete run directory. No download.
import { join, resolve } from 'node:path';
import { type Difficulty, generateSynthetic } from '../data/synth.js';
import { resolveConfig, type TrainConfigInput } from '../train/config.js';
import { type TrainResult, train } from '../train/trainer.js';

export interface DemoOptions {
  out?: string;
  n?: number;
  epochs?: number;
  difficulty?: Difficulty;
  seed?: number;
  imageSize?: number;
  lr?: number;
  print?: (s: string) => void;
  signal?: AbortSignal;
}

/**
 * Settings chosen for the tiny preset on this task (see README): 64px images with 8px patches, no dropout, a larger
 * initialiser range than BERT's 0.02 (from-scratch training of a tiny model on a pure interaction task otherwise
 * sits on the chance plateau for many epochs), warmup then cosine decay, cached images.
 */
export function demoConfig(dataDir: string, o: DemoOptions): TrainConfigInput {
  const S = o.imageSize ?? 64;
  const enc = { hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.1 };
  return {
    name: 'demo',
    out: o.out ?? 'runs',
    seed: o.seed ?? 1,
    model: {
      preset: 'tiny',
      text: { preset: 'bert-tiny', config: { ...enc, max_position_embeddings: 64 } },
      image: { preset: 'vit-tiny', config: { ...enc, image_size: S, patch_size: 8 } },
      fusion_num_heads: 4, head_hidden_size: 128, head_dropout: 0,
    },
    data: {
      train: join(dataDir, 'train.jsonl'), val: join(dataDir, 'val.jsonl'), test: join(dataDir, 'test.jsonl'),
      labels: ['mismatch', 'match'], maxLength: 32, cache: true, image: { size: S, resize: 'exact' },
    },
    train: { epochs: o.epochs ?? 15, batchSize: 32, lr: o.lr ?? 5e-4, schedule: { type: 'cosine', warmupRatio: 0.1 }, clipGradNorm: 1 },
    eval: { every: 'epoch', metric: 'accuracy' },
    checkpoint: { keepLast: 1 },
    log: { every: 25 },
  };
}

export async function runDemo(o: DemoOptions = {}): Promise<TrainResult & { dataDir: string }> {
  const print = o.print ?? ((s: string) => console.log(s));
  const out = resolve(o.out ?? 'runs');
  const dataDir = join(out, `demo-data-${o.difficulty ?? 'easy'}-${o.n ?? 4000}-${o.seed ?? 1}`);
  const t0 = performance.now();
  await generateSynthetic({ out: dataDir, n: o.n ?? 4000, seed: o.seed ?? 1, difficulty: o.difficulty ?? 'easy', imageSize: o.imageSize ?? 64 });
  print(`synthesized ${o.n ?? 4000} image-caption pairs (${o.difficulty ?? 'easy'}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${dataDir}`);
  const config = resolveConfig(demoConfig(dataDir, { ...o, out }), 'demo config');
  const r = await train(config, { print, signal: o.signal });
  return { ...r, dataDir };
}
