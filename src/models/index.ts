export { BertModel, BERT_PRESETS, bertConfig, initBertWeights, type BertConfig, type BertOutputs } from './bert.js';
export { ViTModel, VIT_PRESETS, vitConfig, initViTWeights, type ViTConfig, type ViTOutputs } from './vit.js';
export {
  FusionClassifier, FUSION_PRESETS, FUSION_TYPES, createFusionModel, fusionConfig, fusionPresetConfig, maskedMean, type FusionConfig,
  type FusionType, type FusionInputs, type FusionOutputs, type CreateFusionOptions, type EncoderSpec,
} from './fusion.js';
export { readConfigJson, checkpointFile, checkpointStateDict, type PretrainedLoad } from './loading.js';
export { featureCacheFlopBound, fusionForwardFlopParts, fusionForwardFlops, fusionTrainingFlops } from './flops.js';
