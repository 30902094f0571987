// AdamW and gradient clipping. The math is LibTorch's (torch::optim::AdamW, torch::nn::utils::clip_grad_norm_):
// bias-corrected moments and decoupled weight decay exactly as torch.optim.AdamW, stepped for every parameter
// in one native call.
import { noGrad } from '../tensor/modes.js';
import { MmtrainError, checkNumber, invalid } from '../errors.js';
import { native } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

export interface ParamGroup extends AdamWOptions {
  params: Tensor[];
  /** a label for logs (e.g. "text_encoder", "no_decay") */
  name?: string;
}

interface ResolvedGroup {
  params: Tensor[];
  name: string;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

/** Moment tensors of one parameter, as saved in checkpoints. */
export interface AdamWParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  maxExpAvgSq: Tensor | null;
}

export class AdamW {
  readonly groups: ResolvedGroup[];
  #id: number;

  constructor(params: Tensor[] | ParamGroup[], defaults: AdamWOptions = {}) {
    if (!Array.isArray(params) || params.length === 0) invalid('params', 'a non-empty array of Tensors or parameter groups', params);
    const groups: ParamGroup[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.groups = groups.map((g, i) => {
      if (!Array.isArray(g.params) || !g.params.every((p) => p instanceof Tensor)) invalid(`groups[${i}].params`, 'an array of Tensors', g.params);
      const o = { ...defaults, ...g };
      const betas = o.betas ?? [0.9, 0.999];
      if (!Array.isArray(betas) || betas.length !== 2) invalid(`groups[${i}].betas`, 'a pair [beta1, beta2]', betas);
      return {
        params: g.params,
        name: g.name ?? `group${i}`,
        lr: checkNumber(`groups[${i}].lr`, o.lr ?? 1e-3, 0),
        betas: [checkNumber(`groups[${i}].betas[0]`, betas[0], 0, 0.999999999), checkNumber(`groups[${i}].betas[1]`, betas[1], 0, 0.999999999)],
        eps: checkNumber(`groups[${i}].eps`, o.eps ?? 1e-8, 0),
        weightDecay: checkNumber(`groups[${i}].weightDecay`, o.weightDecay ?? 1e-2, 0),
        amsgrad: o.amsgrad ?? false,
      };
    });
    const seen = new Set<Tensor>();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new MmtrainError(`AdamW: a parameter appears in more than one group (group "${g.name}")`);
        seen.add(p);
      }
    }
    this.#id = native.adamwCreate(this.groups.map((g) => ({
      params: g.params.map((p) => p.handle), lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps,
      weightDecay: g.weightDecay, amsgrad: g.amsgrad,
    })));
  }

  /** Updates every parameter that has a gradient. */
  step(): void {
    native.adamwStep(this.#handle());
  }

  /** Clears gradients (set to none). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  setLr(group: number, lr: number): void {
    const g = this.groups[group];
    if (!g) invalid('group', `an index below ${this.groups.length}`, group);
    g.lr = checkNumber('lr', lr, 0);
    native.adamwSetLr(this.#handle(), group, g.lr);
  }

  /** State of parameter `index` of `group`, or null before its first step. Tensors are copies' owners: dispose them. */
  getState(group: number, index: number): AdamWParamState | null {
    const s = native.adamwGetState(this.#handle(), group, index);
    if (!s) return null;
    return { step: s[0], expAvg: new Tensor(s[1]), expAvgSq: new Tensor(s[2]), maxExpAvgSq: s[3] < 0 ? null : new Tensor(s[3]) };
  }

  setState(group: number, index: number, st: AdamWParamState): void {
    native.adamwSetState(this.#handle(), group, index, st.step, st.expAvg.handle, st.expAvgSq.handle, st.maxExpAvgSq ? st.maxExpAvgSq.handle : -1);
  }

  dispose(): void {
    if (this.#id >= 0) native.adamwFree(this.#id);
    this.#id = -1;
  }

  #handle(): number {
    if (this.#id < 0) throw new MmtrainError('AdamW was disposed');
    return this.#id;
  }
}

/**
 * Scales gradients so that their global norm is at most maxNorm; returns the norm before clipping (NaN/Inf when
 * a gradient is non-finite, for the caller to skip the step).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  checkNumber('maxNorm', maxNorm, 0);
  // LibTorch takes max_norm as a float: anything above FLT_MAX (Infinity, Number.MAX_VALUE) means "never clip"
  return native.clipGradNorm(params.map((p) => p.handle), Math.min(maxNorm, 3.4028234663852886e38), checkNumber('normType', normType, 0));
}

/** Multiplies every parameter's gradient by `factor` in place (parameters without a gradient are skipped). */
export function scaleGradients(params: Tensor[], factor: number): void {
  noGrad(() => {
    for (const p of params) {
      const g = p.grad;
      if (!g) continue;
      g.mul_(factor);
      g.dispose();
    }
  });
}
