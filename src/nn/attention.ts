// torch.nn.MultiheadAttention semantics: packed in_proj_weight (3E, E) and in_proj_bias (3E), out_proj Linear,
// key_padding_mask (true = padding, ignored), attn_mask (bool true = not allowed, or additive float), batch_first.
import { MmtrainError, checkInt, checkNumber } from '../errors.js';
import * as F from '../tensor/functional.js';
import { libtorchVersion } from '../tensor/modes.js';
import { Tensor, empty, zeros } from '../tensor/tensor.js';
import { xavierUniform_, zeros_ } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

// LibTorch 2.x has fused CPU attention kernels; 1.13's sdpa is a composite, slower than the batched form here.
const FUSED_SDPA = Number(libtorchVersion().split('.')[0]) >= 2;

export interface MultiheadAttentionOptions {
  dropout?: number;
  bias?: boolean;
  batchFirst?: boolean;
}

export interface MhaForwardOptions {
  /** (B, S) boolean, true where the key is padding. */
  keyPaddingMask?: Tensor | null;
  /** Return attention weights (computed with the composed path). Default true, as in torch. */
  needWeights?: boolean;
  /** (T, S) or (B*nh, T, S): boolean true = may NOT attend, or an additive float mask. */
  attnMask?: Tensor | null;
  /** Average weights over heads (default true). */
  averageAttnWeights?: boolean;
}

export class MultiheadAttention extends Module {
  readonly inProjWeight: Tensor;
  readonly inProjBias: Tensor | null;
  readonly outProj: Linear;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;

  constructor(readonly embedDim: number, readonly numHeads: number, opts: MultiheadAttentionOptions = {}) {
    super();
    checkInt('embedDim', embedDim, 1);
    checkInt('numHeads', numHeads, 1);
    if (embedDim % numHeads !== 0) {
      throw new MmtrainError(`Expected embedDim (${embedDim}) to be divisible by numHeads (${numHeads}) for MultiheadAttention`);
    }
    this.headDim = embedDim / numHeads;
    this.dropout = checkNumber('dropout', opts.dropout ?? 0, 0, 1);
    this.batchFirst = opts.batchFirst ?? false;
    const bias = opts.bias ?? true;
    this.inProjWeight = this.registerParameter('in_proj_weight', empty([3 * embedDim, embedDim]));
    this.inProjBias = bias ? this.registerParameter('in_proj_bias', zeros([3 * embedDim])) : null;
    this.outProj = this.registerModule('out_proj', new Linear(embedDim, embedDim, { bias }));
    xavierUniform_(this.inProjWeight);
    if (this.outProj.bias) zeros_(this.outProj.bias); // as in torch: out_proj.bias starts at zero
  }

  /** Returns the attended output, shaped like query, and the weights when needWeights. */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: MhaForwardOptions = {}): { output: Tensor; weights: Tensor | null } {
    const E = this.embedDim;
    const nh = this.numHeads;
    const hs = this.headDim;
    // Work sequence-first, (T, B, C), as torch does: heads then become a batch of B*nh matrices that the batched
    // matmuls read in place (measured faster than (B, nh, T, hs) on LibTorch 1.13's CPU kernels).
    const q0 = this.batchFirst ? query.transpose(0, 1) : query; // (B, T, C) -> (T, B, C)
    const k0 = this.batchFirst ? key.transpose(0, 1) : key;
    const v0 = this.batchFirst ? value.transpose(0, 1) : value;
    if (q0.ndim !== 3 || k0.ndim !== 3 || v0.ndim !== 3 || q0.size(2) !== E || k0.size(2) !== E || v0.size(2) !== E) {
      throw new MmtrainError(
        `MultiheadAttention: expected query, key and value of shape ${this.batchFirst ? '(B, T, C)' : '(T, B, C)'} with C = ${E} ` +
          `but received [${query.shape.join(', ')}], [${key.shape.join(', ')}], [${value.shape.join(', ')}]`,
      );
    }
    const [T, B] = [q0.size(0), q0.size(1)];
    const S = k0.size(0);
    let q: Tensor, k: Tensor, v: Tensor;
    if (query === key && key === value) {
      // Self-attention: one matmul with the packed weight.
      [q, k, v] = F.linear(q0, this.inProjWeight, this.inProjBias).chunk(3, -1) as [Tensor, Tensor, Tensor]; // (T, B, 3C) -> 3 x (T, B, C)
    } else if (key === value) {
      // Cross-attention with one memory (the usual case): one matmul projects it to keys and values.
      const [wq, wkv] = this.inProjWeight.split([E, 2 * E], 0);
      const [bq, bkv] = this.inProjBias ? this.inProjBias.split([E, 2 * E], 0) : [null, null];
      q = F.linear(q0, wq!, bq);
      [k, v] = F.linear(k0, wkv!, bkv).chunk(2, -1) as [Tensor, Tensor]; // (S, B, 2C) -> 2 x (S, B, C)
    } else {
      const [wq, wk, wv] = this.inProjWeight.chunk(3, 0);
      const [bq, bk, bv] = this.inProjBias ? this.inProjBias.chunk(3, 0) : [null, null, null];
      [q, k, v] = [F.linear(q0, wq!, bq), F.linear(k0, wk!, bk), F.linear(v0, wv!, bv)];
    }
    const heads = (t: Tensor, L: number) => t.contiguous().view(L, B * nh, hs).transpose(0, 1); // (L, B, C) -> (B*nh, L, hs)
    const qh = heads(q, T);
    const kh = heads(k, S);
    const vh = heads(v, S);

    const mask = this.#additiveMask(opts, B, T, S, q.dtype); // broadcastable to (B, nh, T, S), or null
    const p = this.training ? this.dropout : 0;
    let y: Tensor; // (B*nh, T, hs)
    let weights: Tensor | null = null;
    if ((opts.needWeights ?? true) || !FUSED_SDPA) {
      let scores = qh.mul(1 / Math.sqrt(hs)).bmm(kh.transpose(1, 2)); // (B*nh, T, S)
      if (mask) scores = scores.view(B, nh, T, S).add(mask).view(B * nh, T, S);
      const att = F.softmax(scores, -1);
      y = (p > 0 ? F.dropout(att, p, true) : att).bmm(vh);
      if (opts.needWeights ?? true) {
        const perHead = att.view(B, nh, T, S);
        weights = (opts.averageAttnWeights ?? true) ? perHead.mean(1) : perHead; // (B, T, S) or (B, nh, T, S)
      }
    } else {
      const view4 = (t: Tensor, L: number) => t.view(B, nh, L, hs); // (B*nh, L, hs) -> (B, nh, L, hs)
      y = F.scaledDotProductAttention(view4(qh, T), view4(kh, S), view4(vh, S), { attnMask: mask, dropoutP: p }).view(B * nh, T, hs);
    }
    const merged = y.transpose(0, 1).contiguous().view(T, B, E); // (B*nh, T, hs) -> (T, B, C)
    let output = this.outProj.forward(merged);
    if (this.batchFirst) output = output.transpose(0, 1); // (T, B, C) -> (B, T, C)
    return { output, weights };
  }

  /** Combines key_padding_mask and attn_mask into one additive float mask (0 or -inf). */
  #additiveMask(opts: MhaForwardOptions, B: number, T: number, S: number, dtype: Tensor['dtype']): Tensor | null {
    let mask: Tensor | null = null;
    const kpm = opts.keyPaddingMask;
    if (kpm) {
      if (kpm.ndim !== 2 || kpm.size(0) !== B || kpm.size(1) !== S) {
        throw new MmtrainError(`MultiheadAttention: expected keyPaddingMask of shape [${B}, ${S}] (batch, keys) but received [${kpm.shape.join(', ')}]`);
      }
      const pad = kpm.dtype === 'bool' ? kpm : kpm.ne(0);
      mask = zeros([B, 1, 1, S], { dtype }).maskedFill(pad.view(B, 1, 1, S), -Infinity); // (B, S) -> (B, 1, 1, S)
    }
    const am = opts.attnMask;
    if (am) {
      let m: Tensor;
      if (am.dtype === 'bool') m = zeros(am.shape, { dtype }).maskedFill(am, -Infinity);
      else m = am;
      if (m.ndim === 3) m = m.view(B, this.numHeads, T, S); // (B*nh, T, S) -> (B, nh, T, S)
      mask = mask ? mask.add(m) : m;
    }
    return mask;
  }
}

/** float32's lowest value: what an additive attention mask adds for a key that may not be attended */
export const MASK_LOWEST = -3.4028234663852886e38;

/**
 * The additive key-padding mask of a (B, T) attention mask (1 for real tokens): 0 for real keys, MASK_LOWEST for
 * padding, (B, 1, 1, T) to broadcast over heads and queries (BERT's, DistilBERT's, CLIP's and SigLIP's text encoders).
 */
export function additivePaddingMask(attentionMask: Tensor): Tensor {
  const [B, T] = attentionMask.shape as [number, number];
  return attentionMask.float().rsub(1).mul(MASK_LOWEST).view(B, 1, 1, T); // (B, T) -> (B, 1, 1, T)
}
