export { Module, formatReport, type LoadReport } from './module.js';
export { Linear, LayerNorm, Embedding, Dropout, ReLU, GELU, Conv2d, Sequential, ModuleList, type UnaryModule } from './layers.js';
export { MASK_LOWEST, MultiheadAttention, additivePaddingMask, type MultiheadAttentionOptions, type MhaForwardOptions } from './attention.js';
export * as init from './init.js';
