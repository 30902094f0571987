// The demo: synthesizes the built-in image-text matching data set, trains the tiny fusion preset on it with the
// trainer, evaluates on the test split and leaves a complete run directory. No download.
import { join, resolve } from 'node:path';
import { type Difficulty, generateSynthetic } from '../data/synth.js';
import { resolveConfig, type TrainConfigInput } from '../train/config.js';
import type { TrainResult } from '../train/callbacks.js';
import { preferredPrecision } from './threading.js';

export interface DemoOptions {
  out?: string;
  n?: number;
  epochs?: number;
  /** fp32 (demoConfig's default) or bf16 autocast; runDemo uses bf16 where the CPU computes it natively */
  precision?: 'fp32' | 'bf16';
  /** auto (default), cpu, cuda or cuda:N */
  device?: string;
  difficulty?: Difficulty;
  seed?: number;
  imageSize?: number;
  lr?: number;
  /** the text encoder's architecture (default bert) */
  textEncoder?: 'bert' | 'distilbert' | 'roberta' | 'clip' | 'siglip';
  /** the image encoder's architecture (default vit) */
  imageEncoder?: 'vit' | 'deit' | 'clip' | 'siglip';
  print?: (s: string) => void;
  signal?: AbortSignal;
}

/**
 * Settings tuned for this task on 2 CPU cores (see README): the tiny preset's 2-layer encoders at width 64, 32px
 * images with 4px patches (64 image tokens: shapes need finer patches than colours), no dropout, and an initializer range of 0.5 instead of BERT's 0.02. This is a pure
 * interaction task (neither modality alone predicts the label), and with the small default initialisation the model
 * sits on the chance plateau for many epochs; larger initial weights give the attention products a usable signal
 * from the start. Warmup then cosine decay; images cached after the first epoch. `mmtrain demo` trains under bf16
 * autocast on CPUs with native bf16 (about 1.5x the steps per second here, so 27 epochs fit where fp32 fits 15).
 */
export function demoConfig(dataDir: string, o: DemoOptions): TrainConfigInput {
  const S = o.imageSize ?? DEMO_IMAGE_SIZE;
  const enc = { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.5 };
  const clip = { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, num_hidden_layers: 2, attention_dropout: 0, initializer_factor: 8 };
  const siglip = { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, num_hidden_layers: 2, attention_dropout: 0 };
  // the same widths under each architecture's own field names; RoBERTa pads with the bundled BERT tokenizer's id 0
  const text = {
    bert: { preset: 'bert-tiny', config: { ...enc, max_position_embeddings: 64 } },
    distilbert: { preset: 'distilbert-tiny', config: { dim: 64, n_heads: 2, hidden_dim: 256, n_layers: 2, dropout: 0, attention_dropout: 0, initializer_range: 0.5, max_position_embeddings: 64 } },
    roberta: { preset: 'roberta-tiny', config: { ...enc, max_position_embeddings: 66, pad_token_id: 0, vocab_size: 30522, type_vocab_size: 1 } },
    // CLIP's initializer scales with initializer_factor: 8 gives its projections about the 0.5 of the others;
    // the bundled tokenizer ends each text with [SEP] (102), CLIP's end-of-text here
    clip: { preset: 'clip-text-tiny', config: { ...clip, vocab_size: 30522, max_position_embeddings: 64, eos_token_id: 102 } },
    siglip: { preset: 'siglip-text-tiny', config: { ...siglip, vocab_size: 30522, max_position_embeddings: 64 } },
  }[o.textEncoder ?? 'bert'];
  const image = o.imageEncoder === 'clip' ? { preset: 'clip-vision-tiny', config: { ...clip, image_size: S, patch_size: S / 8 } }
    : o.imageEncoder === 'siglip' ? { preset: 'siglip-vision-tiny', config: { ...siglip, image_size: S, patch_size: S / 8 } }
      : { preset: `${o.imageEncoder ?? 'vit'}-tiny`, config: { ...enc, num_hidden_layers: 2, image_size: S, patch_size: S / 8 } };
  return {
    name: 'demo',
    out: o.out ?? 'runs',
    seed: o.seed ?? 1,
    model: {
      preset: 'tiny',
      text, image,
      fusion_num_heads: 4, head_hidden_size: 128, head_dropout: 0,
    },
    data: {
      train: join(dataDir, 'train.jsonl'), val: join(dataDir, 'val.jsonl'), test: join(dataDir, 'test.jsonl'),
      labels: ['mismatch', 'match'], maxLength: 32, cache: true, image: { size: S, resize: 'exact' },
    },
    train: { epochs: o.epochs ?? demoEpochs(o.precision ?? 'fp32'), precision: o.precision ?? 'fp32', device: o.device ?? 'auto', batchSize: 32, lr: o.lr ?? 1e-3, schedule: { type: 'cosine', warmupRatio: 0.1 }, clipGradNorm: 1 },
    eval: { every: 'epoch', metric: 'accuracy' },
    checkpoint: { keepLast: 1 },
    log: { every: 50 },
  };
}

export const DEMO_SAMPLES = 8000;
/** Epochs that fit the demo's 5-minute budget on 2 cores at each precision. */
export function demoEpochs(precision: 'fp32' | 'bf16'): number {
  return precision === 'bf16' ? 27 : 15;
}
export const DEMO_IMAGE_SIZE = 32;

export async function runDemo(o: DemoOptions = {}): Promise<TrainResult & { dataDir: string }> {
  const print = o.print ?? ((s: string) => console.log(s));
  const out = resolve(o.out ?? 'runs');
  const dataDir = join(out, `demo-data-${o.difficulty ?? 'easy'}-${o.n ?? DEMO_SAMPLES}-${o.seed ?? 1}`);
  const t0 = performance.now();
  await generateSynthetic({ out: dataDir, n: o.n ?? DEMO_SAMPLES, seed: o.seed ?? 1, difficulty: o.difficulty ?? 'easy', imageSize: o.imageSize ?? DEMO_IMAGE_SIZE });
  print(`synthesized ${o.n ?? DEMO_SAMPLES} image-caption pairs (${o.difficulty ?? 'easy'}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${dataDir}`);
  const precision = o.precision ?? preferredPrecision();
  print(`training in ${precision}${precision === 'bf16' ? ' (autocast; this CPU computes bf16 natively)' : ''}`);
  const config = resolveConfig(demoConfig(dataDir, { ...o, out, precision }), 'demo config');
  const { train } = await import('../train/trainer.js'); // LibTorch loads here, not when the CLI imports this module
  const r = await train(config, { print, signal: o.signal });
  const { reportTrainedRun } = await import('../diagnostics/report.js');
  await reportTrainedRun(r, config, print);
  return { ...r, dataDir };
}
