// Pretraining one encoder as a training task. Text: BERT masked language modelling (Hugging Face's
// DataCollatorForLanguageModeling: 15% of tokens chosen, 80% [MASK] / 10% random / 10% kept, optionally whole words),
// the tied MLM head's cross-entropy over the chosen tokens. Image: SimMIM masked image modelling (a random share of
// patches replaced by a mask token, their pixels reconstructed, L1). Masks are drawn per sample from (seed, epoch,
// sample index), so a resumed run masks exactly as an uninterrupted one, and every validation masks alike.
import type { Batch } from '../data/collate.js';
import { type MlmMasking, maskPatches, maskRow } from '../data/masking.js';
import { hashSeed, mulberry32 } from '../data/random.js';
import type { TextTokenizer } from '../data/tokenizer.js';
import { MmtrainError } from '../errors.js';
import { BertForMaskedLM } from '../models/bert-mlm.js';
import { ViTForMaskedImageModeling } from '../models/vit-mim.js';
import type { TrainableModel } from '../models/trainable.js';
import { type EncodeFn, imageVectors, textVectors } from '../diagnostics/encoder-probe.js';
import { hostToDevice } from '../tensor/device.js';
import { autocast, noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { disposeBatch } from '../data/collate.js';
import type { TrainConfig } from './config.js';
import type { EvalMetrics } from './metrics.js';
import { autocastFor, deviceOf } from './precision.js';
import type { TrainTask } from './task.js';

/** The epoch number evaluation masks are drawn for: the same masks at every validation. */
const EVAL_EPOCH = 0x7fffffff;

type Pretrain = NonNullable<TrainConfig['pretrain']>;

/** Masked language modelling settings from the tokenizer's vocabulary. */
export function mlmMasking(p: Pretrain, tokenizer: TextTokenizer): MlmMasking {
  const maskId = tokenizer.tokenId('[MASK]') ?? tokenizer.tokenId('<mask>');
  if (maskId === null) throw new MmtrainError(`data.tokenizer: ${tokenizer.source} has no [MASK] (or <mask>) token, which masked language modelling needs`);
  const continuation = tokenizer.continuationTable();
  if (p.wholeWordMask && !continuation.some((x) => x === 1)) throw new MmtrainError(`pretrain.wholeWordMask: ${tokenizer.source} has no WordPiece "##" continuation tokens to group into words; turn wholeWordMask off`);
  return {
    probability: p.mlmProbability, maskId, vocabSize: tokenizer.vocabSize, specialIds: tokenizer.specialIds(), wholeWord: p.wholeWordMask,
    isContinuation: (id) => continuation[id] === 1,
  };
}

/** A batch's masked inputs and labels (-100 where not predicted): (B, T) int64 each, on the batch's device. */
export function maskBatch(b: Batch, m: MlmMasking, seed: number, epoch: number): { input: Tensor; labels: Tensor } {
  const [B, T] = b.inputIds.shape as [number, number];
  const ids = b.inputIds.toNumbers();
  const real = b.attentionMask.sum(1).toNumbers();
  const input = new Int32Array(ids);
  const labels = new Int32Array(B * T).fill(-100);
  let chosen = 0;
  for (let r = 0; r < B; r++) {
    const n = real[r]!;
    const row = maskRow(ids.slice(r * T, r * T + n), m, mulberry32(hashSeed(seed, epoch, b.indices[r]!)));
    input.set(row.input, r * T);
    labels.set(row.labels, r * T);
    for (const y of row.labels) if (y !== -100) chosen++;
  }
  if (chosen === 0) {
    // short texts can leave a batch with nothing to predict (a NaN loss): its first maskable token is predicted
    const at = ids.findIndex((id, i) => i % T < real[Math.floor(i / T)]! && !m.specialIds.has(id));
    if (at < 0) throw new MmtrainError(`masked language modelling: batch of samples ${b.indices.slice(0, 3).join(', ')}... holds no token to mask (only special tokens)`);
    labels[at] = ids[at]!;
    input[at] = m.maskId;
  }
  const dev = b.inputIds.device;
  return { input: hostToDevice(tensor(input, { shape: [B, T], dtype: 'int64' }), dev), labels: hostToDevice(tensor(labels, { shape: [B, T], dtype: 'int64' }), dev) };
}

/** A batch's patch mask: (B, N) uint8, 1 where a patch is masked. */
export function patchMask(b: Batch, N: number, ratio: number, seed: number, epoch: number): Tensor {
  const B = b.indices.length;
  const out = new Uint8Array(B * N);
  b.indices.forEach((index, r) => out.set(maskPatches(N, ratio, mulberry32(hashSeed(seed, epoch, index))), r * N));
  return hostToDevice(tensor(out, { shape: [B, N], dtype: 'uint8' }), b.pixelValues.device);
}

/** An evaluation batch's sums: loss x its weight (predicted tokens for MLM, samples for MIM), weight, samples, correct and predicted tokens. */
interface Sums { loss: number; weight: number; n: number; correct: number; predicted: number }

async function evaluateWith(model: { train(on?: boolean): unknown }, loader: Parameters<TrainTask['evaluate']>[0], opts: Parameters<TrainTask['evaluate']>[1], step: (b: Batch) => Sums): Promise<EvalMetrics> {
  model.train(false);
  const s = [0, 0, 0, 0, 0];
  for await (const b of loader?.epoch(0) ?? []) {
    try {
      const r = step(b);
      [r.loss, r.weight, r.n, r.correct, r.predicted].forEach((x, i) => (s[i]! += x));
    } finally {
      disposeBatch(b);
    }
  }
  if (opts.gather) {
    const rows = opts.gather(Float64Array.from(s), 5);
    s.fill(0);
    for (let r = 0; r < rows.length; r++) s[r % 5]! += rows[r]!;
  }
  const [loss, weight, n, correct, predicted] = s as [number, number, number, number, number];
  return { loss: weight ? loss / weight : NaN, accuracy: predicted ? correct / predicted : NaN, macro_f1: NaN, auroc: null, confusion: [], n };
}

export function mlmTask(c: TrainConfig, model: BertForMaskedLM, tokenizer: TextTokenizer): TrainTask {
  const m = mlmMasking(c.pretrain!, tokenizer);
  return {
    kind: 'mlm',
    model,
    loss(b, _o, at) {
      const { input, labels } = maskBatch(b, m, c.seed, at.epoch);
      const out = model.forward(input, b.attentionMask, b.tokenTypeIds, labels);
      const loss = out.loss!.float();
      return { loss: at.reduction === 'sum' ? loss.mul(b.indices.length) : loss, outputs: null };
    },
    trainMode: () => { model.train(); },
    evaluate: (loader, opts) => evaluateWith(model, loader, opts, (b) => noGrad(() => tidy(() => {
      const { input, labels } = maskBatch(b, m, c.seed, EVAL_EPOCH);
      const out = autocast(autocastFor(opts.precision ?? 'fp32', deviceOf(model)), () => model.forward(input, b.attentionMask, b.tokenTypeIds, labels));
      const predicted = out.labels!.size(0);
      const correct = out.logits.argmax(-1).eq(out.labels!).sum().item();
      // the mean over every predicted token of the set, whatever the batching
      return { loss: out.loss!.float().item() * predicted, weight: predicted, n: b.indices.length, correct, predicted };
    }))),
    describe: (r) => `MLM loss ${r.loss.toFixed(4)} masked-token accuracy ${(r.accuracy * 100).toFixed(2)}%`,
  };
}

export function mimTask(c: TrainConfig, model: ViTForMaskedImageModeling): TrainTask {
  const cfg = model.config;
  const N = (cfg.image_size / cfg.patch_size) ** 2;
  const ratio = c.pretrain!.maskRatio;
  const loss = c.pretrain!.imageLoss;
  return {
    kind: 'mim',
    model,
    loss(b, _o, at) {
      const mask = patchMask(b, N, ratio, c.seed, at.epoch);
      const l = model.forward(b.pixelValues, mask, { loss }).loss!.float();
      return { loss: at.reduction === 'sum' ? l.mul(b.indices.length) : l, outputs: null };
    },
    trainMode: () => { model.train(); },
    evaluate: (loader, opts) => evaluateWith(model, loader, opts, (b) => noGrad(() => tidy(() => {
      const mask = patchMask(b, N, ratio, c.seed, EVAL_EPOCH);
      const out = autocast(autocastFor(opts.precision ?? 'fp32', deviceOf(model)), () => model.forward(b.pixelValues, mask, { loss }));
      return { loss: out.loss!.float().item() * b.indices.length, weight: b.indices.length, n: b.indices.length, correct: 0, predicted: 0 };
    }))),
    describe: (r) => `MIM loss ${r.loss.toFixed(4)} (${loss === 'mse' ? 'squared error' : 'L1'} over masked patches, normalised pixels)`,
  };
}

/** The pooled vectors a pretraining model's encoder gives (for its probes): BERT's masked mean, ViT's token mean. */
export function pretrainedVectors(model: TrainableModel): EncodeFn {
  if (model instanceof BertForMaskedLM) return textVectors(model.bert);
  if (model instanceof ViTForMaskedImageModeling) return imageVectors(model.vit);
  throw new MmtrainError('pretrain.probe: the model is not a pretraining model');
}
