// Functional neural-network ops (torch.nn.functional counterparts). Numerics are LibTorch's.
import { checkInt, checkNumber, invalid } from '../errors.js';
import type { DType } from './dtype.js';
import { native } from './native.js';
import { type InterpolationMode, type LossReduction, INTERPOLATION_CODES, LOSS_REDUCTION_CODES, dtypeCode } from './native-codes.js';
import { Tensor } from './tensor.js';

export type Reduction = LossReduction;

function reductionCode(r: Reduction): number {
  const c = LOSS_REDUCTION_CODES[r];
  if (c === undefined) invalid('reduction', '"none", "mean" or "sum"', r);
  return c;
}

function pair(name: string, v: number | [number, number]): number[] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 0)) invalid(name, 'a non-negative integer or a pair of them', v);
  return p;
}

/** y = x W^T + b, with W of shape (out, in) as in torch.nn.Linear. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(native.linear(x.handle, weight.handle, bias ? bias.handle : -1));
}

export function layerNorm(x: Tensor, normalizedShape: number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight ? weight.handle : -1, bias ? bias.handle : -1, checkNumber('eps', eps, 0)));
}

export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return new Tensor(native.softmax(x.handle, checkInt('dim', dim), dtype ? dtypeCode(dtype) : -1));
}

export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return new Tensor(native.logSoftmax(x.handle, checkInt('dim', dim), dtype ? dtypeCode(dtype) : -1));
}

export function relu(x: Tensor): Tensor {
  return x.relu();
}

export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return x.gelu(approximate);
}

/** Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return new Tensor(native.dropout(x.handle, checkNumber('p', p, 0, 1), training));
}

export function embedding(indices: Tensor, weight: Tensor, paddingIdx = -1): Tensor {
  return new Tensor(native.embedding(weight.handle, indices.handle, checkInt('paddingIdx', paddingIdx)));
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  return new Tensor(native.conv2d(
    x.handle, weight.handle, bias ? bias.handle : -1,
    pair('stride', opts.stride ?? 1), pair('padding', opts.padding ?? 0), pair('dilation', opts.dilation ?? 1),
    checkInt('groups', opts.groups ?? 1, 1),
  ));
}

export interface AttentionOptions {
  /** Boolean (true = may attend) or additive float mask, broadcastable to (B, nh, Tq, Tk). */
  attnMask?: Tensor | null;
  dropoutP?: number;
  isCausal?: boolean;
  /** Defaults to 1/sqrt(hs). */
  scale?: number;
}

/**
 * softmax(q k^T * scale + mask) v over (..., T, hs) inputs. LibTorch's fused kernel where it has one (2.x),
 * its composite form on 1.13.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  return new Tensor(native.sdpa(
    q.handle, k.handle, v.handle, opts.attnMask ? opts.attnMask.handle : -1, checkNumber('dropoutP', opts.dropoutP ?? 0, 0, 1),
    opts.isCausal ?? false, opts.scale === undefined ? null : checkNumber('scale', opts.scale),
  ));
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross-entropy over logits (N, C) or (N, C, ...) with class indices or class probabilities as target. */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return new Tensor(native.crossEntropy(
    logits.handle, target.handle, opts.weight ? opts.weight.handle : -1, reductionCode(opts.reduction ?? 'mean'),
    checkInt('ignoreIndex', opts.ignoreIndex ?? -100), checkNumber('labelSmoothing', opts.labelSmoothing ?? 0, 0, 1),
  ));
}

export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  return new Tensor(native.mseLoss(a.handle, b.handle, reductionCode(reduction)));
}

export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return new Tensor(native.bceWithLogits(logits.handle, target.handle, reductionCode(reduction)));
}

/** Resizes (B, C, H, W) to size [H', W'] (used to interpolate ViT position embeddings). */
export function interpolate(x: Tensor, size: [number, number], mode: InterpolationMode = 'bilinear', alignCorners = false): Tensor {
  const m = INTERPOLATION_CODES[mode];
  if (m === undefined) invalid('mode', '"bilinear", "bicubic" or "nearest"', mode);
  return new Tensor(native.interpolate(x.handle, pair('size', size), m, alignCorners));
}

/**
 * uint8 images (B, H, W, 3) -> float32 (B, 3, H, W) normalised per channel: (x / 255 - mean) / std, in one pass
 * (torchvision's ToTensor + Normalize on a batch).
 */
export function normalizeImages(u8: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  const shape = u8.shape;
  if (u8.dtype !== 'uint8' || shape.length !== 4 || shape[3] !== 3) invalid('images', 'a uint8 tensor of shape (B, H, W, 3)', `${u8.dtype} (${shape.join(', ')})`);
  for (const [name, v] of [['mean', mean], ['std', std]] as const) {
    if (v.length !== 3 || !v.every((x) => Number.isFinite(x))) invalid(name, 'three finite numbers (R, G, B)', v);
  }
  if (std.some((s) => s <= 0)) invalid('std', 'three positive numbers', std);
  return new Tensor(native.normalizeImages(u8.handle, [...mean], [...std]));
}
