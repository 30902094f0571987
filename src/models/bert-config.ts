// BERT's configuration: Hugging Face's BertConfig fields under their config.json names, with its defaults
// (bert-base-uncased's), the size presets, and the zod schemas that check them. A checkpoint's config.json carries
// fields mmtrain does not use (architectures, transformers_version, ...): they are accepted and dropped, as Hugging
// Face accepts them. Overrides of a preset (model.text.config) are checked strictly: an unknown key is an error
// naming it. Loads no LibTorch (the run config's schema imports it).
import { z } from 'zod';
import { describe } from '../errors.js';
import { parseConfig, withoutDefaults } from '../validation.js';
import { HIDDEN_ACTS, dropoutProb, modelType, positiveInt, requireMultiple } from './config-fields.js';

/** BERT's config.json fields and defaults (RoBERTa's config has the same fields: roberta-config.ts) */
export const BERT_FIELDS = {
  model_type: modelType('bert', 'BERT'),
  vocab_size: positiveInt.default(30522),
  hidden_size: positiveInt.default(768),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(12),
  intermediate_size: positiveInt.default(3072),
  hidden_act: z.enum(HIDDEN_ACTS).default('gelu'),
  hidden_dropout_prob: dropoutProb.default(0.1),
  attention_probs_dropout_prob: dropoutProb.default(0.1),
  max_position_embeddings: positiveInt.default(512),
  type_vocab_size: positiveInt.default(2),
  initializer_range: z.number().positive().default(0.02),
  layer_norm_eps: z.number().positive().default(1e-12),
  pad_token_id: z.number().int().min(0).default(0),
  /** only absolute position embeddings are implemented */
  position_embedding_type: z.literal('absolute').default('absolute'),
};

/** A full BERT config: defaults filled in, unknown config.json fields dropped. */
export const BertConfigSchema = z.object(BERT_FIELDS).superRefine(checkBertLike);

/** The cross-field checks of BERT-shaped configs (BERT's, RoBERTa's). */
export function checkBertLike(c: { hidden_size: number; num_attention_heads: number; pad_token_id: number; vocab_size: number }, ctx: z.RefinementCtx): void {
  requireMultiple(ctx, c, 'hidden_size', 'num_attention_heads');
  if (Number.isInteger(c.pad_token_id) && Number.isInteger(c.vocab_size) && c.pad_token_id >= c.vocab_size) {
    ctx.addIssue({ code: 'custom', path: ['pad_token_id'], input: c.pad_token_id, message: `expected an integer below vocab_size (${c.vocab_size}), received ${describe(c.pad_token_id)}` });
  }
}

/** Overrides of a preset: any subset of the fields, and no other key. */
export const BertConfigOverrides = z.strictObject(withoutDefaults(BERT_FIELDS)).partial();

export type BertConfig = z.output<typeof BertConfigSchema>;

/** Google's BERT sizes (bert_uncased_L-{layers}_H-{hidden}_A-{heads}); random init, no download. */
export const BERT_PRESETS: Record<string, Partial<BertConfig>> = {
  'bert-tiny': { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 512 },
  'bert-mini': { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024 },
  'bert-small': { hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048 },
  'bert-medium': { hidden_size: 512, num_hidden_layers: 8, num_attention_heads: 8, intermediate_size: 2048 },
  'bert-base': {},
  'bert-large': { hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096 },
};

/** Fills defaults and checks every field, naming the field, what it expected and received, and the fix. */
export function bertConfig(partial: Partial<BertConfig>, source = 'bert config'): BertConfig {
  return parseConfig(BertConfigSchema, partial, source);
}
