// Data types and devices. Their numeric codes are the addon's (native-codes.ts); this module does not load it.
import { invalid } from '../errors.js';

export const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool', 'int8', 'int16'] as const;
export type DType = (typeof DTYPES)[number];

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, uint8: 1, bool: 1, int8: 1, int16: 2,
};

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array;

/** The dtype whose memory layout a typed array has (Uint16Array carries raw float16/bfloat16 bits). */
export function dtypeOfArray(a: ArrayBufferView, hint?: DType): DType | undefined {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Uint8Array) return hint === 'bool' ? 'bool' : 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return hint === 'bfloat16' ? 'bfloat16' : hint === 'float16' ? 'float16' : undefined;
  return undefined;
}

/** A typed array viewing `buf` as elements of dtype `d` (float16/bfloat16 as raw Uint16 bits). */
export function typedArrayFor(d: DType, buf: ArrayBuffer, byteOffset = 0, length?: number): TypedArray {
  switch (d) {
    case 'float32': return new Float32Array(buf, byteOffset, length);
    case 'float64': return new Float64Array(buf, byteOffset, length);
    case 'int32': return new Int32Array(buf, byteOffset, length);
    case 'int64': return new BigInt64Array(buf, byteOffset, length);
    case 'uint8': case 'bool': return new Uint8Array(buf, byteOffset, length);
    case 'int8': return new Int8Array(buf, byteOffset, length);
    case 'int16': return new Int16Array(buf, byteOffset, length);
    case 'float16': case 'bfloat16': return new Uint16Array(buf, byteOffset, length);
  }
}

export type Device = string; // 'cpu' | 'cuda' | 'cuda:N'

/** A device setting (train.device, --device): a device, or auto (the first GPU LibTorch sees, else the CPU). */
export const DEVICE_SETTING = /^(auto|cpu|cuda(:\d+)?)$/;

export function checkDevice(d: unknown): Device {
  if (typeof d !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(d)) invalid('device', '"cpu", "cuda" or "cuda:N"', d);
  return d;
}
