// torch.nn.MultiheadAttention semantics: packed in_proj_weight (3E, E) and in_proj_bias (3E), out_proj Linear,
// key_padding_mask (true = padding, ignored), attn_mask (bool true = not allowed, or additive float), batch_first.
import { MmtrainError, checkInt, checkNumber } from '../errors.js';
import * as F from '../tensor/functional.js';
import { Tensor, empty, zeros } from '../tensor/tensor.js';
import { xavierUniform_, zeros_ } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

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
    // Work batch-first: (B, T, C).
    const q0 = this.batchFirst ? query : query.transpose(0, 1); // (T, B, C) -> (B, T, C)
    const k0 = this.batchFirst ? key : key.transpose(0, 1);
    const v0 = this.batchFirst ? value : value.transpose(0, 1);
    if (q0.ndim !== 3 || k0.ndim !== 3 || v0.ndim !== 3 || q0.size(2) !== E || k0.size(2) !== E || v0.size(2) !== E) {
      throw new MmtrainError(
        `MultiheadAttention: expected query, key and value of shape ${this.batchFirst ? '(B, T, C)' : '(T, B, C)'} with C = ${E} ` +
          `but received [${query.shape.join(', ')}], [${key.shape.join(', ')}], [${value.shape.join(', ')}]`,
      );
    }
    const [B, T] = [q0.size(0), q0.size(1)];
    const S = k0.size(1);
    let q: Tensor, k: Tensor, v: Tensor;
    if (query === key && key === value) {
      // Self-attention: one matmul with the packed weight, as torch does.
      const qkv = F.linear(q0, this.inProjWeight, this.inProjBias).view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4); // (B, T, 3C) -> (3, B, nh, T, hs)
      [q, k, v] = [qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2)];
    } else {
      const [wq, wk, wv] = this.inProjWeight.chunk(3, 0);
      const [bq, bk, bv] = this.inProjBias ? this.inProjBias.chunk(3, 0) : [null, null, null];
      q = F.linear(q0, wq!, bq).view(B, T, nh, hs).transpose(1, 2); // (B, T, C) -> (B, nh, T, hs)
      k = F.linear(k0, wk!, bk).view(B, S, nh, hs).transpose(1, 2); // (B, S, C) -> (B, nh, S, hs)
      v = F.linear(v0, wv!, bv).view(B, S, nh, hs).transpose(1, 2); // (B, S, C) -> (B, nh, S, hs)
    }

    const mask = this.#additiveMask(opts, B, T, S, q.dtype); // broadcastable to (B, nh, T, S), or null
    const p = this.training ? this.dropout : 0;
    let y: Tensor;
    let weights: Tensor | null = null;
    if (opts.needWeights ?? true) {
      let scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(hs)); // (B, nh, T, S)
      if (mask) scores = scores.add(mask);
      const att = F.softmax(scores, -1);
      const attDrop = p > 0 ? F.dropout(att, p, true) : att;
      y = attDrop.matmul(v); // (B, nh, T, hs)
      weights = (opts.averageAttnWeights ?? true) ? att.mean(1) : att; // (B, T, S) or (B, nh, T, S)
    } else {
      y = F.scaledDotProductAttention(q, k, v, { attnMask: mask, dropoutP: p });
    }
    y = y.transpose(1, 2).reshape(B, T, E); // (B, nh, T, hs) -> (B, T, C)
    let output = this.outProj.forward(y);
    if (!this.batchFirst) output = output.transpose(0, 1); // (B, T, C) -> (T, B, C)
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
