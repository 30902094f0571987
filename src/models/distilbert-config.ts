// DistilBERT's configuration: Hugging Face's DistilBertConfig fields under their config.json names (dim, n_layers,
// n_heads, hidden_dim, activation, dropout, attention_dropout), with its defaults (distilbert-base-uncased's), the
// size presets and the zod schemas. Unknown config.json fields are accepted and dropped; overrides of a preset are
// checked strictly. Loads no LibTorch.
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { dropoutProb, modelType, positiveInt, requireMultiple } from './config-fields.js';

const fields = {
  model_type: modelType('distilbert', 'DistilBERT'),
  vocab_size: positiveInt.default(30522),
  /** the hidden width (Hugging Face maps hidden_size to it) */
  dim: positiveInt.default(768),
  n_layers: positiveInt.default(6),
  n_heads: positiveInt.default(12),
  /** the MLP's inner width */
  hidden_dim: positiveInt.default(3072),
  activation: z.enum(['gelu', 'relu']).default('gelu'),
  dropout: dropoutProb.default(0.1),
  attention_dropout: dropoutProb.default(0.1),
  max_position_embeddings: positiveInt.default(512),
  /** fixed sinusoidal position embeddings at initialisation (the checkpoint's weights are loaded either way) */
  sinusoidal_pos_embds: z.boolean().default(false),
  initializer_range: z.number().positive().default(0.02),
  pad_token_id: z.number().int().min(0).default(0),
};

export const DistilBertConfigSchema = z.object(fields).superRefine((c, ctx) => requireMultiple(ctx, c, 'dim', 'n_heads'));

export const DistilBertConfigOverrides = z.strictObject(withoutDefaults(fields)).partial();

export type DistilBertConfig = z.output<typeof DistilBertConfigSchema>;

/** distilbert-base's shape at the BERT presets' widths (half their layers, at least 1); random init, no download. */
export const DISTILBERT_PRESETS: Record<string, Partial<DistilBertConfig>> = {
  'distilbert-tiny': { dim: 128, n_layers: 1, n_heads: 2, hidden_dim: 512 },
  'distilbert-mini': { dim: 256, n_layers: 2, n_heads: 4, hidden_dim: 1024 },
  'distilbert-small': { dim: 512, n_layers: 2, n_heads: 8, hidden_dim: 2048 },
  'distilbert-base': {},
};

/** DistilBERT's LayerNorm epsilon (fixed in Hugging Face's implementation, not a config field) */
export const DISTILBERT_LAYER_NORM_EPS = 1e-12;

export function distilBertConfig(partial: Partial<DistilBertConfig>, source = 'distilbert config'): DistilBertConfig {
  return parseConfig(DistilBertConfigSchema, partial, source);
}
