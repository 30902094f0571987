// CUDA devices as LibTorch sees them, and the one place a device setting ("auto", "cpu", "cuda", "cuda:N") becomes
// a device: train.device, eval/predict --device, the demo. CPU builds of LibTorch see no device.
import { MmtrainError } from '../errors.js';
import { DEVICE_SETTING, type Device } from './dtype.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';

export interface CudaDevice {
  index: number;
  /** "" (and zeros below) where the addon was built without the CUDA runtime's headers */
  name: string;
  /** bytes */
  totalMemory: number;
  /** compute capability */
  major: number;
  minor: number;
  multiProcessors: number;
}

/** The CUDA devices LibTorch sees (none in a CPU build or without a driver). */
export function cudaDevices(): CudaDevice[] {
  return native.cudaDevices();
}

/**
 * The caching allocator's bytes on one GPU: allocated to tensors, reserved from the driver, peak allocated; null
 * where the addon was built without the CUDA runtime's headers.
 */
export function cudaMemory(index: number): { allocated: number; reserved: number; peakAllocated: number } | null {
  return native.cudaMemory(index);
}

/** Waits for every kernel and copy queued on GPU `index`. */
export function cudaSynchronize(index = 0): void {
  native.cudaSynchronize(index);
}

/** TF32 tensor cores for fp32 matmuls and convolutions on Ampere and later GPUs (no effect elsewhere). */
export function setAllowTF32(on: boolean): void {
  native.setAllowTF32(on);
}

/**
 * The device a setting names: `auto` is the first GPU when LibTorch sees one, else the CPU; `cuda` is `cuda:0`.
 * Asking for a GPU that is not there is an error that says what this build sees. `what` names the setting.
 */
export function resolveDevice(setting: string, what = 'device'): Device {
  if (typeof setting !== 'string' || !DEVICE_SETTING.test(setting)) {
    throw new MmtrainError(`Expected auto, cpu, cuda or cuda:N for ${what} but received ${JSON.stringify(setting)}`);
  }
  if (setting === 'cpu') return 'cpu';
  const info = native.buildInfo();
  const count = info.cudaAvailable ? info.cudaDeviceCount : 0;
  if (setting === 'auto') return count > 0 ? 'cuda:0' : 'cpu';
  const index = setting === 'cuda' ? 0 : Number(setting.slice(5));
  if (count === 0) {
    const why = info.cudaBuild ? 'this CUDA build of LibTorch sees no GPU (driver, CUDA_VISIBLE_DEVICES?)' : 'the addon was built against a CPU LibTorch (build it against a CUDA LibTorch: docs/training.md)';
    throw new MmtrainError(`${what} is ${setting} but ${why}; run \`mmtrain info\` to see what this build sees, or use ${what} cpu`);
  }
  if (index >= count) {
    throw new MmtrainError(`${what} is ${setting} but LibTorch sees ${count} GPU(s) (cuda:0${count > 1 ? `..cuda:${count - 1}` : ''}); run \`mmtrain info\` to list them`);
  }
  return `cuda:${index}`;
}

/**
 * A host tensor on `device`, taking its place: itself on the CPU; else copied through pinned memory asynchronously
 * (the copy overlaps the work queued before it), the host tensor disposed.
 */
export function hostToDevice(t: Tensor, device: Device): Tensor {
  if (device === 'cpu') return t;
  const pinned = t.pinMemory();
  const moved = pinned.to({ device, nonBlocking: true });
  // freeing the pinned block early is safe: LibTorch's host allocator holds it until the copy has run
  pinned.dispose();
  t.dispose();
  return moved;
}
