export { BertModel, initBertWeights, type BertOutputs } from './bert.js';
export { BERT_PRESETS, BertConfigOverrides, BertConfigSchema, bertConfig, type BertConfig } from './bert-config.js';
export { ViTModel, initViTWeights, type ViTOutputs } from './vit.js';
export { VIT_PRESETS, ViTConfigOverrides, ViTConfigSchema, vitConfig, type ViTConfig } from './vit-config.js';
export {
  FusionClassifier, createFusionModel, maskedMean, type FusionInputs, type FusionOutputs, type CreateFusionOptions, type EncoderSpec,
} from './fusion.js';
export {
  FUSION_PRESETS, FUSION_TYPES, FusionConfigSchema, fusionConfig, fusionPresetConfig, type FusionConfig, type FusionConfigInput, type FusionType,
} from './fusion-config.js';
export { readConfigJson, checkpointFile, checkpointStateDict, type PretrainedLoad } from './loading.js';
export { featureCacheFlopBound, fusionForwardFlopParts, fusionForwardFlops, fusionTrainingFlops } from './flops.js';
export { DistilBertModel, initDistilBertWeights } from './distilbert.js';
export { DISTILBERT_PRESETS, DistilBertConfigSchema, distilBertConfig, type DistilBertConfig } from './distilbert-config.js';
export { RobertaModel, RobertaEmbeddings } from './roberta.js';
export { ROBERTA_PRESETS, RobertaConfigSchema, robertaConfig, type RobertaConfig } from './roberta-config.js';
export { DeiTModel, DeiTEmbeddings } from './deit.js';
export { DEIT_PRESETS, DeiTConfigSchema, deitConfig, type DeiTConfig } from './deit-config.js';
export { IMAGE_CONFIGS, TEXT_CONFIGS, presetNames, type ImageModelType, type TextModelType } from './encoder-configs.js';
export { createTower, loadTower } from './encoders.js';
export type { EncoderOutputs, ImageTower, TextTower, Tower } from './towers.js';
