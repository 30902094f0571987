// Unimodal linear probes: how much of the label one encoder's own vector carries, measured at evaluation time by
// a multinomial logistic regression fitted on one half of the evaluated samples and scored on the other half (and the
// reverse; the two held-out accuracies are averaged). Full-batch AdamW from LibTorch on standardised features.
import { AdamW } from '../train/optim.js';
import * as F from '../tensor/functional.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, fromBuffer, zeros } from '../tensor/tensor.js';

export interface ProbeOptions {
  steps?: number;
  lr?: number;
  weightDecay?: number;
}

/** Held-out accuracy of a linear classifier trained on one fold, tested on the other. x: (N, C) float32, y: labels. */
function fitAndScore(xFit: Tensor, yFit: Tensor, xTest: Tensor, yTest: Tensor, k: number, o: Required<ProbeOptions>): number {
  const C = xFit.size(1);
  const w = zeros([C, k]).requiresGrad_(true);
  const b = zeros([k]).requiresGrad_(true);
  const opt = new AdamW([{ params: [w], weightDecay: o.weightDecay }, { params: [b], weightDecay: 0 }], { lr: o.lr });
  try {
    // standardise with the fitting fold's statistics; constant features stay zero
    const mean = xFit.mean(0, true);
    const std = xFit.std(0, { keepdim: true }).clamp(1e-6);
    const a = xFit.sub(mean).div(std);
    const t = xTest.sub(mean).div(std);
    for (let s = 0; s < o.steps; s++) {
      tidy(() => {
        F.crossEntropy(a.matmul(w).add(b), yFit).backward();
        opt.step();
        opt.zeroGrad();
      });
    }
    return noGrad(() => tidy(() => t.matmul(w).add(b).argmax(1).eq(yTest).float().mean().item()));
  } finally {
    opt.dispose();
    w.dispose();
    b.dispose();
  }
}

/**
 * Two-fold linear-probe accuracy of features (N rows of width C) for labels in [0, k). Rows are split in two by a
 * fixed permutation. Needs at least 4 samples; returns null below that.
 */
export function linearProbeAccuracy(features: Float32Array, C: number, labels: number[], k: number, opts: ProbeOptions = {}): number | null {
  const N = labels.length;
  if (N < 4 || features.length !== N * C) return null;
  const o = { steps: opts.steps ?? 150, lr: opts.lr ?? 0.05, weightDecay: opts.weightDecay ?? 1e-3 };
  // a fixed pseudo-random permutation (not the caller's RNG) so that ordered data still gives mixed folds
  const order = Array.from({ length: N }, (_, i) => i);
  let s = 12345;
  for (let i = N - 1; i > 0; i--) {
    s = (s * 48271) % 2147483647;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const fold = (parity: number) => {
    const idx = order.filter((_, r) => r % 2 === parity);
    const x = new Float32Array(idx.length * C);
    idx.forEach((r, j) => x.set(features.subarray(r * C, (r + 1) * C), j * C));
    return { x: fromBuffer(x, [idx.length, C]), y: fromBuffer(BigInt64Array.from(idx.map((r) => BigInt(labels[r]!))), [idx.length]) };
  };
  return tidy(() => {
    const even = fold(0);
    const odd = fold(1);
    const accEven = fitAndScore(even.x, even.y, odd.x, odd.y, k, o); // fit on even rows, test on odd
    const accOdd = fitAndScore(odd.x, odd.y, even.x, even.y, k, o);
    return (accEven * odd.x.size(0) + accOdd * even.x.size(0)) / N;
  });
}
