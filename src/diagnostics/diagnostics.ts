// Training diagnostics as a trainer callback: gradient norms per module and per layer (before clipping), update-to-
// weight ratios, weight norms, learning rates, a loss EMA, loss spikes by robust z-score, cross-attention entropy
// per direction and OGM-GE modality scores. Records go to metrics.jsonl (event "diagnostics", "spike") and
// TensorBoard every `every` steps; spikes are checked on every step.
import { FusionClassifier, type FusionOutputs, type ForwardOptions } from '../models/fusion.js';
import { noGrad } from '../tensor/modes.js';
import { keep, tidy } from '../tensor/scope.js';
import { Tensor, stack } from '../tensor/tensor.js';
import type { TrainConfig } from '../train/config.js';
import type { Callback, StepInfo, TrainContext } from '../train/callbacks.js';
import { mean, median } from '../stats.js';
import { modalityScores } from './modality.js';
import { spikeMessage } from './warnings.js';

export const MODULES = ['text_encoder', 'image_encoder', 'fusion', 'classifier'] as const;
export type ModuleName = (typeof MODULES)[number];

/** The module a parameter belongs to; the image projection counts as fusion. */
export function moduleOf(name: string): ModuleName {
  const head = name.split('.', 1)[0]!;
  if (head === 'text_encoder' || head === 'image_encoder' || head === 'classifier') return head;
  return 'fusion';
}

/** The layer a parameter belongs to: text_encoder.layer.3, text_encoder.embeddings, fusion.text_to_image, classifier.0 ... */
export function layerOf(name: string): string {
  // encoder.layer.N (BERT, RoBERTa, ViT, DeiT), transformer.layer.N (DistilBERT), encoder.layers.N
  const m = /^(text_encoder|image_encoder)\.(?:[\w.]*\.)?(?:encoder|transformer)\.layers?\.(\d+)\./.exec(name);
  if (m) return `${m[1]}.layer.${m[2]}`;
  const parts = name.split('.');
  return parts.length > 2 ? `${parts[0]}.${parts[1]}` : parts[0]!;
}

/** A parameter's name under its role's module: kept when it already starts with one (the fusion classifier's). */
export function roleName(name: string, role: string): string {
  const first = name.split('.', 1)[0]!;
  if (first === 'text_encoder' || first === 'image_encoder' || first === 'classifier' || first === 'fusion' || role === 'fusion') return name;
  return `${role}${name.slice(first.length)}`;
}

/** Square root of summed squares per key. */
function normsBy(keys: string[], sumsq: number[]): Record<string, number> {
  const acc: Record<string, number> = {};
  keys.forEach((k, i) => (acc[k] = (acc[k] ?? 0) + sumsq[i]!));
  for (const k of Object.keys(acc)) acc[k] = Math.sqrt(acc[k]!);
  return acc;
}

/** Summed squares of each tensor, read back in one transfer. */
function sumsOfSquares(ts: Tensor[]): number[] {
  if (!ts.length) return [];
  return tidy(() => stack(ts.map((t) => t.detach().float().square().sum())).toNumbers());
}

export interface NamedParam { name: string; param: Tensor }

/** L2 norms of gradients per module, per layer and in total (parameters without a gradient are left out). */
export function gradientNorms(params: NamedParam[]): { module: Record<string, number>; layer: Record<string, number>; total: number } {
  const all = params.map((p) => p.param.grad);
  const withGrad = params.filter((_, i) => all[i] !== null);
  const grads = all.filter((g): g is Tensor => g !== null);
  try {
    const sq = sumsOfSquares(grads);
    return {
      module: normsBy(withGrad.map((p) => moduleOf(p.name)), sq),
      layer: normsBy(withGrad.map((p) => layerOf(p.name)), sq),
      total: Math.sqrt(sq.reduce((a, b) => a + b, 0)),
    };
  } finally {
    for (const g of grads) g.dispose();
  }
}

/** L2 norms of weights per module. */
export function weightNorms(params: NamedParam[]): Record<string, number> {
  return normsBy(params.map((p) => moduleOf(p.name)), sumsOfSquares(params.map((p) => p.param)));
}

/** ||w_after - w_before|| / ||w_before|| per module, from copies taken before the optimizer step. */
export function updateRatios(params: NamedParam[], before: Tensor[]): Record<string, number> {
  const keys = params.map((p) => moduleOf(p.name));
  const diff = tidy(() => sumsOfSquares(params.map((p, i) => p.param.detach().sub(before[i]!))));
  const base = sumsOfSquares(before);
  const d = normsBy(keys, diff);
  const w = normsBy(keys, base);
  const out: Record<string, number> = {};
  for (const k of Object.keys(d)) out[k] = w[k]! > 0 ? d[k]! / w[k]! : 0;
  return out;
}

/**
 * Mean entropy (nats) of attention distributions: weights (B, Q, K) rows sum to 1; queryMask (B, Q) marks the
 * queries that count (real text tokens), or null for all.
 */
export function attentionEntropy(weights: Tensor, queryMask: Tensor | null): number {
  return noGrad(() => tidy(() => {
    const p = weights.detach().float();
    const h = p.mul(p.clamp(1e-12).log()).sum(-1).neg(); // (B, Q, K) -> (B, Q)
    if (!queryMask) return h.mean().item();
    const m = queryMask.to('float32');
    return h.mul(m).sum().div(m.sum().clamp(1)).item();
  }));
}

/** Robust z-score spike detection over a sliding window of step losses (median and MAD). */
export class SpikeDetector {
  readonly #losses: number[] = [];
  constructor(readonly window = 50, readonly z = 6, readonly minRatio = 1.5, readonly minDelta = 0.3) {}
  /** Adds a step loss; returns the spike when this loss is one. */
  push(loss: number): { median: number; z: number; ratio: number } | null {
    if (!Number.isFinite(loss)) return null;
    const w = this.#losses;
    let spike: { median: number; z: number; ratio: number } | null = null;
    if (w.length >= Math.min(this.window, 10)) {
      const m = median(w);
      const mad = median(w.map((x) => Math.abs(x - m)));
      // MAD is 0 on a perfectly flat window; fall back to a small share of the median so a jump still registers
      const scale = 1.4826 * mad || Math.max(1e-8, 0.01 * Math.abs(m));
      const zScore = (loss - m) / scale;
      const ratio = m > 0 ? loss / m : Infinity;
      // the absolute floor keeps a near-zero late-training loss from flagging one misclassified sample as a spike
      if (zScore > this.z && ratio >= this.minRatio && loss - m >= this.minDelta) spike = { median: m, z: zScore, ratio };
    }
    w.push(loss);
    if (w.length > this.window) w.shift();
    return spike;
  }
}

type DiagnosticsConfig = TrainConfig['diagnostics'];

/** The diagnostics callback; the trainer installs it when `diagnostics.enabled` is true. */
export class Diagnostics implements Callback {
  #params: NamedParam[] = [];
  #model: FusionClassifier | null = null;
  #before: Tensor[] | null = null;
  #grad: ReturnType<typeof gradientNorms> | null = null;
  #entropy: { text_to_image: number[]; image_to_text: number[] } = { text_to_image: [], image_to_text: [] };
  #scores = { text: 0, image: 0, n: 0 };
  #ema: number | null = null;
  #spikes: SpikeDetector;
  #clipped = { over: 0, steps: 0 };
  constructor(readonly config: DiagnosticsConfig, readonly emaBeta = 0.98) {
    this.#spikes = new SpikeDetector(config.spike.window, config.spike.z, config.spike.minRatio, config.spike.minDelta);
  }

  /** Whether the optimizer step with index `step` (0-based, before it runs) records diagnostics. */
  due(step: number): boolean {
    return (step + 1) % this.config.every === 0;
  }

  onTrainStart(ctx: TrainContext): void {
    // modality scores read the fusion classifier's head; a pretraining model has none
    this.#model = ctx.model instanceof FusionClassifier ? ctx.model : null;
    // names in the fusion classifier's terms (text_encoder.*, image_encoder.*, fusion.*, classifier.*), from each
    // parameter's role: a pretraining model's bert.* / vit.* are its text / image encoder, its head (cls.*, decoder.*) the classifier
    this.#params = ctx.model.parameterRoles().map(({ name, param, role }) => ({ name: roleName(name, role), param }));
  }

  forwardOptions(_ctx: TrainContext, info: { step: number }): ForwardOptions {
    return { returnAttention: this.config.attentionEntropy && this.due(info.step) };
  }

  onForward(_ctx: TrainContext, info: { step: number; outputs: FusionOutputs; labels: Tensor; attentionMask: Tensor }): void {
    if (!this.due(info.step)) return;
    const o = info.outputs;
    if (o.attention) {
      this.#entropy.text_to_image.push(attentionEntropy(o.attention.textToImage, info.attentionMask));
      this.#entropy.image_to_text.push(attentionEntropy(o.attention.imageToText, null));
    }
    if (!this.#model) return;
    const s = modalityScores(this.#model, o.textVector, o.imageVector, info.labels);
    this.#scores.text += s.text;
    this.#scores.image += s.image;
    this.#scores.n += s.n;
  }

  onAfterBackward(_ctx: TrainContext, info: { step: number }): void {
    if (!this.due(info.step)) return;
    this.#grad = gradientNorms(this.#params);
    this.#before = keep(noGrad(() => tidy(() => this.#params.map((p) => p.param.detach().clone()))));
  }

  onStepEnd(ctx: TrainContext, info: StepInfo): void {
    const clip = ctx.config.train.clipGradNorm;
    if (!info.skipped) {
      this.#clipped.steps++;
      if (clip !== null && info.gradNorm > clip) this.#clipped.over++;
      this.#ema = this.#ema === null ? info.loss : this.emaBeta * this.#ema + (1 - this.emaBeta) * info.loss;
      const spike = this.#spikes.push(info.loss);
      if (spike) {
        const lr = Math.max(...Object.values(info.lr));
        const record = { event: 'spike', step: info.step, epoch: info.epoch, loss: info.loss, median: spike.median, z: spike.z, ratio: spike.ratio, lr };
        ctx.log(record);
        ctx.warn({ kind: 'loss-spike', step: info.step, message: spikeMessage(record, ctx.config), evidence: record });
      }
    }
    if (!this.#before) return;
    const before = this.#before;
    this.#before = null;
    try {
      if (info.skipped) return;
      const rec: Record<string, unknown> = {
        event: 'diagnostics', step: info.step, epoch: info.epoch, loss: info.loss, loss_ema: this.#ema,
        lr: info.lr, grad_norm: { ...this.#grad!.module, total: this.#grad!.total },
        update_ratio: updateRatios(this.#params, before), weight_norm: weightNorms(this.#params),
        clip_fraction: this.#clipped.steps ? this.#clipped.over / this.#clipped.steps : 0,
      };
      if (this.config.perLayer) rec.grad_norm_layer = this.#grad!.layer;
      const e = this.#entropy;
      if (e.text_to_image.length) {
        rec.attention_entropy = { text_to_image: mean(e.text_to_image), image_to_text: mean(e.image_to_text) };
      }
      if (this.#scores.n) {
        const { text, image } = this.#scores;
        rec.modality_score = { text: text / this.#scores.n, image: image / this.#scores.n, ratio: image > 0 ? text / image : null };
      }
      ctx.log(rec);
    } finally {
      for (const t of before) t.dispose();
      this.#grad = null;
      this.#entropy = { text_to_image: [], image_to_text: [] };
      this.#scores = { text: 0, image: 0, n: 0 };
      this.#clipped = { over: 0, steps: 0 };
    }
  }

  onTrainEnd(): void {
    if (this.#before) for (const t of this.#before) t.dispose();
    this.#before = null;
  }
}
