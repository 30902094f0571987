// The encoder architectures the fusion model takes, by Hugging Face model_type, as configurations: each one's
// config schema, preset overrides schema, presets and Hugging Face class name, defined once for the fusion config,
// the run config's checks, the exports and the CLI. Loads no LibTorch (encoders.ts adds the classes).
// Text towers: bert, distilbert, roberta; image towers: vit, deit.
import type { z } from 'zod';
import { MmtrainError } from '../errors.js';
import { BERT_PRESETS, BertConfigOverrides, BertConfigSchema } from './bert-config.js';
import { DEIT_PRESETS, DeiTConfigOverrides, DeiTConfigSchema } from './deit-config.js';
import { DISTILBERT_PRESETS, DistilBertConfigOverrides, DistilBertConfigSchema } from './distilbert-config.js';
import { ROBERTA_PRESETS, RobertaConfigOverrides, RobertaConfigSchema } from './roberta-config.js';
import { VIT_PRESETS, ViTConfigOverrides, ViTConfigSchema } from './vit-config.js';

export interface EncoderConfigKind {
  /** Hugging Face's class name for this architecture's bare model (config.json `architectures`) */
  className: string;
  schema: z.ZodType;
  overrides: z.ZodType;
  presets: Record<string, Record<string, unknown>>;
}

export const TEXT_CONFIGS = {
  bert: { className: 'BertModel', schema: BertConfigSchema, overrides: BertConfigOverrides, presets: BERT_PRESETS },
  distilbert: { className: 'DistilBertModel', schema: DistilBertConfigSchema, overrides: DistilBertConfigOverrides, presets: DISTILBERT_PRESETS },
  roberta: { className: 'RobertaModel', schema: RobertaConfigSchema, overrides: RobertaConfigOverrides, presets: ROBERTA_PRESETS },
} satisfies Record<string, EncoderConfigKind>;

export const IMAGE_CONFIGS = {
  vit: { className: 'ViTModel', schema: ViTConfigSchema, overrides: ViTConfigOverrides, presets: VIT_PRESETS },
  deit: { className: 'DeiTModel', schema: DeiTConfigSchema, overrides: DeiTConfigOverrides, presets: DEIT_PRESETS },
} satisfies Record<string, EncoderConfigKind>;

export type TextModelType = keyof typeof TEXT_CONFIGS;
export type ImageModelType = keyof typeof IMAGE_CONFIGS;
export type Side = 'text' | 'image';

const table = (side: Side): Record<string, EncoderConfigKind> => (side === 'text' ? TEXT_CONFIGS : IMAGE_CONFIGS);

/** A config's model_type: BERT / ViT when absent (mmtrain's configs from before other towers). */
export function modelTypeOf(side: Side, config: { model_type?: unknown } | undefined): string {
  const t = config?.model_type;
  return typeof t === 'string' ? t : side === 'text' ? 'bert' : 'vit';
}

/** The architecture of a config, or an error naming the model_type and the ones mmtrain implements. */
export function encoderConfigKind(side: Side, config: { model_type?: unknown } | undefined, source = `${side} encoder config`): EncoderConfigKind & { type: string } {
  const type = modelTypeOf(side, config);
  const kind = table(side)[type];
  if (!kind) {
    throw new MmtrainError(`${source}: model_type ${JSON.stringify(config?.model_type)} is not a ${side} encoder mmtrain implements; expected one of ${Object.keys(table(side)).join(', ')}`);
  }
  return { ...kind, type };
}

/** The architecture a preset name belongs to (bert-tiny: bert, deit-small: deit), or undefined. */
export function presetKind(side: Side, preset: string): string | undefined {
  return Object.keys(table(side)).find((t) => preset in table(side)[t]!.presets);
}

/** A preset's config fields with its model_type, or undefined for an unknown name. */
export function presetConfig(side: Side, preset: string): Record<string, unknown> | undefined {
  const type = presetKind(side, preset);
  return type === undefined ? undefined : { model_type: type, ...table(side)[type]!.presets[preset] };
}

/** Every preset name of one side, for the run config's enum and messages. */
export function presetNames(side: Side): [string, ...string[]] {
  return Object.values(table(side)).flatMap((k) => Object.keys(k.presets)) as [string, ...string[]];
}

/** A text config's hidden width (DistilBERT calls it dim). */
export function textWidth(c: { model_type?: string; hidden_size?: number; dim?: number }): number {
  return (c.model_type === 'distilbert' ? c.dim : c.hidden_size) as number;
}

/** A text config's shape under BERT's names (DistilBERT's dim, n_layers, n_heads, hidden_dim mapped). */
export function textShape(c: Record<string, any>): { hidden_size: number; num_hidden_layers: number; num_attention_heads: number; intermediate_size: number } {
  if (c.model_type === 'distilbert') return { hidden_size: c.dim, num_hidden_layers: c.n_layers, num_attention_heads: c.n_heads, intermediate_size: c.hidden_dim };
  return { hidden_size: c.hidden_size, num_hidden_layers: c.num_hidden_layers, num_attention_heads: c.num_attention_heads, intermediate_size: c.intermediate_size };
}

/** Tokens an image encoder adds before its patches: [CLS], and DeiT's [DIST]. */
export function imageSpecialTokens(c: { model_type?: string }): number {
  return c.model_type === 'deit' ? 2 : 1;
}
