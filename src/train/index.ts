export { AdamW, clipGradNorm, type AdamWOptions, type ParamGroup, type AdamWParamState } from './optim.js';
export { lrFactor, warmupSteps, type ScheduleConfig, type ScheduleType } from './schedule.js';
export { ConfigSchema, loadConfig, resolveConfig, applyOverrides, bundledTokenizer, EXAMPLE_CONFIG, type TrainConfig, type TrainConfigInput } from './config.js';
export { computeMetrics, auroc, macroF1, confusionMatrix, type EvalMetrics } from './metrics.js';
export { train, evaluateLoader, parameterGroups, type Callback, type StepInfo, type TrainContext, type TrainOptions, type TrainResult } from './trainer.js';
export { saveCheckpoint, listCheckpoints, readTrainerState, type TrainerState, type InferenceInfo } from './checkpoint.js';
export { loadPredictor, predict, evaluate, type Predictor, type Prediction } from './inference.js';
