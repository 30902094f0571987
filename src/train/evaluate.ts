// Evaluation of a model over a loader: loss and metrics over every sample, gathered across data-parallel ranks, and
// (when asked) the modality diagnostics: contribution scores and unimodal linear-probe accuracy.
import type { DataLoader } from '../data/loader.js';
import { disposeBatch } from '../data/collate.js';
import type { FusionClassifier } from '../models/fusion.js';
import * as F from '../tensor/functional.js';
import { autocast, noGrad } from '../tensor/modes.js';
import { autocastFor, deviceOf } from './precision.js';
import { tidy } from '../tensor/scope.js';
import { modalityScores } from '../diagnostics/modality.js';
import { linearProbeAccuracy } from '../diagnostics/probe.js';
import type { TrainConfig } from './config.js';
import { type EvalMetrics, computeMetrics } from './metrics.js';

export interface EvalOptions {
  precision?: TrainConfig['train']['precision'];
  /** also measure modality contribution scores and unimodal linear-probe accuracy */
  modality?: boolean;
  /** data-parallel evaluation: each rank evaluated its shard; this joins rows of every rank (rank order) */
  gather?: (rows: Float64Array, width: number) => Float64Array;
}

/** Evaluates a model on a loader: loss and metrics over every sample (and modality diagnostics when asked). */
export async function evaluateLoader(model: FusionClassifier, loader: DataLoader | null, opts: EvalOptions = {}): Promise<EvalMetrics> {
  model.eval();
  const labels: number[] = [];
  const probs: number[][] = [];
  let lossSum = 0;
  const modality = opts.modality ?? false;
  const scores = { text: 0, image: 0 };
  const vecs: { text: Float32Array[]; image: Float32Array[]; Ct: number; Ci: number } = { text: [], image: [], Ct: 0, Ci: 0 };
  const cast = autocastFor(opts.precision ?? 'fp32', deviceOf(model));
  for await (const b of loader?.epoch(0) ?? []) {
    noGrad(() => tidy(() => {
      const out = autocast(cast, () => model.forward(b, { returnEncoderVectors: modality }));
      const logits = out.logits.float();
      lossSum += F.crossEntropy(logits, b.labels, { reduction: 'sum' }).item();
      const p = F.softmax(logits, -1).toNumbers();
      const k = logits.size(1);
      for (let i = 0; i < b.indices.length; i++) probs.push(p.slice(i * k, (i + 1) * k));
      labels.push(...b.labels.toNumbers());
      if (modality) {
        const s = modalityScores(model, out.textVector.float(), out.imageVector.float(), b.labels);
        scores.text += s.text;
        scores.image += s.image;
        const ev = out.encoderVectors!;
        vecs.Ct = ev.text.size(1);
        vecs.Ci = ev.image.size(1);
        vecs.text.push(ev.text.float().contiguous().toFloat32Array());
        vecs.image.push(ev.image.float().contiguous().toFloat32Array());
      }
      disposeBatch(b);
    }));
  }
  const join = (parts: Float32Array[]) => {
    const outArr = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of parts) { outArr.set(x, o); o += x.length; }
    return outArr;
  };
  let text = join(vecs.text);
  let image = join(vecs.image);
  const g = opts.gather;
  if (g) {
    // every rank's predictions, losses, scores and probe features, in rank order
    const k = g(new Float64Array([probs[0]?.length ?? 0]), 1).reduce((a, b) => Math.max(a, b), 0);
    const rows = g(Float64Array.from(labels.flatMap((y, i) => [y, ...probs[i]!])), k + 1);
    labels.length = 0;
    probs.length = 0;
    for (let r = 0; r < rows.length; r += k + 1) {
      labels.push(rows[r]!);
      probs.push(Array.from(rows.subarray(r + 1, r + 1 + k)));
    }
    const sums = g(new Float64Array([lossSum, scores.text, scores.image]), 3);
    lossSum = 0;
    scores.text = 0;
    scores.image = 0;
    for (let r = 0; r < sums.length; r += 3) { lossSum += sums[r]!; scores.text += sums[r + 1]!; scores.image += sums[r + 2]!; }
    if (modality) {
      const widths = g(new Float64Array([vecs.Ct, vecs.Ci]), 2);
      vecs.Ct = Math.max(...widths.filter((_, i) => i % 2 === 0));
      vecs.Ci = Math.max(...widths.filter((_, i) => i % 2 === 1));
      text = Float32Array.from(g(Float64Array.from(text), vecs.Ct));
      image = Float32Array.from(g(Float64Array.from(image), vecs.Ci));
    }
  }
  const m = computeMetrics(labels, probs, lossSum);
  if (!modality || !labels.length) return m;
  const k = probs[0]!.length;
  return {
    ...m,
    score_text: scores.text / labels.length,
    score_image: scores.image / labels.length,
    probe_text_accuracy: linearProbeAccuracy(text, vecs.Ct, labels, k),
    probe_image_accuracy: linearProbeAccuracy(image, vecs.Ci, labels, k),
  };
}

/** The configured metric's value in a set of metrics (auroc is NaN where it is undefined). */
export function metricValue(m: EvalMetrics, metric: TrainConfig['eval']['metric']): number {
  const v = metric === 'loss' ? m.loss : metric === 'auroc' ? m.auroc ?? NaN : m[metric];
  return v;
}

/** Whether a is better than b by more than minDelta: lower for loss, higher for every other metric. */
export function better(metric: string, a: number, b: number, minDelta: number): boolean {
  return metric === 'loss' ? a < b - minDelta : a > b + minDelta;
}
