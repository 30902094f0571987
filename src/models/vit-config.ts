// ViT's configuration: Hugging Face's ViTConfig fields under their config.json names, with its defaults
// (google/vit-base-patch16-224's), the size presets, and the zod schemas that check them. A checkpoint's
// config.json carries fields mmtrain does not use (architectures, encoder_stride, ...): they are accepted and
// dropped, as Hugging Face accepts them. Overrides of a preset (model.image.config) are checked strictly: an unknown
// key is an error naming it. Loads no LibTorch (the run config's schema imports it).
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { HIDDEN_ACTS, dropoutProb, modelType, positiveInt, requireMultiple } from './config-fields.js';

/** ViT's config.json fields and defaults (DeiT's config has the same fields: deit-config.ts) */
export const VIT_FIELDS = {
  model_type: modelType('vit', 'ViT'),
  hidden_size: positiveInt.default(768),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(12),
  intermediate_size: positiveInt.default(3072),
  hidden_act: z.enum(HIDDEN_ACTS).default('gelu'),
  hidden_dropout_prob: dropoutProb.default(0),
  attention_probs_dropout_prob: dropoutProb.default(0),
  initializer_range: z.number().positive().default(0.02),
  layer_norm_eps: z.number().positive().default(1e-12),
  image_size: positiveInt.default(224),
  patch_size: positiveInt.default(16),
  num_channels: positiveInt.default(3),
  qkv_bias: z.boolean().default(true),
};

/** A full ViT config: defaults filled in, unknown config.json fields dropped. */
export const ViTConfigSchema = z.object(VIT_FIELDS).superRefine(checkViTLike);

/** The cross-field checks of ViT-shaped configs (ViT's, DeiT's). */
export function checkViTLike(c: { hidden_size: number; num_attention_heads: number; image_size: number; patch_size: number }, ctx: z.RefinementCtx): void {
  requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads');
  requireMultiple(ctx, c, 'image_size', 'patch_size');
}

/** Overrides of a preset: any subset of the fields, and no other key. */
export const ViTConfigOverrides = z.strictObject(withoutDefaults(VIT_FIELDS)).partial();

export type ViTConfig = z.output<typeof ViTConfigSchema>;

/** ViT sizes matching the BERT presets' widths (so the fusion needs no projection); random init, no download. */
export const VIT_PRESETS: Record<string, Partial<ViTConfig>> = {
  'vit-tiny': { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 512 },
  'vit-mini': { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024 },
  'vit-small': { hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048 },
  'vit-medium': { hidden_size: 512, num_hidden_layers: 8, num_attention_heads: 8, intermediate_size: 2048 },
  'vit-base': {},
  'vit-large': { hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096 },
};

/** Fills defaults and checks every field, naming the field, what it expected and received, and the fix. */
export function vitConfig(partial: Partial<ViTConfig>, source = 'vit config'): ViTConfig {
  return parseConfig(ViTConfigSchema, partial, source);
}
