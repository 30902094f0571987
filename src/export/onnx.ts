// Export of a trained fusion classifier as one ONNX graph (`mmtrain export --format onnx`), written from TypeScript
// with onnx-proto: no Python, no tracing. The graph is built from the model's modules, top to bottom as the model
// files read (BERT embeddings and layers, ViT patches and layers, the fusion, the head), in eval mode (dropout off).
//
//   inputs   input_ids (batch, sequence) int64, attention_mask (batch, sequence) int64,
//            [token_type_ids (batch, sequence) int64, with tokenTypeIds], pixel_values (batch, 3, S, S) float32
//   output   logits (batch, num_labels) float32
//
// Linear weights are stored transposed, (in, out), for MatMul; names are the checkpoint's keys. Options:
//   fp16  weights stored as float16 (half the file), cast to float32 when the session loads: computed in float32
//   int8  every Linear dynamically quantised: int8 weights with one scale per output column, activations quantised
//         per batch (DynamicQuantizeLinear + MatMulInteger, standard ONNX); embeddings, norms and the patch
//         convolution stay float
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MmtrainError } from '../errors.js';
import { MASK_LOWEST } from '../nn/attention.js';
import { writeFolderAtomic, writeJsonAtomic } from '../files.js';
import { TextTokenizer } from '../data/tokenizer.js';
import type { BertLikeConfig } from '../models/bert.js';
import type { DistilBertConfig } from '../models/distilbert-config.js';
import { hasClassToken, summarisesLast, textWidth } from '../models/encoder-configs.js';
import type { CLIPTextConfig, CLIPVisionConfig } from '../models/clip-config.js';
import type { CLIPLayerConfig } from '../models/clip.js';
import type { SiglipTextConfig, SiglipVisionConfig } from '../models/siglip-config.js';
import { FusionClassifier } from '../models/fusion.js';
import type { ViTLikeConfig, ViTModel } from '../models/vit.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { readInferenceInfo } from '../train/checkpoint.js';
import { OnnxGraph, PROTOBUF_LIMIT, bytesOf } from './onnx-graph.js';

export const ONNX_OPSET = 17;

export interface OnnxExportOptions {
  /** weights as float16 (computed in float32) */
  fp16?: boolean;
  /** Linear layers dynamically quantised to int8 */
  int8?: boolean;
  /** a token_type_ids input (default: none, every token in segment 0, as mmtrain's single-text tokenization) */
  tokenTypeIds?: boolean;
  /** weights in model.onnx.data beside model.onnx: true, false, or "auto" (when over protobuf's 2 GB limit) */
  externalData?: boolean | 'auto';
}

/** The lowering's state: the graph, the model's weights by checkpoint key, and how Linear weights are stored. */
class Lowering {
  readonly g = new OnnxGraph();
  constructor(readonly sd: Map<string, Tensor>, readonly opts: OnnxExportOptions) {}

  #tensor(key: string): Tensor {
    const t = this.sd.get(key);
    if (!t) throw new MmtrainError(`ONNX export: the model has no weight "${key}"`);
    return t;
  }

  /** A float weight as it is (embeddings, norms, biases): float32, or float16 cast back when the session loads. */
  weight(key: string, t: Tensor = this.#tensor(key)): string {
    return tidy(() => {
      if (!this.opts.fp16) return this.g.initializer(key, 'float32', t.shape, bytesOf(t.float().contiguous().toFloat32Array()));
      const half = this.g.initializer(key, 'float16', t.shape, t.to('float16').contiguous().toBuffer());
      return this.g.op('Cast', [half], { to: { i: 1 } }, `${key}_f32`);
    });
  }

  /** x @ W^T + b for the Linear at `prefix` (weight (out, in)), or for an explicit weight and bias. */
  linear(x: string, prefix: string, w: Tensor = this.#tensor(`${prefix}.weight`), b: Tensor | null = this.sd.get(`${prefix}.bias`) ?? null): string {
    let y: string;
    if (this.opts.int8) {
      y = this.#int8MatMul(x, prefix, w);
    } else {
      const wt = tidy(() => w.transpose(0, 1).contiguous()); // (out, in) -> (in, out)
      y = this.g.op('MatMul', [x, this.weight(`${prefix}.weight`, wt)], {}, prefix);
      wt.dispose();
    }
    return b ? this.g.op('Add', [y, this.weight(`${prefix}.bias`, b)], {}, prefix) : y;
  }

  /** Dynamic int8: x quantised per call (uint8, scale, zero point), W^T int8 with a scale per output column. */
  #int8MatMul(x: string, prefix: string, w: Tensor): string {
    const [out, inp] = w.shape as [number, number];
    const W = tidy(() => w.float().contiguous().toFloat32Array()); // (out, in), row-major
    const q = new Int8Array(inp * out); // (in, out)
    const scales = new Float32Array(out);
    for (let o = 0; o < out; o++) {
      let m = 0;
      for (let i = 0; i < inp; i++) m = Math.max(m, Math.abs(W[o * inp + i]!));
      const s = m > 0 ? m / 127 : 1;
      scales[o] = s;
      for (let i = 0; i < inp; i++) q[i * out + o] = Math.max(-127, Math.min(127, Math.round(W[o * inp + i]! / s)));
    }
    const g = this.g;
    const [xq, xs, xz] = g.opN('DynamicQuantizeLinear', [x], 3, {}, `${prefix}_xq`);
    const wq = g.initializer(`${prefix}.weight_int8`, 'int8', [inp, out], bytesOf(q));
    const acc = g.op('MatMulInteger', [xq!, wq, xz!], {}, prefix); // int32
    const scale = g.op('Mul', [xs!, g.initializer(`${prefix}.weight_scale`, 'float32', [out], bytesOf(scales))], {}, `${prefix}_scale`);
    return g.op('Mul', [g.op('Cast', [acc], { to: { i: 1 } }, prefix), scale], {}, prefix);
  }

  layerNorm(x: string, prefix: string, eps: number): string {
    return this.g.op('LayerNormalization', [x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`)], { axis: { i: -1 }, epsilon: { f: eps } }, prefix);
  }

  activation(x: string, act: BertLikeConfig['hidden_act'] | 'quick_gelu', hint: string): string {
    const g = this.g;
    if (act === 'relu') return g.op('Relu', [x], {}, hint);
    if (act === 'quick_gelu') return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.scalar(1.702)], {}, hint)], {}, hint)], {}, hint); // x sigmoid(1.702 x)
    const half = g.op('Mul', [x, g.scalar(0.5)], {}, hint);
    if (act === 'gelu') { // 0.5 x (1 + erf(x / sqrt 2))
      const erf = g.op('Erf', [g.op('Mul', [x, g.scalar(Math.SQRT1_2)], {}, hint)], {}, hint);
      return g.op('Mul', [half, g.op('Add', [erf, g.scalar(1)], {}, hint)], {}, hint);
    }
    // the tanh form: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    const cube = g.op('Mul', [g.op('Mul', [x, x], {}, hint), x], {}, hint);
    const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, g.scalar(0.044715)], {}, hint)], {}, hint), g.scalar(Math.sqrt(2 / Math.PI))], {}, hint);
    return g.op('Mul', [half, g.op('Add', [g.op('Tanh', [inner], {}, hint), g.scalar(1)], {}, hint)], {}, hint);
  }

  /**
   * Scaled dot-product attention over projected q (B, T, C), k and v (B, S, C), nh heads, with an additive mask
   * broadcastable to (B, nh, T, S) or none; q is scaled before the product, as the model does.
   */
  attend(q: string, k: string, v: string, C: number, nh: number, mask: string | null, hint: string): string {
    const g = this.g;
    const hs = C / nh;
    const split = g.ints([0, 0, nh, hs]);
    const heads = (t: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [t, split], {}, hint)], { perm: { ints: perm } }, hint);
    const qh = heads(g.op('Mul', [q, g.scalar(1 / Math.sqrt(hs))], {}, hint), [0, 2, 1, 3]); // (B, T, C) -> (B, nh, T, hs)
    const kh = heads(k, [0, 2, 3, 1]); // (B, S, C) -> (B, nh, hs, S)
    const vh = heads(v, [0, 2, 1, 3]); // (B, S, C) -> (B, nh, S, hs)
    let scores = g.op('MatMul', [qh, kh], {}, hint); // (B, nh, T, S)
    if (mask) scores = g.op('Add', [scores, mask], {}, hint);
    const probs = g.op('Softmax', [scores], { axis: { i: -1 } }, hint);
    const ctx = g.op('Transpose', [g.op('MatMul', [probs, vh], {}, hint)], { perm: { ints: [0, 2, 1, 3] } }, hint); // (B, nh, T, hs) -> (B, T, nh, hs)
    return g.op('Reshape', [ctx, g.ints([0, 0, C])], {}, hint); // (B, T, nh, hs) -> (B, T, C)
  }

  /** h[:, i] for each sample's own position i (index: (B,) int64): (B, L, C) -> (B, C) */
  pick(h: string, index: string, C: number): string {
    const g = this.g;
    const B = g.op('Slice', [g.op('Shape', [h], {}, 'shape'), g.ints([0]), g.ints([1])], {}, 'B');
    const at = g.op('Expand', [g.op('Reshape', [index, g.ints([-1, 1, 1])], {}, 'pick'), g.op('Concat', [B, g.ints([1, C])], { axis: { i: 0 } }, 'pick_shape')], {}, 'pick'); // (B, 1, C)
    return g.op('Squeeze', [g.op('GatherElements', [h, at], { axis: { i: 1 } }, 'pick'), g.ints([1])], {}, 'pick');
  }

  /** h[:, 0]: (B, L, C) -> (B, C) */
  first(h: string): string {
    return this.g.op('Gather', [h, this.g.intScalar(0)], { axis: { i: 1 } }, 'first');
  }
}

// ---- BERT and RoBERTa (src/models/bert.ts, roberta.ts) ----

/** BertModel's (or RobertaModel's) last hidden state (B, T, C). */
function bert(L: Lowering, c: BertLikeConfig, ids: string, typeIds: string | null, maskAdd: string): { hidden: string } {
  const g = L.g;
  const p = 'text_encoder';
  // embeddings: words + positions + token types, then LayerNorm
  const words = g.op('Gather', [L.weight(`${p}.embeddings.word_embeddings.weight`), ids], { axis: { i: 0 } }, 'words'); // (B, T, C)
  const positionTable = L.weight(`${p}.embeddings.position_embeddings.weight`);
  let positions: string;
  if (c.model_type === 'roberta') {
    // RoBERTa: real tokens numbered pad + 1, pad + 2, ...; padding keeps the padding id
    const pad = g.intScalar(c.pad_token_id);
    const real = g.op('Cast', [g.op('Not', [g.op('Equal', [ids, pad], {}, 'is_pad')], {}, 'real')], { to: { i: 7 } }, 'real'); // (B, T) int64
    const index = g.op('Add', [g.op('Mul', [g.op('CumSum', [real, g.intScalar(1)], {}, 'positions'), real], {}, 'positions'), pad], {}, 'positions');
    positions = g.op('Gather', [positionTable, index], { axis: { i: 0 } }, 'positions'); // (B, T, C)
  } else {
    // BERT: positions 0 .. T - 1
    const T = g.op('Slice', [g.op('Shape', [ids], {}, 'shape'), g.ints([1]), g.ints([2])], {}, 'T'); // [T]
    positions = g.op('Slice', [positionTable, g.ints([0]), T, g.ints([0])], {}, 'positions'); // (T, C)
  }
  const typeTable = L.weight(`${p}.embeddings.token_type_embeddings.weight`);
  const types = typeIds ? g.op('Gather', [typeTable, typeIds], { axis: { i: 0 } }, 'types') : g.op('Gather', [typeTable, g.intScalar(0)], { axis: { i: 0 } }, 'types'); // (B, T, C) or (C)
  let h = L.layerNorm(g.op('Add', [g.op('Add', [words, positions]), types]), `${p}.embeddings.LayerNorm`, c.layer_norm_eps);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `${p}.encoder.layer.${i}`;
    // post-norm: LN(x + attention(x)), then LN(a + mlp(a))
    const s = `${l}.attention.self`;
    const ctx = L.attend(L.linear(h, `${s}.query`), L.linear(h, `${s}.key`), L.linear(h, `${s}.value`), c.hidden_size, c.num_attention_heads, maskAdd, s);
    const a = L.layerNorm(g.op('Add', [L.linear(ctx, `${l}.attention.output.dense`), h]), `${l}.attention.output.LayerNorm`, c.layer_norm_eps);
    const mid = L.activation(L.linear(a, `${l}.intermediate.dense`), c.hidden_act, `${l}.intermediate`);
    h = L.layerNorm(g.op('Add', [L.linear(mid, `${l}.output.dense`), a]), `${l}.output.LayerNorm`, c.layer_norm_eps);
  }
  return { hidden: h };
}

// ---- DistilBERT (src/models/distilbert.ts) ----

/** DistilBertModel's last hidden state (B, T, C): no token types, post-norm blocks under its own names. */
function distilbert(L: Lowering, c: DistilBertConfig, ids: string, maskAdd: string): { hidden: string } {
  const g = L.g;
  const p = 'text_encoder';
  const eps = 1e-12;
  const words = g.op('Gather', [L.weight(`${p}.embeddings.word_embeddings.weight`), ids], { axis: { i: 0 } }, 'words'); // (B, T, C)
  const T = g.op('Slice', [g.op('Shape', [ids], {}, 'shape'), g.ints([1]), g.ints([2])], {}, 'T'); // [T]
  const positions = g.op('Slice', [L.weight(`${p}.embeddings.position_embeddings.weight`), g.ints([0]), T, g.ints([0])], {}, 'positions'); // (T, C)
  let h = L.layerNorm(g.op('Add', [words, positions]), `${p}.embeddings.LayerNorm`, eps);
  for (let i = 0; i < c.n_layers; i++) {
    const l = `${p}.transformer.layer.${i}`;
    const s = `${l}.attention`;
    const ctx = L.attend(L.linear(h, `${s}.q_lin`), L.linear(h, `${s}.k_lin`), L.linear(h, `${s}.v_lin`), c.dim, c.n_heads, maskAdd, s);
    const a = L.layerNorm(g.op('Add', [L.linear(ctx, `${s}.out_lin`), h]), `${l}.sa_layer_norm`, eps);
    const mid = L.activation(L.linear(a, `${l}.ffn.lin1`), c.activation, `${l}.ffn`);
    h = L.layerNorm(g.op('Add', [L.linear(mid, `${l}.ffn.lin2`), a]), `${l}.output_layer_norm`, eps);
  }
  return { hidden: h };
}

// ---- CLIP (src/models/clip.ts) ----

/** CLIP's pre-norm layers at `prefix.encoder.layers.i`: x + attention(LN1(x)), then h + mlp(LN2(h)). */
function clipLayers(L: Lowering, c: CLIPLayerConfig, prefix: string, h0: string, mask: string | null): string {
  const g = L.g;
  let h = h0;
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `${prefix}.encoder.layers.${i}`;
    const x = L.layerNorm(h, `${l}.layer_norm1`, c.layer_norm_eps);
    const s = `${l}.self_attn`;
    h = g.op('Add', [h, L.linear(L.attend(L.linear(x, `${s}.q_proj`), L.linear(x, `${s}.k_proj`), L.linear(x, `${s}.v_proj`), c.hidden_size, c.num_attention_heads, mask, s), `${s}.out_proj`)]);
    const mid = L.activation(L.linear(L.layerNorm(h, `${l}.layer_norm2`, c.layer_norm_eps), `${l}.mlp.fc1`), c.hidden_act, `${l}.mlp`);
    h = g.op('Add', [h, L.linear(mid, `${l}.mlp.fc2`)]);
  }
  return h;
}

/** CLIPTextModel's last hidden state (B, T, C): causal attention over real tokens, the final LayerNorm. */
function clipText(L: Lowering, c: CLIPTextConfig, ids: string, maskAdd: string): { hidden: string } {
  const g = L.g;
  const p = 'text_encoder.text_model';
  const words = g.op('Gather', [L.weight(`${p}.embeddings.token_embedding.weight`), ids], { axis: { i: 0 } }, 'words'); // (B, T, C)
  const T = g.op('Slice', [g.op('Shape', [ids], {}, 'shape'), g.ints([1]), g.ints([2])], {}, 'T'); // [T]
  const positions = g.op('Slice', [L.weight(`${p}.embeddings.position_embedding.weight`), g.ints([0]), T, g.ints([0])], {}, 'positions'); // (T, C)
  // the causal mask: float32's lowest above the diagonal, cut to T x T, plus the padding mask (B, 1, 1, T)
  const P = c.max_position_embeddings;
  const table = new Float32Array(P * P);
  for (let r = 0; r < P; r++) for (let k = r + 1; k < P; k++) table[r * P + k] = MASK_LOWEST;
  const causal = g.op('Slice', [g.initializer('causal_mask', 'float32', [P, P], bytesOf(table)), g.ints([0, 0]), g.op('Concat', [T, T], { axis: { i: 0 } }, 'TT'), g.ints([0, 1])], {}, 'causal'); // (T, T)
  const mask = g.op('Max', [g.op('Add', [causal, maskAdd], {}, 'text_mask'), g.scalar(MASK_LOWEST)], {}, 'text_mask'); // (B, 1, T, T)
  const h = clipLayers(L, c, p, g.op('Add', [words, positions], {}, 'embeddings'), mask);
  return { hidden: L.layerNorm(h, `${p}.final_layer_norm`, c.layer_norm_eps) };
}

/** CLIPVisionModel's last hidden state (B, 1 + N, C) (before post_layernorm) and its pooled post_layernorm([CLS]). */
function clipVision(L: Lowering, c: CLIPVisionConfig, pixels: string): { hidden: string; pooled: string } {
  const g = L.g;
  const p = 'image_encoder.vision_model';
  const C = c.hidden_size;
  const P = c.patch_size;
  const conv = g.op('Conv', [pixels, L.weight(`${p}.embeddings.patch_embedding.weight`)], { kernel_shape: { ints: [P, P] }, strides: { ints: [P, P] } }, 'patches');
  const patches = g.op('Transpose', [g.op('Reshape', [conv, g.ints([0, C, -1])], {}, 'patches')], { perm: { ints: [0, 2, 1] } }, 'patches'); // (B, C, N) -> (B, N, C)
  const B = g.op('Slice', [g.op('Shape', [pixels], {}, 'shape'), g.ints([0]), g.ints([1])], {}, 'B');
  const cls = g.op('Expand', [g.op('Reshape', [L.weight(`${p}.embeddings.class_embedding`), g.ints([1, 1, C])], {}, 'cls'), g.op('Concat', [B, g.ints([1, C])], { axis: { i: 0 } }, 'cls_shape')], {}, 'cls');
  const tokens = g.op('Add', [g.op('Concat', [cls, patches], { axis: { i: 1 } }, 'tokens'), L.weight(`${p}.embeddings.position_embedding.weight`)], {}, 'tokens'); // (B, 1 + N, C)
  const h = clipLayers(L, c, p, L.layerNorm(tokens, `${p}.pre_layrnorm`, c.layer_norm_eps), null);
  return { hidden: h, pooled: L.layerNorm(L.first(h), `${p}.post_layernorm`, c.layer_norm_eps) };
}

// ---- SigLIP (src/models/siglip.ts) ----

/** SiglipTextModel's last hidden state (B, T, C): bidirectional attention over real tokens, the final LayerNorm. */
function siglipText(L: Lowering, c: SiglipTextConfig, ids: string, maskAdd: string): { hidden: string } {
  const g = L.g;
  const p = 'text_encoder.text_model';
  const words = g.op('Gather', [L.weight(`${p}.embeddings.token_embedding.weight`), ids], { axis: { i: 0 } }, 'words'); // (B, T, C)
  const T = g.op('Slice', [g.op('Shape', [ids], {}, 'shape'), g.ints([1]), g.ints([2])], {}, 'T'); // [T]
  const positions = g.op('Slice', [L.weight(`${p}.embeddings.position_embedding.weight`), g.ints([0]), T, g.ints([0])], {}, 'positions'); // (T, C)
  const h = clipLayers(L, c, p, g.op('Add', [words, positions], {}, 'embeddings'), maskAdd);
  return { hidden: L.layerNorm(h, `${p}.final_layer_norm`, c.layer_norm_eps) };
}

/** SiglipVisionModel's last hidden state (B, N, C) (after post_layernorm, no class token) and its attention-pooled vector. */
function siglipVision(L: Lowering, c: SiglipVisionConfig, pixels: string): { hidden: string; pooled: string } {
  const g = L.g;
  const p = 'image_encoder.vision_model';
  const C = c.hidden_size;
  const P = c.patch_size;
  const conv = g.op('Conv', [pixels, L.weight(`${p}.embeddings.patch_embedding.weight`), L.weight(`${p}.embeddings.patch_embedding.bias`)], { kernel_shape: { ints: [P, P] }, strides: { ints: [P, P] } }, 'patches');
  const patches = g.op('Transpose', [g.op('Reshape', [conv, g.ints([0, C, -1])], {}, 'patches')], { perm: { ints: [0, 2, 1] } }, 'patches'); // (B, C, N) -> (B, N, C)
  const h = L.layerNorm(clipLayers(L, c, p, g.op('Add', [patches, L.weight(`${p}.embeddings.position_embedding.weight`)], {}, 'tokens'), null), `${p}.post_layernorm`, c.layer_norm_eps);
  // the head: a probe (1, 1, C) per image attends to the tokens, then a residual MLP over its LayerNorm
  const B = g.op('Slice', [g.op('Shape', [pixels], {}, 'shape'), g.ints([0]), g.ints([1])], {}, 'B');
  const probe = g.op('Expand', [L.weight(`${p}.head.probe`), g.op('Concat', [B, g.ints([1, C])], { axis: { i: 0 } }, 'probe_shape')], {}, 'probe'); // (B, 1, C)
  const a = multiheadAttention(L, `${p}.head.attention`, probe, h, C, c.num_attention_heads, null); // (B, 1, C)
  const mid = L.activation(L.linear(L.layerNorm(a, `${p}.head.layernorm`, c.layer_norm_eps), `${p}.head.mlp.fc1`), c.hidden_act, `${p}.head.mlp`);
  return { hidden: h, pooled: L.first(g.op('Add', [a, L.linear(mid, `${p}.head.mlp.fc2`)], {}, 'image_pooled')) };
}

// ---- ViT (src/models/vit.ts) ----

/**
 * ViTModel's (or DeiTModel's) last hidden state (B, 1 + N, C), [CLS] first (then DeiT's [DIST]), and its pooled
 * [CLS] vector when it has a pooler.
 */
function vit(L: Lowering, model: FusionClassifier, c: ViTLikeConfig, pixels: string, size: number): { hidden: string; pooled: string | null } {
  const enc = model.image_encoder as ViTModel;
  const g = L.g;
  const p = 'image_encoder';
  const C = c.hidden_size;
  const P = c.patch_size;
  // patches: a P x P convolution with stride P, (B, 3, S, S) -> (B, C, S/P, S/P) -> (B, N, C)
  const conv = g.op('Conv', [pixels, L.weight(`${p}.embeddings.patch_embeddings.projection.weight`), L.weight(`${p}.embeddings.patch_embeddings.projection.bias`)],
    { kernel_shape: { ints: [P, P] }, strides: { ints: [P, P] } }, 'patches');
  const patches = g.op('Transpose', [g.op('Reshape', [conv, g.ints([0, C, -1])], {}, 'patches')], { perm: { ints: [0, 2, 1] } }, 'patches'); // (B, C, N) -> (B, N, C)
  // [CLS] for every image: (1, 1, C) expanded to (B, 1, C)
  const B = g.op('Slice', [g.op('Shape', [pixels], {}, 'shape'), g.ints([0]), g.ints([1])], {}, 'B');
  const special = (key: string) => g.op('Expand', [L.weight(`${p}.embeddings.${key}`), g.op('Concat', [B, g.ints([1, C])], { axis: { i: 0 } }, 'cls_shape')], {}, key);
  const tokens = [special('cls_token'), ...(c.model_type === 'deit' ? [special('distillation_token')] : []), patches];
  // position embeddings for this image size (interpolated by the model when it differs from the checkpoint's)
  const pos = tidy(() => enc.embeddings.positionEmbeddingsFor(size / P, size / P).contiguous());
  let h = g.op('Add', [g.op('Concat', tokens, { axis: { i: 1 } }, 'tokens'), L.weight(`${p}.embeddings.position_embeddings`, pos)], {}, 'tokens'); // (B, 1 + N, C)
  if (pos !== enc.embeddings.position_embeddings) pos.dispose();
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `${p}.encoder.layer.${i}`;
    // pre-norm: x + attention(LN(x)), then h + mlp(LN(h))
    const x = L.layerNorm(h, `${l}.layernorm_before`, c.layer_norm_eps);
    const s = `${l}.attention.attention`;
    const ctx = L.attend(L.linear(x, `${s}.query`), L.linear(x, `${s}.key`), L.linear(x, `${s}.value`), C, c.num_attention_heads, null, s);
    h = g.op('Add', [L.linear(ctx, `${l}.attention.output.dense`), h]);
    const mid = L.activation(L.linear(L.layerNorm(h, `${l}.layernorm_after`, c.layer_norm_eps), `${l}.intermediate.dense`), c.hidden_act, `${l}.intermediate`);
    h = g.op('Add', [L.linear(mid, `${l}.output.dense`), h]);
  }
  h = L.layerNorm(h, `${p}.layernorm`, c.layer_norm_eps);
  const pooled = enc.pooler ? g.op('Tanh', [L.linear(L.first(h), `${p}.pooler.dense`)], {}, 'image_pooled') : null;
  return { hidden: h, pooled };
}

// ---- fusion and head (src/models/fusion.ts) ----

/** torch.nn.MultiheadAttention (batch first) at `prefix`: its packed in_proj split into q, k and v. */
function multiheadAttention(L: Lowering, prefix: string, query: string, kv: string, C: number, nh: number, mask: string | null): string {
  const w = L.sd.get(`${prefix}.in_proj_weight`)!;
  const b = L.sd.get(`${prefix}.in_proj_bias`) ?? null;
  const [wq, wk, wv] = w.chunk(3, 0) as [Tensor, Tensor, Tensor];
  const [bq, bk, bv] = b ? (b.chunk(3, 0) as [Tensor, Tensor, Tensor]) : [null, null, null];
  try {
    const q = L.linear(query, `${prefix}.q_proj`, wq, bq);
    const k = L.linear(kv, `${prefix}.k_proj`, wk, bk);
    const v = L.linear(kv, `${prefix}.v_proj`, wv, bv);
    return L.linear(L.attend(q, k, v, C, nh, mask, prefix), `${prefix}.out_proj`);
  } finally {
    for (const t of [wq, wk, wv, bq, bk, bv]) t?.dispose();
  }
}

/** Mean over real tokens: (B, T, C) and the (B, T) mask -> (B, C), as maskedMean. */
function maskedMean(L: Lowering, h: string, maskF: string): string {
  const g = L.g;
  const m = g.op('Unsqueeze', [maskF, g.ints([2])], {}, 'mean_mask'); // (B, T) -> (B, T, 1)
  const sum = g.op('ReduceSum', [g.op('Mul', [h, m], {}, 'mean'), g.ints([1])], { keepdims: { i: 0 } }, 'mean');
  const count = g.op('Max', [g.op('ReduceSum', [m, g.ints([1])], { keepdims: { i: 0 } }, 'count'), g.scalar(1e-9)], {}, 'count');
  return g.op('Div', [sum, count], {}, 'mean');
}

function lowerFusionClassifier(L: Lowering, model: FusionClassifier, imageSize: number): void {
  const g = L.g;
  const cfg = model.config;
  const C = textWidth(cfg.text_config);
  const nh = cfg.fusion_num_heads;
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'sequence']);
  const types = L.opts.tokenTypeIds ? g.input('token_type_ids', 'int64', ['batch', 'sequence']) : null;
  const pixels = g.input('pixel_values', 'float32', ['batch', cfg.image_config.num_channels, imageSize, imageSize]);

  const maskF = g.op('Cast', [mask], { to: { i: 1 } }, 'mask_f'); // (B, T) float
  // additive (B, 1, 1, T): 0 for real tokens, float32's lowest for padding
  const maskAdd = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [g.scalar(1), maskF], {}, 'mask_add'), g.scalar(MASK_LOWEST)], {}, 'mask_add'), g.ints([1, 2])], {}, 'mask_add');
  const tc = cfg.text_config;
  const text = (tc.model_type === 'distilbert' ? distilbert(L, tc, ids, maskAdd)
    : tc.model_type === 'clip_text_model' ? clipText(L, tc, ids, maskAdd)
      : tc.model_type === 'siglip_text_model' ? siglipText(L, tc, ids, maskAdd)
        : bert(L, tc, ids, types, maskAdd)).hidden; // (B, T, C)
  const ic = cfg.image_config;
  const image = ic.model_type === 'clip_vision_model' ? clipVision(L, ic, pixels)
    : ic.model_type === 'siglip_vision_model' ? siglipVision(L, ic, pixels)
      : vit(L, model, ic, pixels, imageSize); // (B, [CLS] + N, Ci)
  // the image tokens' summary for the "cls" paths: the class token, or the mean without one (SigLIP)
  const imageSummary = (h: string) => (hasClassToken(ic) ? L.first(h) : g.op('ReduceMean', [h], { axes: { ints: [1] }, keepdims: { i: 0 } }, 'image_summary'));
  // the text's summary for the "cls" paths: [CLS], or CLIP's end-of-text token (the last real one)
  const summary = (h: string) => (summarisesLast(tc)
    ? L.pick(h, g.op('Sub', [g.op('ReduceSum', [mask, g.ints([1])], { keepdims: { i: 0 } }, 'length'), g.intScalar(1)], {}, 'last'), C)
    : L.first(h));
  const project = (t: string) => (model.image_projection ? L.linear(t, 'image_projection') : t);
  const mean = (h: string) => g.op('ReduceMean', [h], { axes: { ints: [1] }, keepdims: { i: 0 } }, 'image_mean'); // (B, N, C) -> (B, C)

  let textVector: string;
  let imageVector: string;
  switch (cfg.fusion_type) {
    case 'cross-attention': {
      const img = project(image.hidden);
      const t = multiheadAttention(L, 'fusion.text_to_image', text, img, C, nh, null);
      const i = multiheadAttention(L, 'fusion.image_to_text', img, text, C, nh, maskAdd);
      const tt = L.layerNorm(g.op('Add', [text, t]), 'fusion.text_norm', 1e-5);
      const ii = L.layerNorm(g.op('Add', [img, i]), 'fusion.image_norm', 1e-5);
      textVector = cfg.pooling === 'cls' ? summary(tt) : maskedMean(L, tt, maskF);
      imageVector = cfg.pooling === 'cls' ? imageSummary(ii) : mean(ii);
      break;
    }
    case 'cls-cross-attention':
    case 'shared-cls-cross-attention': {
      // the text [CLS] state and the image pooler output, each a sequence of one: (B, C) -> (B, 1, C)
      const seq = (v: string) => g.op('Unsqueeze', [v, g.ints([1])], {}, 'seq');
      const t = seq(summary(text));
      const i = seq(project(image.pooled ?? imageSummary(image.hidden)));
      const [a, b] = cfg.fusion_type === 'cls-cross-attention' ? ['fusion.text_to_image', 'fusion.image_to_text'] : ['fusion.cross_attention', 'fusion.cross_attention'];
      const unseq = (v: string) => g.op('Squeeze', [v, g.ints([1])], {}, 'unseq');
      textVector = unseq(multiheadAttention(L, a, t, i, C, nh, null));
      imageVector = unseq(multiheadAttention(L, b, i, t, C, nh, null));
      break;
    }
    default: { // concat
      const img = project(image.hidden);
      textVector = cfg.pooling === 'cls' ? summary(text) : maskedMean(L, text, maskF);
      imageVector = cfg.pooling === 'cls' ? imageSummary(img) : mean(img);
    }
  }
  // the head: Linear(2C, hidden) -> ReLU -> (Dropout) -> Linear(hidden, num_labels)
  const both = g.op('Concat', [textVector, imageVector], { axis: { i: 1 } }, 'head_in'); // (B, 2C)
  const hidden = g.op('Relu', [L.linear(both, 'classifier.0')], {}, 'head');
  g.output('logits', L.linear(hidden, 'classifier.3'), 'float32', ['batch', cfg.num_labels]);
}

export interface OnnxExport {
  dir: string;
  model: string;
  externalData: string | null;
  bytes: number;
}

/**
 * Writes the checkpoint (or Hugging Face export) as `out/model.onnx` (+ `model.onnx.data` for external weights),
 * with `config.json`, `mmtrain.json` (labels, preprocessing, the graph's inputs) and the tokenizer beside it.
 * `out` must not exist or be empty; the folder is written beside it and renamed into place.
 */
export function exportOnnx(checkpoint: string, out: string, opts: OnnxExportOptions = {}): OnnxExport {
  if (opts.fp16 && opts.int8) throw new MmtrainError('export --format onnx: choose --fp16 or --int8, not both');
  return writeFolderAtomic(out, (tmp) => {
    const r = writeOnnx(checkpoint, tmp, opts);
    return { dir: out, model: join(out, 'model.onnx'), externalData: r.externalData ? join(out, r.externalData) : null, bytes: r.bytes };
  });
}

/** The ONNX folder's files written into the existing folder `dir` (exportOnnx; the web export adds its page). */
export function writeOnnx(checkpoint: string, dir: string, opts: OnnxExportOptions = {}): { externalData: string | null; bytes: number } {
  const fromHf = existsSync(join(checkpoint, 'fusion', 'mmtrain.json')) && !existsSync(join(checkpoint, 'mmtrain.json'));
  const infoDir = fromHf ? join(checkpoint, 'fusion') : checkpoint;
  const info = readInferenceInfo(infoDir);
  const model = FusionClassifier.fromPretrained(checkpoint).eval();
  try {
    const L = new Lowering(model.stateDict(), opts);
    noGrad(() => lowerFusionClassifier(L, model, info.image.size));
    const external = opts.externalData === true || ((opts.externalData ?? 'auto') === 'auto' && L.g.weightBytes > PROTOBUF_LIMIT - 64 * 2 ** 20) ? 'model.onnx.data' : null;
    const inputs = ['input_ids', 'attention_mask', ...(opts.tokenTypeIds ? ['token_type_ids'] : []), 'pixel_values'];
    const precision = opts.int8 ? 'int8' : opts.fp16 ? 'fp16' : 'fp32';
    L.g.write(join(dir, 'model.onnx'), {
      opset: ONNX_OPSET, producer: 'mmtrain', version: '0.1.0', doc: `mmtrain fusion classifier (${model.config.fusion_type}, ${precision} weights)`,
      metadata: { labels: JSON.stringify(info.labels), inputs: JSON.stringify(inputs), precision },
    }, external);
    // tokenizer.json always (a BERT vocab.txt as the equivalent tokenizer.json): what a browser's tokenizer reads
    const tok = /vocab\.txt$/.test(info.tokenizer) ? TextTokenizer.fromVocab(join(infoDir, info.tokenizer), { doLowerCase: info.doLowerCase }) : TextTokenizer.fromFile(join(infoDir, info.tokenizer));
    writeJsonAtomic(join(dir, 'tokenizer.json'), tok.json, null);
    writeJsonAtomic(join(dir, 'config.json'), model.config);
    writeJsonAtomic(join(dir, 'mmtrain.json'), { ...info, tokenizer: 'tokenizer.json', onnx: { model: 'model.onnx', externalData: external, inputs, outputs: ['logits'], opset: ONNX_OPSET, precision } });
    const bytes = statSync(join(dir, 'model.onnx')).size + (external ? statSync(join(dir, external)).size : 0);
    return { externalData: external, bytes };
  } finally {
    model.dispose();
  }
}
