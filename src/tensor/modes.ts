// Grad mode, autocast and process-wide controls. Modes are thread-local in LibTorch and everything here runs on
// the JS thread synchronously, so a mode is entered and left around a synchronous function only.
import { availableParallelism } from 'node:os';
import { MmtrainError, checkInt, invalid } from '../errors.js';
import type { DType } from './dtype.js';
import { native, type BuildInfo } from './native.js';
import { dtypeCode } from './native-codes.js';
import { Tensor } from './tensor.js';

function refuseAsync(result: unknown, what: string): void {
  if (result instanceof Promise) {
    throw new MmtrainError(`${what} takes a synchronous function: the mode is thread-local and cannot span an await.`);
  }
}

/** Runs fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    const r = fn();
    refuseAsync(r, 'noGrad()');
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn with gradient recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    const r = fn();
    refuseAsync(r, 'enableGrad()');
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export interface AutocastOptions {
  device?: 'cpu' | 'cuda';
  dtype?: Extract<DType, 'bfloat16' | 'float16'>;
  enabled?: boolean;
}

/**
 * Runs fn under LibTorch autocast (torch.autocast): matmul-heavy ops run in bf16/fp16, the ops LibTorch lists as
 * precision-sensitive (losses among them) in fp32, with the same per-op policy as torch.autocast. Parameters and
 * their gradients stay fp32. Default: CPU bfloat16.
 */
export function autocast<T>(opts: AutocastOptions, fn: () => T): T {
  const device = opts.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') invalid('autocast device', '"cpu" or "cuda"', device);
  const dtype = opts.dtype ?? (device === 'cpu' ? 'bfloat16' : 'float16');
  if (dtype !== 'bfloat16' && dtype !== 'float16') invalid('autocast dtype', '"bfloat16" or "float16"', dtype);
  if (opts.enabled === false) return fn();
  const cuda = device === 'cuda';
  const [prevEnabled, prevDtype] = native.autocastEnter(cuda, dtypeCode(dtype));
  try {
    const r = fn();
    refuseAsync(r, 'autocast()');
    return r;
  } finally {
    native.autocastExit(cuda, prevEnabled, prevDtype);
  }
}

/** Seeds LibTorch's default CPU generator (and CUDA's, where present). */
export function manualSeed(seed: number): void {
  native.manualSeed(checkInt('seed', seed, 0, Number.MAX_SAFE_INTEGER));
}

export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt('threads', n, 1, 1024));
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function buildInfo(): BuildInfo {
  return native.buildInfo();
}

export function libtorchVersion(): string {
  return native.buildInfo().libtorch;
}

export function cudaAvailable(): boolean {
  return native.buildInfo().cudaAvailable;
}

/** The CPU generator's state (a uint8 tensor), to save in checkpoints. */
export function getRngState(): Tensor {
  return new Tensor(native.getRngState());
}

export function setRngState(state: Tensor): void {
  if (!(state instanceof Tensor) || state.dtype !== 'uint8') invalid('rng state', 'a uint8 Tensor from getRngState()', state);
  native.setRngState(state.handle);
}

// Intra-op threads = cores by default (Debian's OpenMP build starts with 1); MMTRAIN_NUM_THREADS or
// OMP_NUM_THREADS override. Set once at load, before any parallel work.
function defaultThreads(): number {
  const env = process.env.MMTRAIN_NUM_THREADS ?? process.env.OMP_NUM_THREADS;
  const n = env ? Number.parseInt(env, 10) : NaN;
  return Number.isInteger(n) && n > 0 ? n : availableParallelism();
}
native.setNumThreads(defaultThreads());
