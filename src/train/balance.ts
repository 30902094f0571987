// Modality balance, a training intervention: OGM and OGM-GE (Peng et al., CVPR 2022). From the contribution scores
// (src/diagnostics/modality.ts), the dominant modality's encoder gradients are scaled by
// 1 - tanh(alpha * relu(ratio - 1)), ratio = s_dominant / s_other; with Gaussian enhancement (GE) every modulated
// encoder gradient also gets N(0, std(grad)) noise added, as the paper's code does.
import { FusionClassifier, type FusionOutputs } from '../models/fusion.js';
import { MmtrainError } from '../errors.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor, randn } from '../tensor/tensor.js';
import { modalityScores } from '../diagnostics/modality.js';
import type { Callback, StepInfo, TrainContext } from './callbacks.js';
import type { TrainConfig } from './config.js';

/** OGM coefficients: the dominant modality is slowed, the other keeps its full gradient. */
export function ogmCoefficients(scoreText: number, scoreImage: number, alpha: number): { text: number; image: number; ratio: number } {
  const ratio = scoreText / Math.max(scoreImage, 1e-12); // text over image
  const relu = (x: number) => Math.max(0, x);
  if (ratio > 1) return { text: 1 - Math.tanh(alpha * relu(ratio - 1)), image: 1, ratio };
  return { text: 1, image: 1 - Math.tanh(alpha * relu(1 / Math.max(ratio, 1e-12) - 1)), ratio };
}

/** Scales a gradient in place by coeff and, with GE, adds N(0, std(grad before scaling) + 1e-8) noise. */
export function modulateGradient(grad: Tensor, coeff: number, gaussian: boolean): void {
  noGrad(() => tidy(() => {
    const std = gaussian ? (grad.numel > 1 ? grad.std().item() : 0) : 0;
    grad.mul_(coeff);
    if (gaussian) grad.add_(randn(grad.shape, { dtype: grad.dtype, device: grad.device }).mul(std + 1e-8));
  }));
}

type BalanceConfig = TrainConfig['balance'];

/** The OGM / OGM-GE callback: scores from each forward, modulation after backward, before gradient sync and clipping. */
export class GradientModulation implements Callback {
  #model: FusionClassifier | null = null;
  #text: Tensor[] = [];
  #image: Tensor[] = [];
  #score = { text: 0, image: 0 };
  #log = { text: 0, image: 0, ratio: 0, n: 0 };
  constructor(readonly config: BalanceConfig) {}

  #active(epoch: number): boolean {
    const c = this.config;
    return epoch >= c.startEpoch && (c.endEpoch === null || epoch < c.endEpoch);
  }

  onTrainStart(ctx: TrainContext): void {
    if (!(ctx.model instanceof FusionClassifier)) throw new MmtrainError('balance.method: modality balancing needs the fusion classifier (it modulates its two encoders)');
    this.#model = ctx.model;
    this.#text = ctx.model.text_encoder.parameters().filter((p) => p.requiresGrad);
    this.#image = ctx.model.image_encoder.parameters().filter((p) => p.requiresGrad);
  }

  onForward(_ctx: TrainContext, info: { outputs: FusionOutputs; labels: Tensor }): void {
    const s = modalityScores(this.#model!, info.outputs.textVector, info.outputs.imageVector, info.labels);
    this.#score.text += s.text;
    this.#score.image += s.image;
  }

  // Before the cross-rank gradient sum: every rank scales its own gradients by coefficients from the scores of all
  // ranks, so the summed gradient is modulated exactly once and the ranks stay identical.
  onBeforeGradSync(ctx: TrainContext): void {
    const [text, image] = ctx.allreduceSum([this.#score.text, this.#score.image]) as [number, number];
    this.#score = { text: 0, image: 0 };
    if (!this.#active(ctx.state.epoch)) return;
    const k = ogmCoefficients(text, image, this.config.alpha);
    const gaussian = this.config.method === 'ogm-ge';
    for (const [params, coeff] of [[this.#text, k.text], [this.#image, k.image]] as const) {
      // the original modulates only the suppressed side by coeff; GE noise goes on both encoders' gradients
      if (coeff === 1 && !gaussian) continue;
      for (const p of params) {
        const g = p.grad;
        if (!g) continue;
        try {
          modulateGradient(g, coeff, gaussian);
        } finally {
          g.dispose();
        }
      }
    }
    this.#log.text += k.text;
    this.#log.image += k.image;
    this.#log.ratio += k.ratio;
    this.#log.n++;
  }

  onStepEnd(ctx: TrainContext, info: StepInfo): void {
    if (info.skipped || info.step % ctx.config.log.every !== 0 || !this.#log.n) return;
    const n = this.#log.n;
    ctx.log({ event: 'balance', step: info.step, epoch: info.epoch, method: this.config.method, coeff_text: this.#log.text / n, coeff_image: this.#log.image / n, score_ratio: this.#log.ratio / n });
    this.#log = { text: 0, image: 0, ratio: 0, n: 0 };
  }
}
