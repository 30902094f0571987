// mmtrain: image-text joint training in TypeScript on LibTorch.
export * from './tensor/index.js';
export * as nn from './nn/index.js';
export { MmtrainError } from './errors.js';
export * from './train/index.js';
export * from './models/index.js';
export * from './data/index.js';
export * from './diagnostics/index.js';
export { quantile } from './stats.js';
