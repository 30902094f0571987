// The whole native surface, declared as one interface. Tensors cross it as numeric handles (slot + generation);
// -1 stands for "no tensor". Everything here is synchronous and runs on the calling JS thread.
import { createRequire } from 'node:module';
import { addonMissing, builtAddon } from '../addon-path.js';

export type Handle = number;

export interface BuildInfo {
  libtorch: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  parallelInfo: string;
  cxx11Abi: boolean;
  /** how mmtrain set up the C allocator at load (glibc thresholds), or "default" */
  allocator: string;
  /** LibTorch's build configuration text (at::show_config()) */
  config: string;
  /** the addon was linked against libtorch_cuda (a CUDA build of LibTorch) */
  cudaBuild: boolean;
  /** LibTorch's CUDA hooks report cuDNN compiled in, and its version number (0 when not) */
  cudnnCompiled: boolean;
  cudnnVersion: number;
  /** LibTorch's oneDNN convolution gives its reference numbers here (else conv2d runs LibTorch's own kernels) */
  onednnConvolution: boolean;
}

/**
 * The names of each numbered family the addon selects by code, in code order (index = code). Native code defines
 * each table once (native/src/code_tables.h); src/tensor/native-codes.ts builds the name -> code maps from them.
 */
export interface CodeTables {
  dtype: string[];
  unary: string[];
  /** binary and binaryScalar */
  binary: string[];
  reduce: string[];
  /** inplaceBinary */
  inplaceTensor: string[];
  inplaceScalar: string[];
  random: string[];
  /** crossEntropy, mseLoss and bceWithLogits */
  lossReduction: string[];
  interpolation: string[];
}

export interface NativeBinding {
  /** the code tables (see CodeTables); every `code`, `kind`, `mode`, `reduction` and `dtype` number is an index into one */
  codeTables: CodeTables;
  // creation and reading back
  fromTypedArray(data: ArrayBufferView, shape: number[], srcDtype: number, dstDtype: number, zeroCopy: boolean, device?: string | null): Handle;
  full(shape: number[], value: number, dtype: number, device: string | null): Handle;
  empty(shape: number[], dtype: number, device: string | null): Handle;
  arange(start: number, end: number, step: number, dtype: number, device: string | null): Handle;
  random(kind: number, shape: number[], dtype: number, device: string | null, a?: number, b?: number): Handle;
  read(h: Handle, asDtype: number): ArrayBuffer;
  item(h: Handle): number;
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  dtype(h: Handle): number;
  device(h: Handle): string;
  isContiguous(h: Handle): boolean;
  free(h: Handle): void;
  freeMany(hs: Handle[]): void;
  /** reports a tensor's bytes to V8 once the garbage collector is left to free it */
  reportExternal(h: Handle): void;
  isLive(h: Handle): boolean;
  memoryStats(): { liveTensors: number; liveBytes: number; slots: number };
  /** glibc's malloc_trim(0): free heap pages back to the kernel; false when none went back or not glibc */
  releaseFreeMemory(): boolean;
  // process-wide controls
  manualSeed(seed: number): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setInteropThreads(n: number): void;
  buildInfo(): BuildInfo;
  getRngState(): Handle;
  setRngState(h: Handle): void;
  // math
  unary(code: number, a: Handle): Handle;
  binary(code: number, a: Handle, b: Handle): Handle;
  binaryScalar(code: number, a: Handle, s: number, isInt: boolean): Handle;
  addScaled(a: Handle, b: Handle, alpha: number): Handle;
  reduce(code: number, a: Handle, dims: number[] | null, keepdim: boolean, extra?: number): Handle;
  maxDim(a: Handle, dim: number, keepdim: boolean): [Handle, Handle];
  minDim(a: Handle, dim: number, keepdim: boolean): [Handle, Handle];
  sort(a: Handle, dim: number, descending: boolean): [Handle, Handle];
  topk(a: Handle, k: number, dim: number, largest: boolean): [Handle, Handle];
  cumsum(a: Handle, dim: number): Handle;
  reshape(a: Handle, shape: number[]): Handle;
  view(a: Handle, shape: number[]): Handle;
  permute(a: Handle, dims: number[]): Handle;
  transpose(a: Handle, d0: number, d1: number): Handle;
  slice(a: Handle, dim: number, start: number, end: number, step: number): Handle;
  select(a: Handle, dim: number, index: number): Handle;
  indexSelect(a: Handle, dim: number, index: Handle): Handle;
  gather(a: Handle, dim: number, index: Handle): Handle;
  indexTensor(a: Handle, index: Handle): Handle;
  cat(hs: Handle[], dim: number): Handle;
  stack(hs: Handle[], dim: number): Handle;
  split(a: Handle, sizeOrSizes: number | number[], dim: number): Handle[];
  chunk(a: Handle, chunks: number, dim: number): Handle[];
  squeeze(a: Handle, dim: number | null): Handle;
  unsqueeze(a: Handle, dim: number): Handle;
  expand(a: Handle, shape: number[]): Handle;
  flatten(a: Handle, start: number, end: number): Handle;
  repeat(a: Handle, repeats: number[]): Handle;
  flip(a: Handle, dims: number[]): Handle;
  tril(a: Handle, k: number, upper: boolean): Handle;
  oneHot(a: Handle, numClasses: number): Handle;
  matmul(a: Handle, b: Handle): Handle;
  bmm(a: Handle, b: Handle): Handle;
  mm(a: Handle, b: Handle): Handle;
  where(cond: Handle, a: Handle, b: Handle): Handle;
  maskedFill(a: Handle, mask: Handle, value: number): Handle;
  clamp(a: Handle, min: number | null, max: number | null): Handle;
  to(a: Handle, dtype: number, device: string | null, copy: boolean, nonBlocking?: boolean): Handle;
  // CUDA devices (an empty list in a CPU build), the caching allocator, pinned memory, in-place device moves
  cudaDevices(): { index: number; name: string; totalMemory: number; major: number; minor: number; multiProcessors: number }[];
  cudaMemory(index: number): { allocated: number; reserved: number; peakAllocated: number } | null;
  cudaEmptyCache(): void;
  cudaSynchronize(index: number): void;
  cudaSetDevice(index: number): void;
  pinMemory(a: Handle): Handle;
  setData(dst: Handle, src: Handle): void;
  setAllowTF32(on: boolean): void;
  // nn functional
  linear(x: Handle, w: Handle, b: Handle): Handle;
  layerNorm(x: Handle, shape: number[], w: Handle, b: Handle, eps: number): Handle;
  softmax(x: Handle, dim: number, dtype: number): Handle;
  logSoftmax(x: Handle, dim: number, dtype: number): Handle;
  dropout(x: Handle, p: number, train: boolean): Handle;
  embedding(w: Handle, idx: Handle, paddingIdx: number): Handle;
  conv2d(x: Handle, w: Handle, b: Handle, stride: number[], padding: number[], dilation: number[], groups: number): Handle;
  sdpa(q: Handle, k: Handle, v: Handle, mask: Handle, dropoutP: number, isCausal: boolean, scale: number | null): Handle;
  crossEntropy(logits: Handle, target: Handle, weight: Handle, reduction: number, ignoreIndex: number, labelSmoothing: number): Handle;
  mseLoss(a: Handle, b: Handle, reduction: number): Handle;
  bceWithLogits(logits: Handle, target: Handle, reduction: number): Handle;
  interpolate(x: Handle, size: number[], mode: number, alignCorners: boolean): Handle;
  normalizeImages(u8: Handle, mean: number[], std: number[]): Handle;
  // autograd, modes, in-place updates
  backward(h: Handle, grad: Handle, retainGraph: boolean): void;
  grad(h: Handle): Handle;
  setGrad(h: Handle, g: Handle): void;
  requiresGrad(h: Handle): boolean;
  setRequiresGrad(h: Handle, v: boolean): void;
  isLeaf(h: Handle): boolean;
  retainGrad(h: Handle): void;
  setGradEnabled(v: boolean): boolean;
  isGradEnabled(): boolean;
  autocastEnter(cuda: boolean, dtype: number): [boolean, number];
  autocastExit(cuda: boolean, prevEnabled: boolean, prevDtype: number): void;
  inplaceBinary(code: number, h: Handle, other: Handle, alpha: number): void;
  inplaceScalar(code: number, h: Handle, a?: number, b?: number): void;
  addcmul_(h: Handle, t1: Handle, t2: Handle, value: number): void;
  addcdiv_(h: Handle, t1: Handle, t2: Handle, value: number): void;
  lerp_(h: Handle, end: Handle, weight: number): void;
  maskedFill_(h: Handle, mask: Handle, value: number): void;
  // optimizers (LibTorch's torch::optim) and gradient clipping
  adamwCreate(groups: { params: Handle[]; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; amsgrad: boolean }[]): number;
  adamwStep(id: number): void;
  adamwSetLr(id: number, group: number, lr: number): void;
  adamwGetState(id: number, group: number, index: number): [number, Handle, Handle, Handle] | null;
  adamwSetState(id: number, group: number, index: number, step: number, expAvg: Handle, expAvgSq: Handle, maxExpAvgSq: Handle): void;
  adamwFree(id: number): void;
  clipGradNorm(params: Handle[], maxNorm: number, normType: number): number;
  // c10d (native/src/distributed.cc): one Gloo process group per process
  distAvailable: boolean;
  /** c10d's Reducer is in this build (gradient sync overlapping backward) */
  distOverlapAvailable: boolean;
  distInit(rank: number, world: number, masterAddr: string, masterPort: number, timeoutMs: number, ifname: string | null, storeFile: string | null): void;
  distAllreduceGrads(params: Handle[], bucketBytes: number, scale: number): void;
  distBroadcast(tensors: Handle[], root: number, bucketBytes: number): void;
  distAllreduce(t: Handle): void;
  distAllgather(t: Handle): Handle;
  distBarrier(): void;
  distStoreSet(key: string, value: string): void;
  distStoreGet(key: string): string;
  distDestroy(): void;
  distReducerNew(params: Handle[], bucketBytes: number, firstBucketBytes: number, findUnused: boolean): number;
  distReducerPrepare(id: number, outputs: Handle[]): void;
  distReducerFree(id: number): void;
}

function findAddon(): string {
  const found = builtAddon('mmtrain_native');
  if (found) return found;
  throw new Error(addonMissing('mmtrain_native', 'The build needs LibTorch: on Debian `apt-get install libtorch-dev libopenblas0-pthread`, elsewhere set LIBTORCH=/path/to/libtorch.'));
}

// LibTorch's OpenMP workers spin while waiting by default; with OpenBLAS's own pthreads beside them that
// oversubscribes the cores (measured: a GELU MLP fwd+bwd on 2 cores took 49 ms spinning, 17 ms passive).
// libgomp reads this when it loads, which is when the addon loads, so it is set just before. A user's value wins,
// and so does GOMP_SPINCOUNT (set by the CLI for bf16 runs, whose matmuls use oneDNN's OpenMP kernels, not OpenBLAS).
if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
  process.env.OMP_WAIT_POLICY = 'PASSIVE';
} else {
  process.env.MMTRAIN_USER_OMP_WAIT_POLICY = process.env.OMP_WAIT_POLICY;
}

const require = createRequire(import.meta.url);
export const native: NativeBinding = require(findAddon()) as NativeBinding;
