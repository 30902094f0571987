// Model FLOPs of a fusion classifier's training step, counted from its config: the numerator of MFU (model FLOPs
// utilization, PaLM's definition). Only matrix products count (linear layers, the patch-embedding convolution,
// attention scores and their weighted sums), 2 FLOPs per multiply-add; a training step is 3x the forward pass
// (the backward pass computes gradients of inputs and of weights, each as costly as the forward). Embedding
// lookups, norms, softmax and activations are left out, as is usual.
import { imageSpecialTokens, textShape } from './encoder-configs.js';
import type { FusionConfig } from './fusion-config.js';

interface EncoderShape { hidden_size: number; num_hidden_layers: number; intermediate_size: number }

/** Forward FLOPs of one transformer encoder over T tokens of one sample. */
function encoderForward(c: EncoderShape, T: number): number {
  const C = c.hidden_size;
  const perToken = 2 * (4 * C * C + 2 * C * c.intermediate_size); // q, k, v, out projections + the MLP
  const attention = 2 * 2 * T * T * C; // scores q·k and the weighted sum over values, all heads together
  return c.num_hidden_layers * (T * perToken + attention);
}

/**
 * Forward FLOPs of one sample: text of Tt tokens, the image as the config's patches (plus [CLS], and DeiT's [DIST]).
 * The poolers' (B, C) products are included when the fusion reads them.
 */
export function fusionForwardFlops(config: FusionConfig, Tt: number): number {
  const p = fusionForwardFlopParts(config, Tt);
  return p.encoders + p.fusionHead;
}

/**
 * The forward FLOPs of one sample split where the trainer's feature cache splits the model: the two encoders
 * (patch embedding included), whose outputs it caches when they are frozen, and the image projection, fusion and
 * head, which still run every step.
 */
export function fusionForwardFlopParts(config: FusionConfig, Tt: number): { encoders: number; fusionHead: number } {
  const t = textShape(config.text_config);
  const v = config.image_config;
  const patches = (v.image_size / v.patch_size) ** 2;
  const N = patches + imageSpecialTokens(v);
  const C = t.hidden_size;
  const Ci = v.hidden_size;
  let encoders = encoderForward(t, Tt) + encoderForward(v, N) + 2 * patches * (v.num_channels * v.patch_size * v.patch_size) * Ci; // + patch embedding
  let f = 0;
  if (Ci !== C) f += 2 * N * Ci * C; // image projection
  const cross = (Tq: number, Tk: number) => 2 * (Tq * C * C + 2 * Tk * C * C + Tq * C * C) + 2 * 2 * Tq * Tk * C;
  switch (config.fusion_type) {
    case 'cross-attention': f += cross(Tt, N) + cross(N, Tt); break;
    case 'cls-cross-attention': case 'shared-cls-cross-attention': f += 2 * cross(1, 1); encoders += 2 * C * C; break; // the image pooler is the encoder's
    case 'concat': break;
  }
  f += 2 * (2 * C * config.head_hidden_size + config.head_hidden_size * config.num_labels);
  return { encoders, fusionHead: f };
}

/**
 * The most a feature-cache epoch can gain if time followed FLOPs: frozen encoders still run forward every step
 * without the cache (no backward), while fusion and head train forward and backward (3x) either way.
 */
export function featureCacheFlopBound(config: FusionConfig, Tt: number): number {
  const p = fusionForwardFlopParts(config, Tt);
  return (p.encoders + 3 * p.fusionHead) / (3 * p.fusionHead);
}

/** Model FLOPs of one training step (forward + backward) over a batch of B samples with Tt text tokens each. */
export function fusionTrainingFlops(config: FusionConfig, B: number, Tt: number): number {
  return 3 * B * fusionForwardFlops(config, Tt);
}
