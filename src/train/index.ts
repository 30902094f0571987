export { AdamW, clipGradNorm, type AdamWOptions, type ParamGroup, type AdamWParamState } from './optim.js';
