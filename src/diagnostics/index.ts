// Convergence diagnostics, modality balance, warnings, studies and reports.
export * from './diagnostics.js';
export * from './modality.js';
export * from './probe.js';
export * from './warnings.js';
export { TensorBoardWriter, readScalars } from './tensorboard.js';
