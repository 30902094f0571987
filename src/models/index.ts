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
