// The encoder architectures the fusion model takes, by Hugging Face model_type, as configurations: each one's
// config schema, preset overrides schema, presets and Hugging Face class name, defined once for the fusion config,
// the run config's checks, the exports and the CLI. Loads no LibTorch (encoders.ts adds the classes).
// Text towers: bert, distilbert, roberta, clip_text_model, siglip_text_model; image towers: vit, deit,
// clip_vision_model, siglip_vision_model. A full CLIPModel or SiglipModel folder (model_type clip, siglip) gives
// either tower from its text_config / vision_config (towerConfigOf).
import type { z } from 'zod';
import { MmtrainError } from '../errors.js';
import { BERT_PRESETS, BertConfigOverrides, BertConfigSchema } from './bert-config.js';
import { CLIP_TEXT_PRESETS, CLIP_VISION_PRESETS, CLIPTextConfigOverrides, CLIPTextConfigSchema, CLIPVisionConfigOverrides, CLIPVisionConfigSchema } from './clip-config.js';
import { SIGLIP_TEXT_PRESETS, SIGLIP_VISION_PRESETS, SiglipTextConfigOverrides, SiglipTextConfigSchema, SiglipVisionConfigOverrides, SiglipVisionConfigSchema } from './siglip-config.js';
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
  clip_text_model: { className: 'CLIPTextModel', schema: CLIPTextConfigSchema, overrides: CLIPTextConfigOverrides, presets: CLIP_TEXT_PRESETS },
  siglip_text_model: { className: 'SiglipTextModel', schema: SiglipTextConfigSchema, overrides: SiglipTextConfigOverrides, presets: SIGLIP_TEXT_PRESETS },
} satisfies Record<string, EncoderConfigKind>;

export const IMAGE_CONFIGS = {
  vit: { className: 'ViTModel', schema: ViTConfigSchema, overrides: ViTConfigOverrides, presets: VIT_PRESETS },
  deit: { className: 'DeiTModel', schema: DeiTConfigSchema, overrides: DeiTConfigOverrides, presets: DEIT_PRESETS },
  clip_vision_model: { className: 'CLIPVisionModel', schema: CLIPVisionConfigSchema, overrides: CLIPVisionConfigOverrides, presets: CLIP_VISION_PRESETS },
  siglip_vision_model: { className: 'SiglipVisionModel', schema: SiglipVisionConfigSchema, overrides: SiglipVisionConfigOverrides, presets: SIGLIP_VISION_PRESETS },
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

/** Tokens an image encoder adds before its patches: [CLS], and DeiT's [DIST]; none for SigLIP. */
export function imageSpecialTokens(c: { model_type?: string }): number {
  return c.model_type === 'deit' ? 2 : hasClassToken(c) ? 1 : 0;
}

/** Two-tower models whose folders hold both encoders: model_type -> each side's model_type. */
export const DUAL_TOWER_MODELS: Record<string, { text: string; image: string }> = {
  clip: { text: 'clip_text_model', image: 'clip_vision_model' },
  siglip: { text: 'siglip_text_model', image: 'siglip_vision_model' },
};

/** Text towers whose one-vector summary is the last real token, not the first (CLIP's causal one; SigLIP's last-position head). */
export function summarisesLast(c: { model_type?: string }): boolean {
  return c.model_type === 'clip_text_model' || c.model_type === 'siglip_text_model';
}

/** Image towers without a class token: their "first token" is a patch, so the fusion takes the tokens' mean instead. */
export function hasClassToken(c: { model_type?: string }): boolean {
  return c.model_type !== 'siglip_vision_model';
}

/**
 * The config of one side's tower from a folder's config.json: itself, or for a two-tower model (a CLIPModel
 * folder) its text_config / vision_config with that tower's model_type.
 */
export function towerConfigOf(side: Side, raw: Record<string, unknown>): Record<string, unknown> {
  const dual = typeof raw.model_type === 'string' ? DUAL_TOWER_MODELS[raw.model_type] : undefined;
  if (!dual) return raw;
  const sub = raw[side === 'text' ? 'text_config' : 'vision_config'];
  return { ...(sub && typeof sub === 'object' ? sub : {}), model_type: dual[side] };
}

/** The state-dict keys of a two-tower folder that belong to the other tower (skipped, not reported). */
export function otherTowerKeys(side: Side, raw: Record<string, unknown>): RegExp | undefined {
  if (typeof raw.model_type !== 'string' || !DUAL_TOWER_MODELS[raw.model_type]) return undefined;
  return side === 'text' ? /^(vision_model\.|visual_projection\.|logit_scale$|logit_bias$)/ : /^(text_model\.|text_projection\.|logit_scale$|logit_bias$)/;
}
