// The encoder classes by model_type (encoder-configs.ts holds their configurations): how the fusion model builds a
// tower from its config and loads one from a Hugging Face folder.
import { BertModel } from './bert.js';
import { DeiTModel } from './deit.js';
import { DistilBertModel } from './distilbert.js';
import { type Side, encoderConfigKind } from './encoder-configs.js';
import { type PretrainedLoad, readConfigJson } from './loading.js';
import { parseConfig } from '../validation.js';
import { RobertaModel } from './roberta.js';
import type { ImageTower, TextTower } from './towers.js';
import { ViTModel } from './vit.js';

interface EncoderClass<T> {
  new (config: any): T;
  fromPretrained(dir: string, opts?: { strict?: boolean }): PretrainedLoad<T>;
}

export const TEXT_ENCODERS: Record<string, EncoderClass<TextTower>> = { bert: BertModel, distilbert: DistilBertModel, roberta: RobertaModel };
export const IMAGE_ENCODERS: Record<string, EncoderClass<ImageTower>> = { vit: ViTModel, deit: DeiTModel };

/** A tower built from its config (defaults filled and checked by its architecture's schema), with fresh weights. */
export function createTower(side: 'text', config: Record<string, unknown>, source?: string): TextTower;
export function createTower(side: 'image', config: Record<string, unknown>, source?: string): ImageTower;
export function createTower(side: Side, config: Record<string, unknown>, source?: string): TextTower | ImageTower {
  const kind = encoderConfigKind(side, config, source);
  const cls = (side === 'text' ? TEXT_ENCODERS : IMAGE_ENCODERS)[kind.type]!;
  return new cls(parseConfig(kind.schema, config, source ?? `${side} encoder config`));
}

/** A tower loaded from a Hugging Face folder, its class picked by the folder's config.json model_type. */
export function loadTower(side: 'text', dir: string, opts?: { strict?: boolean }): PretrainedLoad<TextTower>;
export function loadTower(side: 'image', dir: string, opts?: { strict?: boolean }): PretrainedLoad<ImageTower>;
export function loadTower(side: Side, dir: string, opts: { strict?: boolean } = {}): PretrainedLoad<TextTower | ImageTower> {
  const kind = encoderConfigKind(side, readConfigJson(dir), `${dir}/config.json`);
  return (side === 'text' ? TEXT_ENCODERS : IMAGE_ENCODERS)[kind.type]!.fromPretrained(dir, opts);
}
