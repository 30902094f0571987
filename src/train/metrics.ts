// Evaluation metrics from predictions: accuracy, macro-F1, AUROC (binary), confusion matrix.

export interface EvalMetrics {
  loss: number;
  accuracy: number;
  macro_f1: number;
  /** binary tasks only (probability of class 1); null otherwise or when one class is absent */
  auroc: number | null;
  /** confusion[true][predicted] */
  confusion: number[][];
  n: number;
  /** OGM-GE contribution scores: mean probability of the true class under each modality's share of the head */
  score_text?: number;
  score_image?: number;
  /** held-out accuracy of a linear probe on each encoder's own pooled vector (null with under 4 samples) */
  probe_text_accuracy?: number | null;
  probe_image_accuracy?: number | null;
}

export function confusionMatrix(labels: number[], preds: number[], k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  labels.forEach((y, i) => m[y]![preds[i]!]!++);
  return m;
}

/** Mean over classes of F1 = 2PR / (P + R); a class with no true and no predicted samples is left out. */
export function macroF1(conf: number[][]): number {
  const k = conf.length;
  const f1s: number[] = [];
  for (let c = 0; c < k; c++) {
    const tp = conf[c]![c]!;
    const fn = conf[c]!.reduce((a, b) => a + b, 0) - tp;
    const fp = conf.reduce((a, row) => a + row[c]!, 0) - tp;
    if (tp + fn + fp === 0) continue;
    f1s.push((2 * tp) / (2 * tp + fp + fn));
  }
  return f1s.length ? f1s.reduce((a, b) => a + b, 0) / f1s.length : 0;
}

/** Area under the ROC curve: the probability that a random positive scores above a random negative (ties 1/2). */
export function auroc(labels: number[], scores: number[]): number | null {
  const order = scores.map((s, i) => [s, labels[i]!] as const).sort((a, b) => a[0] - b[0]);
  const nPos = labels.filter((y) => y === 1).length;
  const nNeg = labels.length - nPos;
  if (!nPos || !nNeg) return null;
  // rank-sum (Mann-Whitney U) with average ranks for ties
  let rankSumPos = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j < order.length && order[j]![0] === order[i]![0]) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (order[t]![1] === 1) rankSumPos += avgRank;
    i = j;
  }
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export function computeMetrics(labels: number[], probs: number[][], lossSum: number): EvalMetrics {
  const k = probs[0]?.length ?? 2;
  const preds = probs.map((p) => p.indexOf(Math.max(...p)));
  const conf = confusionMatrix(labels, preds, k);
  const correct = labels.filter((y, i) => preds[i] === y).length;
  return {
    loss: labels.length ? lossSum / labels.length : NaN,
    accuracy: labels.length ? correct / labels.length : 0,
    macro_f1: macroF1(conf),
    auroc: k === 2 ? auroc(labels, probs.map((p) => p[1]!)) : null,
    confusion: conf,
    n: labels.length,
  };
}
