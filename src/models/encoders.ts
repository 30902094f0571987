// The encoder classes by model_type (encoder-configs.ts holds their configurations): how the fusion model builds a
// tower from its config and loads one from a Hugging Face folder.
import { BertModel } from './bert.js';
import { CLIPTextModel, CLIPVisionModel } from './clip.js';
import { DeiTModel } from './deit.js';
import { DistilBertModel } from './distilbert.js';
import { type Side, encoderConfigKind, otherTowerKeys, towerConfigOf } from './encoder-configs.js';
import { type PretrainedLoad, checkpointStateDict, readConfigJson } from './loading.js';
import { parseConfig } from '../validation.js';
import { RobertaModel } from './roberta.js';
import { SiglipTextModel, SiglipVisionModel } from './siglip.js';
import type { ImageTower, TextTower } from './towers.js';
import { ViTModel } from './vit.js';

interface EncoderClass<T> {
  new (config: any): T;
  fromPretrained(dir: string, opts?: { strict?: boolean }): PretrainedLoad<T>;
}

export const TEXT_ENCODERS: Record<string, EncoderClass<TextTower>> = { bert: BertModel, distilbert: DistilBertModel, roberta: RobertaModel, clip_text_model: CLIPTextModel, siglip_text_model: SiglipTextModel };
export const IMAGE_ENCODERS: Record<string, EncoderClass<ImageTower>> = { vit: ViTModel, deit: DeiTModel, clip_vision_model: CLIPVisionModel, siglip_vision_model: SiglipVisionModel };

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
  const raw = readConfigJson(dir);
  const other = otherTowerKeys(side, raw);
  if (other) {
    // one tower out of a two-tower folder (CLIPModel): its sub-config, the other tower's keys skipped
    const source = `${dir}/config.json ${side === 'text' ? 'text_config' : 'vision_config'}`;
    const model = side === 'text' ? createTower('text', towerConfigOf(side, raw), source) : createTower('image', towerConfigOf(side, raw), source);
    try {
      return { model, report: checkpointStateDict(model, dir, { strict: opts.strict, ignore: new RegExp(`${other.source}|(^|\\.)position_ids$`) }) };
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  const kind = encoderConfigKind(side, raw, `${dir}/config.json`);
  return (side === 'text' ? TEXT_ENCODERS : IMAGE_ENCODERS)[kind.type]!.fromPretrained(dir, opts);
}
