// DeiT's configuration: Hugging Face's DeiTConfig, which has ViT's fields (vit-config.ts) under model_type "deit"
// (facebook/deit-*-distilled-patch16-224: a distillation token beside the class token). Loads no LibTorch.
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { VIT_FIELDS, checkViTLike } from './vit-config.js';
import { modelType } from './config-fields.js';

const fields = { ...VIT_FIELDS, model_type: modelType('deit', 'DeiT') };

export const DeiTConfigSchema = z.object(fields).superRefine(checkViTLike);

export const DeiTConfigOverrides = z.strictObject(withoutDefaults(fields)).partial();

export type DeiTConfig = z.output<typeof DeiTConfigSchema>;

/** DeiT's shapes at the ViT presets' widths (deit-tiny is DeiT's own 192-wide, 12-layer model); random init. */
export const DEIT_PRESETS: Record<string, Partial<DeiTConfig>> = {
  'deit-tiny': { hidden_size: 192, num_hidden_layers: 12, num_attention_heads: 3, intermediate_size: 768 },
  'deit-small': { hidden_size: 384, num_hidden_layers: 12, num_attention_heads: 6, intermediate_size: 1536 },
  'deit-base': {},
};

export function deitConfig(partial: Partial<DeiTConfig>, source = 'deit config'): DeiTConfig {
  return parseConfig(DeiTConfigSchema, partial, source);
}
