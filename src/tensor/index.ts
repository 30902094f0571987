export {
  Tensor, tensor, fromBuffer, full, zeros, ones, empty, zerosLike, onesLike, fullLike, scalar, arange, randn, rand,
  randint, cat, stack, where, isTensor, type TensorOptions, type NestedArray, type Scalar,
} from './tensor.js';
export { type DType, type Device, DTYPES, isFloating } from './dtype.js';
export { tidy, keep, memory, releaseFreeMemory, scopeDepth } from './scope.js';
export { cudaDevices, cudaMemory, cudaSynchronize, resolveDevice, type CudaDevice } from './device.js';
export {
  noGrad, enableGrad, isGradEnabled, autocast, manualSeed, setNumThreads, getNumThreads, buildInfo, libtorchVersion,
  cudaAvailable, getRngState, setRngState, type AutocastOptions,
} from './modes.js';
export { buildReport, parseTorchConfig, describeBlas, loadedBlasLibraries, type BuildReport, type TorchConfig } from './build-info.js';
export * as F from './functional.js';
export {
  loadSafetensors, saveSafetensors, decodeSafetensors, encodeSafetensors, parseSafetensorsHeader, readSafetensorsHeader,
  type SafetensorsHeader, type TensorInfo,
} from './safetensors.js';
