// CLIP's tower configurations: Hugging Face's CLIPTextConfig and CLIPVisionConfig fields under their config.json
// names, with openai/clip-vit-base-patch32's defaults, presets and the zod schemas. A full CLIPModel folder's
// config.json (model_type "clip") holds both under text_config and vision_config (encoders.ts reads them there).
// Unknown fields are accepted and dropped; overrides of a preset are checked strictly. Loads no LibTorch.
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { dropoutProb, modelType, positiveInt, requireMultiple } from './config-fields.js';

/** CLIP's MLP activations: quick_gelu is x * sigmoid(1.702 x) */
export const CLIP_ACTS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;

const shared = {
  hidden_act: z.enum(CLIP_ACTS).default('quick_gelu'),
  layer_norm_eps: z.number().positive().default(1e-5),
  attention_dropout: dropoutProb.default(0),
  initializer_range: z.number().positive().default(0.02),
  initializer_factor: z.number().positive().default(1),
  /** the width of CLIPModel's projections (read from the folder; the fusion model uses the hidden states) */
  projection_dim: positiveInt.default(512),
};

const textFields = {
  model_type: modelType('clip_text_model', 'CLIP text'),
  vocab_size: positiveInt.default(49408),
  hidden_size: positiveInt.default(512),
  intermediate_size: positiveInt.default(2048),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(8),
  max_position_embeddings: positiveInt.default(77),
  pad_token_id: z.number().int().min(0).default(1),
  bos_token_id: z.number().int().min(0).default(49406),
  eos_token_id: z.number().int().min(0).default(49407),
  ...shared,
};

const visionFields = {
  model_type: modelType('clip_vision_model', 'CLIP vision'),
  hidden_size: positiveInt.default(768),
  intermediate_size: positiveInt.default(3072),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(12),
  num_channels: positiveInt.default(3),
  image_size: positiveInt.default(224),
  patch_size: positiveInt.default(32),
  ...shared,
};

export const CLIPTextConfigSchema = z.object(textFields).superRefine((c, ctx) => requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads'));
export const CLIPTextConfigOverrides = z.strictObject(withoutDefaults(textFields)).partial();
export type CLIPTextConfig = z.output<typeof CLIPTextConfigSchema>;

export const CLIPVisionConfigSchema = z.object(visionFields).superRefine((c, ctx) => {
  requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads');
  requireMultiple(ctx, c, 'image_size', 'patch_size');
});
export const CLIPVisionConfigOverrides = z.strictObject(withoutDefaults(visionFields)).partial();
export type CLIPVisionConfig = z.output<typeof CLIPVisionConfigSchema>;

/** CLIP's tower shapes (ViT-B/32's text tower is clip-text-base); random init, no download. */
export const CLIP_TEXT_PRESETS: Record<string, Partial<CLIPTextConfig>> = {
  'clip-text-tiny': { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 2 },
  'clip-text-base': {},
};

export const CLIP_VISION_PRESETS: Record<string, Partial<CLIPVisionConfig>> = {
  'clip-vision-tiny': { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 2 },
  'clip-vision-base': {},
};

export function clipTextConfig(partial: Partial<CLIPTextConfig>, source = 'clip text config'): CLIPTextConfig {
  return parseConfig(CLIPTextConfigSchema, partial, source);
}

export function clipVisionConfig(partial: Partial<CLIPVisionConfig>, source = 'clip vision config'): CLIPVisionConfig {
  return parseConfig(CLIPVisionConfigSchema, partial, source);
}
