// SigLIP's tower configurations: Hugging Face's SiglipTextConfig and SiglipVisionConfig fields under their
// config.json names, with google/siglip-base-patch16-224's defaults, presets and the zod schemas. A full SiglipModel
// folder's config.json (model_type "siglip") holds both under text_config and vision_config. Loads no LibTorch.
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { CLIP_ACTS } from './clip-config.js';
import { dropoutProb, modelType, positiveInt, requireMultiple } from './config-fields.js';

const shared = {
  hidden_size: positiveInt.default(768),
  intermediate_size: positiveInt.default(3072),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(12),
  hidden_act: z.enum(CLIP_ACTS).default('gelu_pytorch_tanh'),
  layer_norm_eps: z.number().positive().default(1e-6),
  attention_dropout: dropoutProb.default(0),
};

const textFields = {
  model_type: modelType('siglip_text_model', 'SigLIP text'),
  vocab_size: positiveInt.default(32000),
  max_position_embeddings: positiveInt.default(64),
  pad_token_id: z.number().int().min(0).default(1),
  /** the width of the pooled vector's head (Hugging Face: projection_size, the hidden size when absent) */
  projection_size: positiveInt.optional(),
  ...shared,
};

const visionFields = {
  model_type: modelType('siglip_vision_model', 'SigLIP vision'),
  num_channels: positiveInt.default(3),
  image_size: positiveInt.default(224),
  patch_size: positiveInt.default(16),
  ...shared,
};

export const SiglipTextConfigSchema = z.object(textFields).superRefine((c, ctx) => requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads'));
export const SiglipTextConfigOverrides = z.strictObject(withoutDefaults(textFields)).partial();
export type SiglipTextConfig = z.output<typeof SiglipTextConfigSchema>;

export const SiglipVisionConfigSchema = z.object(visionFields).superRefine((c, ctx) => {
  requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads');
  requireMultiple(ctx, c, 'image_size', 'patch_size');
});
export const SiglipVisionConfigOverrides = z.strictObject(withoutDefaults(visionFields)).partial();
export type SiglipVisionConfig = z.output<typeof SiglipVisionConfigSchema>;

export const SIGLIP_TEXT_PRESETS: Record<string, Partial<SiglipTextConfig>> = {
  'siglip-text-tiny': { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 2 },
  'siglip-text-base': {},
};

export const SIGLIP_VISION_PRESETS: Record<string, Partial<SiglipVisionConfig>> = {
  'siglip-vision-tiny': { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 2 },
  'siglip-vision-base': {},
};

export function siglipTextConfig(partial: Partial<SiglipTextConfig>, source = 'siglip text config'): SiglipTextConfig {
  return parseConfig(SiglipTextConfigSchema, partial, source);
}

export function siglipVisionConfig(partial: Partial<SiglipVisionConfig>, source = 'siglip vision config'): SiglipVisionConfig {
  return parseConfig(SiglipVisionConfigSchema, partial, source);
}
