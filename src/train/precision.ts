// The run's precision setting as autocast options, for the device the model is on: bf16 and fp16 autocast on the
// CPU or the GPU (fp16 trains with loss scaling: loss-scaler.ts), fp32 without autocast.
import type { Module } from '../nn/module.js';
import type { Device } from '../tensor/dtype.js';
import type { AutocastOptions } from '../tensor/modes.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';

/** fp16 on the CPU (a GPU run's checkpoint evaluated on a CPU) computes in fp32: CPU autocast is bf16's. */
export function autocastFor(precision: Precision, device: Device): AutocastOptions {
  const cuda = device.startsWith('cuda');
  return { enabled: precision === 'bf16' || (precision === 'fp16' && cuda), device: cuda ? 'cuda' : 'cpu', dtype: precision === 'fp16' ? 'float16' : 'bfloat16' };
}

/** The device of a module's first parameter (mmtrain keeps a model on one device). */
export function deviceOf(model: Module): Device {
  return model.parameters()[0]?.device ?? 'cpu';
}
