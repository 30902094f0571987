// RoBERTa's configuration: Hugging Face's RobertaConfig, which has BERT's fields (bert-config.ts) with roberta-base's
// defaults: a byte-level BPE vocabulary of 50,265, padding id 1, 514 positions (positions start after the padding
// id), one token type, LayerNorm epsilon 1e-5. Loads no LibTorch.
import { z } from 'zod';
import { parseConfig, withoutDefaults } from '../validation.js';
import { BERT_FIELDS, checkBertLike } from './bert-config.js';
import { modelType, positiveInt } from './config-fields.js';

const fields = {
  ...BERT_FIELDS,
  model_type: modelType('roberta', 'RoBERTa'),
  vocab_size: positiveInt.default(50265),
  max_position_embeddings: positiveInt.default(514),
  type_vocab_size: positiveInt.default(1),
  layer_norm_eps: z.number().positive().default(1e-5),
  pad_token_id: z.number().int().min(0).default(1),
};

export const RobertaConfigSchema = z.object(fields).superRefine(checkBertLike);

export const RobertaConfigOverrides = z.strictObject(withoutDefaults(fields)).partial();

export type RobertaConfig = z.output<typeof RobertaConfigSchema>;

/** roberta-base's shape at the BERT presets' sizes; random init, no download. */
export const ROBERTA_PRESETS: Record<string, Partial<RobertaConfig>> = {
  'roberta-tiny': { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 512 },
  'roberta-mini': { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024 },
  'roberta-small': { hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048 },
  'roberta-base': {},
};

export function robertaConfig(partial: Partial<RobertaConfig>, source = 'roberta config'): RobertaConfig {
  return parseConfig(RobertaConfigSchema, partial, source);
}
