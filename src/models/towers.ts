// What the fusion model needs of an encoder ("tower"), whatever its architecture: its outputs, its width, and its
// stages (embeddings, then layers from the input up) for freezing and layer-wise learning-rate decay.
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ImageConfig, TextConfig } from './fusion-config.js';

export interface EncoderOutputs {
  /** (B, L, C): every token's state, [CLS] (or the image's class token) first */
  lastHiddenState: Tensor;
  /** (B, C): the model's pooled vector, or null without a pooler */
  poolerOutput: Tensor | null;
}

export interface Tower extends Module {
  /** its Hugging Face config (model_type says which architecture) */
  readonly config: TextConfig | ImageConfig;
  readonly hiddenSize: number;
  stages(): { embeddings: Module; layers: Module[] };
}

export interface TextTower extends Tower {
  readonly config: TextConfig;
  /** inputIds (B, T) int64, attentionMask (B, T) 1 for real tokens, tokenTypeIds (B, T) or null */
  forward(inputIds: Tensor, attentionMask: Tensor | null, tokenTypeIds: Tensor | null): EncoderOutputs;
}

export interface ImageTower extends Tower {
  readonly config: ImageConfig;
  /** pixelValues (B, 3, H, W), normalised */
  forward(pixelValues: Tensor): EncoderOutputs;
}
