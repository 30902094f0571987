// The fusion classifier's configuration (its config.json): the two encoders' configs, the fusion and the head, with
// the presets that pair BERT and ViT sizes, and the zod schema that checks it all. Loads no LibTorch (the run
// config's schema imports it).
import { z } from 'zod';
import { MmtrainError, invalid } from '../errors.js';
import { parseConfig } from '../validation.js';
import { BERT_PRESETS, type BertConfig } from './bert-config.js';
import { dropoutProb, positiveInt } from './config-fields.js';
import type { CLIPTextConfig, CLIPVisionConfig } from './clip-config.js';
import type { DeiTConfig } from './deit-config.js';
import type { DistilBertConfig } from './distilbert-config.js';
import { IMAGE_CONFIGS, type Side, TEXT_CONFIGS, modelTypeOf, textWidth } from './encoder-configs.js';
import type { RobertaConfig } from './roberta-config.js';
import type { SiglipTextConfig, SiglipVisionConfig } from './siglip-config.js';
import { VIT_PRESETS, type ViTConfig } from './vit-config.js';

export const FUSION_TYPES = ['cross-attention', 'cls-cross-attention', 'shared-cls-cross-attention', 'concat'] as const;
export type FusionType = (typeof FUSION_TYPES)[number];

export type TextConfig = BertConfig | DistilBertConfig | RobertaConfig | CLIPTextConfig | SiglipTextConfig;
export type ImageConfig = ViTConfig | DeiTConfig | CLIPVisionConfig | SiglipVisionConfig;

/** An encoder's config, checked by the schema of its model_type (BERT / ViT when it has none). */
function towerConfig<T>(side: Side) {
  const table: Record<string, { schema: z.ZodType }> = side === 'text' ? TEXT_CONFIGS : IMAGE_CONFIGS;
  return z.record(z.string(), z.unknown()).transform((v, ctx): T => {
    const type = modelTypeOf(side, v);
    const kind = table[type];
    if (!kind) {
      ctx.addIssue({ code: 'custom', path: ['model_type'], input: v.model_type, message: `expected one of ${Object.keys(table).map((t) => `"${t}"`).join(', ')}, received ${JSON.stringify(v.model_type)}: a ${side} encoder mmtrain does not implement` });
      return z.NEVER;
    }
    const r = kind.schema.safeParse(v);
    if (!r.success) {
      for (const iss of r.error.issues) ctx.addIssue(iss as Parameters<typeof ctx.addIssue>[0]);
      return z.NEVER;
    }
    return r.data as T;
  });
}

export const FusionConfigSchema = z.object({
  model_type: z.literal('mmtrain-fusion').default('mmtrain-fusion'),
  text_config: towerConfig<TextConfig>('text').prefault(BERT_PRESETS['bert-tiny']!),
  image_config: towerConfig<ImageConfig>('image').prefault(VIT_PRESETS['vit-tiny']!),
  fusion_type: z.enum(FUSION_TYPES).default('cross-attention'),
  /** heads of the cross-attention modules (8 in the original design) */
  fusion_num_heads: positiveInt.default(8),
  /** attention-probability dropout inside the cross-attention modules */
  fusion_attention_dropout: dropoutProb.default(0),
  /** how each side is reduced to one vector for the head: masked mean over real tokens, or the [CLS] token */
  pooling: z.enum(['mean', 'cls']).default('mean'),
  head_hidden_size: positiveInt.default(512),
  head_dropout: dropoutProb.default(0.1),
  num_labels: z.number().int().min(2).default(2),
  id2label: z.record(z.string(), z.string()).optional(),
}).superRefine((c, ctx) => {
  const C = c.text_config ? textWidth(c.text_config) : undefined;
  const h = c.fusion_num_heads;
  if (c.fusion_type === 'concat' || C === undefined || !Number.isInteger(C) || !Number.isInteger(h) || h < 1 || C % h === 0) return;
  ctx.addIssue({
    code: 'custom', path: ['fusion_num_heads'], input: h,
    message: `expected a divisor of the text hidden_size (${C}), received number ${h}: set fusion_num_heads to a divisor such as ${[8, 4, 2, 1].find((d) => C % d === 0)}`,
  });
});

export type FusionConfig = z.output<typeof FusionConfigSchema>;
/** A fusion config to complete: every field optional, the encoders' configs partial. */
export type FusionConfigInput = z.input<typeof FusionConfigSchema>;

/** Encoder pairs by size; `tiny` is the embedded default used by the demo and the tests. */
export const FUSION_PRESETS: Record<string, { text: string; image: string }> = {
  tiny: { text: 'bert-tiny', image: 'vit-tiny' },
  mini: { text: 'bert-mini', image: 'vit-mini' },
  small: { text: 'bert-small', image: 'vit-small' },
  medium: { text: 'bert-medium', image: 'vit-medium' },
  base: { text: 'bert-base', image: 'vit-base' },
  large: { text: 'bert-large', image: 'vit-large' },
};

/** Fills defaults (the tiny encoders when absent) and checks every field, naming the field and the fix. */
export function fusionConfig(partial: FusionConfigInput, source = 'fusion config'): FusionConfig {
  if (partial.model_type !== undefined && partial.model_type !== 'mmtrain-fusion') {
    throw new MmtrainError(`${source}: model_type is ${JSON.stringify(partial.model_type)}, not an mmtrain fusion model ("mmtrain-fusion"); ` +
      'load a single encoder with BertModel.fromPretrained / ViTModel.fromPretrained, or pass it as text/image of createFusionModel');
  }
  return parseConfig(FusionConfigSchema, partial, source);
}

/** The BERT and ViT presets of a fusion preset (tiny when undefined). */
export function presetPair(preset: string | undefined): { text: string; image: string } {
  const pair = preset === undefined ? FUSION_PRESETS.tiny! : FUSION_PRESETS[preset];
  if (!pair) invalid('preset', `one of ${Object.keys(FUSION_PRESETS).join(', ')}`, preset);
  return pair;
}

/** The configuration a fusion preset gives (its BERT and ViT presets, default fusion and head), without weights. */
export function fusionPresetConfig(preset?: string): FusionConfig {
  const pair = presetPair(preset);
  return fusionConfig({ text_config: BERT_PRESETS[pair.text] as Partial<BertConfig>, image_config: VIT_PRESETS[pair.image] as Partial<ViTConfig> });
}
