// Dynamic loss scaling for fp16 training, PyTorch's GradScaler algorithm: the loss is multiplied by the scale
// before backward so small fp16 gradients do not flush to zero; gradients are unscaled (multiplied by the float32
// reciprocal of the scale) before clipping; a step whose unscaled gradients hold inf/NaN is skipped and the scale
// multiplied by backoffFactor; after growthInterval good steps in a row it is multiplied by growthFactor. The scale
// is a float32, as PyTorch keeps it. Its state travels in trainer_state.json, so a resumed run continues exactly.
import type { Tensor } from '../tensor/tensor.js';
import { scaleGradients } from './optim.js';

export interface LossScaleConfig {
  init: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
}

export interface LossScalerState {
  scale: number;
  /** good steps in a row since the scale last changed */
  growthTracker: number;
}

export class LossScaler {
  #scale: number;
  #tracker: number;
  readonly config: LossScaleConfig;

  constructor(config: LossScaleConfig, state?: LossScalerState | null) {
    this.config = config;
    this.#scale = Math.fround(state?.scale ?? config.init);
    this.#tracker = state?.growthTracker ?? 0;
  }

  get scale(): number { return this.#scale; }
  get state(): LossScalerState { return { scale: this.#scale, growthTracker: this.#tracker }; }

  /** loss x scale, for backward. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.#scale);
  }

  /** Multiplies every gradient by the float32 reciprocal of the scale (PyTorch: scale.double().reciprocal().float()). */
  unscale(params: Tensor[]): void {
    scaleGradients(params, Math.fround(1 / this.#scale));
  }

  /**
   * After a step: `foundInf` (the unscaled gradients held inf or NaN, so the step was skipped) backs the scale
   * off; otherwise a good step counts toward growth. Returns the new scale.
   */
  update(foundInf: boolean): number {
    const c = this.config;
    if (foundInf) {
      this.#scale = Math.fround(this.#scale * c.backoffFactor);
      this.#tracker = 0;
    } else if (this.#tracker + 1 === c.growthInterval) {
      const grown = Math.fround(this.#scale * c.growthFactor);
      if (Number.isFinite(grown)) this.#scale = grown; // PyTorch grows only to a finite scale
      this.#tracker = 0;
    } else {
      this.#tracker++;
    }
    return this.#scale;
  }
}
