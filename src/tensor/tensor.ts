// The Tensor class: an opaque native handle with explicit disposal, and every op the models, trainer and
// diagnostics need. Kernels and autograd are LibTorch's; this file only validates and forwards.
import { MmtrainError, checkInt, checkNumber, checkShape, describe, invalid, isInt } from '../errors.js';
import { type DType, type Device, type TypedArray, BYTES_PER_ELEMENT, checkDevice, dtypeOfArray, isFloating, typedArrayFor } from './dtype.js';
import { native, type Handle } from './native.js';
import {
  type BinaryOp, type ReduceOp, type UnaryOp, BINARY_CODES, INPLACE_SCALAR_CODES, INPLACE_TENSOR_CODES, RANDOM_CODES,
  REDUCE_CODES, UNARY_CODES, dtypeCode, dtypeFromCode,
} from './native-codes.js';
import { setTrackedPredicate, trackNew, untrack } from './scope.js';

export type Scalar = number | boolean;
export type NestedArray = number | boolean | NestedArray[];
export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function normDims(dim: number | number[] | undefined | null): number[] | null {
  if (dim === undefined || dim === null) return null;
  if (typeof dim === 'number') return [checkInt('dim', dim)];
  if (!Array.isArray(dim) || !dim.every(isInt)) invalid('dim', 'an integer or an array of integers', dim);
  return dim;
}

function scalarArg(parameter: string, s: unknown): [number, boolean] {
  if (typeof s === 'boolean') return [s ? 1 : 0, true];
  if (typeof s !== 'number') invalid(parameter, 'a Tensor or a number', s);
  return [s, Number.isInteger(s)];
}

export class Tensor {
  #h: Handle;
  #shape: number[] | undefined;
  #dtype: DType | undefined;
  /** set by keep(): no scope disposes this tensor */
  kept = false;
  /** whether the GC safety net holds a record (see scope.ts) */
  registered = false;

  /** Wraps a native handle. Internal: use the creation functions. */
  constructor(handle: Handle) {
    this.#h = handle;
    trackNew(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): Handle {
    if (this.#h < 0) throw new MmtrainError('Tensor was disposed: it cannot be used after dispose() or after the tidy() scope that created it closed. Return it from the scope or keep() it.');
    return this.#h;
  }

  get isDisposed(): boolean {
    return this.#h < 0;
  }

  /** Frees the native tensor now. Idempotent. */
  dispose(): void {
    if (this.#h >= 0) {
      native.free(this.#h);
      this.#h = -1;
      untrack(this);
    }
  }

  /** Internal (scopes): marks this tensor disposed and returns its handle, which the caller must free. */
  releaseHandle(): Handle {
    const h = this.#h;
    this.#h = -1;
    untrack(this);
    return h;
  }

  // ---- metadata ----
  get shape(): number[] {
    return (this.#shape ??= native.shape(this.handle)).slice();
  }
  get ndim(): number {
    return (this.#shape ??= native.shape(this.handle)).length;
  }
  size(dim: number): number {
    const s = (this.#shape ??= native.shape(this.handle));
    const d = dim < 0 ? dim + s.length : dim;
    if (!isInt(dim) || d < 0 || d >= s.length) invalid('dim', `an integer in [${-s.length}, ${s.length - 1}]`, dim);
    return s[d]!;
  }
  get numel(): number {
    return (this.#shape ??= native.shape(this.handle)).reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return (this.#dtype ??= dtypeFromCode(native.dtype(this.handle)));
  }
  get device(): Device {
    return native.device(this.handle);
  }
  get strides(): number[] {
    return native.strides(this.handle);
  }
  isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }
  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- reading back ----
  /** A copy of the data in the tensor's own layout (float16/bfloat16 as float32, int64 as BigInt64Array). */
  toArray(): TypedArray {
    const d = this.dtype;
    if (d === 'float16' || d === 'bfloat16') return new Float32Array(native.read(this.handle, dtypeCode('float32')));
    return typedArrayFor(d, native.read(this.handle, -1));
  }
  /** A float32 copy of the data. */
  toFloat32Array(): Float32Array {
    return new Float32Array(native.read(this.handle, dtypeCode('float32')));
  }
  /** The data as plain numbers, flat in row-major order. */
  toNumbers(): number[] {
    const d = this.dtype;
    if (d === 'int64') return Array.from(new Float64Array(native.read(this.handle, dtypeCode('float64'))));
    return Array.from(this.toArray() as Float32Array);
  }
  /** The data as nested arrays shaped like the tensor. */
  toNested(): NestedArray {
    const flat = this.dtype === 'bool' ? this.toNumbers().map((v) => v !== 0) : this.toNumbers();
    const shape = this.shape;
    if (shape.length === 0) return flat[0]!;
    let i = 0;
    const build = (d: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let k = 0; k < shape[d]!; k++) out.push(d === shape.length - 1 ? flat[i++]! : build(d + 1));
      return out;
    };
    return build(0);
  }
  /** The value of a one-element tensor. */
  item(): number {
    return native.item(this.handle);
  }
  /** Raw bytes in the tensor's dtype (contiguous copy). */
  toBuffer(): Buffer {
    return Buffer.from(native.read(this.handle, -1));
  }

  // ---- conversion ----
  /**
   * A copy in another dtype and/or on another device (the tensor itself when nothing changes, unless `copy`).
   * `nonBlocking`: a copy from pinned host memory to a GPU is queued on the GPU's stream and returns at once.
   */
  to(target: DType | Device | { dtype?: DType; device?: Device; copy?: boolean; nonBlocking?: boolean }): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    let copy = false;
    let nonBlocking = false;
    if (typeof target === 'string') {
      if (target in BYTES_PER_ELEMENT) dtype = target as DType;
      else device = checkDevice(target);
    } else if (target && typeof target === 'object') {
      dtype = target.dtype;
      device = target.device === undefined ? undefined : checkDevice(target.device);
      copy = target.copy ?? false;
      nonBlocking = target.nonBlocking ?? false;
    } else {
      invalid('to(target)', 'a dtype, a device or { dtype, device }', target);
    }
    return new Tensor(native.to(this.handle, dtype === undefined ? -1 : dtypeCode(dtype), device ?? null, copy, nonBlocking));
  }
  /** A copy in page-locked host memory (needs CUDA), from which `to({ device, nonBlocking: true })` is asynchronous. */
  pinMemory(): Tensor { return new Tensor(native.pinMemory(this.handle)); }
  /**
   * Makes this tensor hold `src`'s data (device and dtype included) while staying the same object, so modules and
   * optimizers that hold it see the change: PyTorch's `param.data = src`.
   */
  setData_(src: Tensor): this {
    native.setData(this.handle, src.handle);
    this.#shape = undefined; // the cached metadata was the old data's
    this.#dtype = undefined;
    return this;
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  half(): Tensor { return this.to('float16'); }
  bfloat16(): Tensor { return this.to('bfloat16'); }
  long(): Tensor { return this.to('int64'); }
  int(): Tensor { return this.to('int32'); }
  bool(): Tensor { return this.to('bool'); }
  cpu(): Tensor { return this.to('cpu'); }
  cuda(index = 0): Tensor { return this.to(`cuda:${index}`); }

  // ---- unary ----
  #u(op: UnaryOp): Tensor { return new Tensor(native.unary(UNARY_CODES[op], this.handle)); }
  neg(): Tensor { return this.#u('neg'); }
  abs(): Tensor { return this.#u('abs'); }
  exp(): Tensor { return this.#u('exp'); }
  log(): Tensor { return this.#u('log'); }
  sqrt(): Tensor { return this.#u('sqrt'); }
  rsqrt(): Tensor { return this.#u('rsqrt'); }
  sin(): Tensor { return this.#u('sin'); }
  cos(): Tensor { return this.#u('cos'); }
  tanh(): Tensor { return this.#u('tanh'); }
  sigmoid(): Tensor { return this.#u('sigmoid'); }
  relu(): Tensor { return this.#u('relu'); }
  /** GELU; 'none' is the exact erf form (BERT, ViT), 'tanh' the approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    if (approximate !== 'none' && approximate !== 'tanh') invalid('approximate', '"none" or "tanh"', approximate);
    return this.#u(approximate === 'tanh' ? 'geluTanh' : 'gelu');
  }
  silu(): Tensor { return this.#u('silu'); }
  square(): Tensor { return this.#u('square'); }
  sign(): Tensor { return this.#u('sign'); }
  floor(): Tensor { return this.#u('floor'); }
  ceil(): Tensor { return this.#u('ceil'); }
  round(): Tensor { return this.#u('round'); }
  reciprocal(): Tensor { return this.#u('reciprocal'); }
  logicalNot(): Tensor { return this.#u('logicalNot'); }
  isfinite(): Tensor { return this.#u('isfinite'); }
  isnan(): Tensor { return this.#u('isnan'); }
  isinf(): Tensor { return this.#u('isinf'); }
  erf(): Tensor { return this.#u('erf'); }
  log1p(): Tensor { return this.#u('log1p'); }
  expm1(): Tensor { return this.#u('expm1'); }
  contiguous(): Tensor { return this.#u('contiguous'); }
  clone(): Tensor { return this.#u('clone'); }
  /** A tensor sharing storage, cut from the autograd graph. */
  detach(): Tensor { return this.#u('detach'); }

  // ---- binary (broadcasting; other may be a number) ----
  #b(op: BinaryOp, other: Tensor | Scalar): Tensor {
    if (other instanceof Tensor) return new Tensor(native.binary(BINARY_CODES[op], this.handle, other.handle));
    const [v, isIntScalar] = scalarArg(`${op}(other)`, other);
    return new Tensor(native.binaryScalar(BINARY_CODES[op], this.handle, v, isIntScalar));
  }
  /** this + alpha * other */
  add(other: Tensor | Scalar, alpha = 1): Tensor {
    if (alpha !== 1 && other instanceof Tensor) return new Tensor(native.addScaled(this.handle, other.handle, checkNumber('alpha', alpha)));
    if (alpha !== 1) return this.#b('add', (other as number) * alpha);
    return this.#b('add', other);
  }
  sub(other: Tensor | Scalar, alpha = 1): Tensor {
    if (alpha !== 1 && other instanceof Tensor) return new Tensor(native.addScaled(this.handle, other.handle, -checkNumber('alpha', alpha)));
    if (alpha !== 1) return this.#b('sub', (other as number) * alpha);
    return this.#b('sub', other);
  }
  mul(other: Tensor | Scalar): Tensor { return this.#b('mul', other); }
  div(other: Tensor | Scalar): Tensor { return this.#b('div', other); }
  pow(other: Tensor | Scalar): Tensor { return this.#b('pow', other); }
  maximum(other: Tensor | Scalar): Tensor { return this.#b('maximum', other); }
  minimum(other: Tensor | Scalar): Tensor { return this.#b('minimum', other); }
  remainder(other: Tensor | Scalar): Tensor { return this.#b('remainder', other); }
  floorDivide(other: Tensor | Scalar): Tensor { return this.#b('floorDivide', other); }
  eq(other: Tensor | Scalar): Tensor { return this.#b('eq', other); }
  ne(other: Tensor | Scalar): Tensor { return this.#b('ne', other); }
  lt(other: Tensor | Scalar): Tensor { return this.#b('lt', other); }
  le(other: Tensor | Scalar): Tensor { return this.#b('le', other); }
  gt(other: Tensor | Scalar): Tensor { return this.#b('gt', other); }
  ge(other: Tensor | Scalar): Tensor { return this.#b('ge', other); }
  logicalAnd(other: Tensor | Scalar): Tensor { return this.#b('logicalAnd', other); }
  logicalOr(other: Tensor | Scalar): Tensor { return this.#b('logicalOr', other); }
  /** s - this */
  rsub(s: number): Tensor { return this.#b('rsub', s); }
  /** s / this */
  rdiv(s: number): Tensor { return this.#b('rdiv', s); }
  /** s ** this */
  rpow(s: number): Tensor { return this.#b('rpow', s); }
  clamp(min: number | null, max: number | null = null): Tensor {
    if (min !== null) checkNumber('min', min);
    if (max !== null) checkNumber('max', max);
    return new Tensor(native.clamp(this.handle, min, max));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return new Tensor(native.maskedFill(this.handle, mask.handle, checkNumber('value', value)));
  }

  // ---- reductions ----
  #r(op: ReduceOp, dim: number | number[] | undefined | null, keepdim: boolean, extra?: number): Tensor {
    return new Tensor(native.reduce(REDUCE_CODES[op], this.handle, normDims(dim), keepdim, extra));
  }
  sum(dim?: number | number[] | null, keepdim = false): Tensor { return this.#r('sum', dim, keepdim); }
  mean(dim?: number | number[] | null, keepdim = false): Tensor { return this.#r('mean', dim, keepdim); }
  amax(dim?: number | number[] | null, keepdim = false): Tensor { return this.#r('amax', dim ?? [], keepdim); }
  amin(dim?: number | number[] | null, keepdim = false): Tensor { return this.#r('amin', dim ?? [], keepdim); }
  /** The largest element, or { values, indices } along dim. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return this.#r('amax', [], false);
    const [v, i] = native.maxDim(this.handle, checkInt('dim', dim), keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return this.#r('amin', [], false);
    const [v, i] = native.minDim(this.handle, checkInt('dim', dim), keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  argmax(dim?: number, keepdim = false): Tensor { return this.#r('argmax', dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return this.#r('argmin', dim, keepdim); }
  prod(dim?: number, keepdim = false): Tensor { return this.#r('prod', dim, keepdim); }
  /** Variance with Bessel's correction by default (correction 1), as torch.var. */
  var(dim?: number | number[] | null, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return this.#r('var', dim, opts.keepdim ?? false, opts.correction ?? 1);
  }
  std(dim?: number | number[] | null, opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return this.#r('std', dim, opts.keepdim ?? false, opts.correction ?? 1);
  }
  /** Vector p-norm over dim (all elements by default). */
  norm(p = 2, dim?: number | number[] | null, keepdim = false): Tensor {
    return this.#r('norm', dim, keepdim, checkNumber('p', p));
  }
  logsumexp(dim?: number | number[] | null, keepdim = false): Tensor { return this.#r('logsumexp', dim, keepdim); }
  all(dim?: number, keepdim = false): Tensor { return this.#r('all', dim, keepdim); }
  any(dim?: number, keepdim = false): Tensor { return this.#r('any', dim, keepdim); }
  cumsum(dim: number): Tensor { return new Tensor(native.cumsum(this.handle, checkInt('dim', dim))); }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [v, i] = native.sort(this.handle, checkInt('dim', dim), descending);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  topk(k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
    const [v, i] = native.topk(this.handle, checkInt('k', k, 0), checkInt('dim', dim), largest);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }

  // ---- shape and indexing ----
  reshape(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.reshape(this.handle, shapeArgs('reshape', shape)));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.view(this.handle, shapeArgs('view', shape)));
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return new Tensor(native.permute(this.handle, shapeArgs('permute', dims)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.handle, checkInt('dim0', dim0), checkInt('dim1', dim1)));
  }
  /** Elements start..end (exclusive) along dim, like Python's t[..., start:end:step]. */
  slice(dim: number, start = 0, end: number = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, checkInt('dim', dim), checkInt('start', start), checkInt('end', end), checkInt('step', step, 1)));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return this.slice(dim, start, checkInt('start', start) + checkInt('length', length, 0));
  }
  /** Removes dim by taking index i along it. */
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, checkInt('dim', dim), checkInt('index', index)));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.handle, checkInt('dim', dim), index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, checkInt('dim', dim), index.handle));
  }
  /** Advanced indexing along dim 0 with an integer or boolean tensor (t[idx]). */
  index(idx: Tensor): Tensor {
    return new Tensor(native.indexTensor(this.handle, idx.handle));
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    if (typeof sizeOrSizes === 'number') checkInt('split size', sizeOrSizes, 1);
    else checkShape('split sizes', sizeOrSizes);
    return native.split(this.handle, sizeOrSizes, checkInt('dim', dim)).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.handle, checkInt('chunks', chunks, 1), checkInt('dim', dim)).map((h) => new Tensor(h));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim === undefined ? null : checkInt('dim', dim)));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, checkInt('dim', dim)));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.expand(this.handle, shapeArgs('expand', shape)));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.flatten(this.handle, checkInt('startDim', startDim), checkInt('endDim', endDim)));
  }
  repeat(...repeats: number[] | [number[]]): Tensor {
    return new Tensor(native.repeat(this.handle, shapeArgs('repeat', repeats)));
  }
  flip(dims: number | number[]): Tensor {
    return new Tensor(native.flip(this.handle, normDims(dims) ?? []));
  }
  tril(k = 0): Tensor { return new Tensor(native.tril(this.handle, checkInt('k', k), false)); }
  triu(k = 0): Tensor { return new Tensor(native.tril(this.handle, checkInt('k', k), true)); }
  oneHot(numClasses = -1): Tensor { return new Tensor(native.oneHot(this.handle, checkInt('numClasses', numClasses, -1))); }

  // ---- products ----
  matmul(other: Tensor): Tensor { return new Tensor(native.matmul(this.handle, other.handle)); }
  bmm(other: Tensor): Tensor { return new Tensor(native.bmm(this.handle, other.handle)); }
  mm(other: Tensor): Tensor { return new Tensor(native.mm(this.handle, other.handle)); }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  set requiresGrad(v: boolean) {
    if (typeof v !== 'boolean') invalid('requiresGrad', 'a boolean', v);
    native.setRequiresGrad(this.handle, v);
  }
  /** Sets requiresGrad and returns this, like torch's requires_grad_(). */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }
  /** The accumulated gradient as a new handle on the same storage, or null. */
  get grad(): Tensor | null {
    const h = native.grad(this.handle);
    return h < 0 ? null : new Tensor(h);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? -1 : g.handle);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  retainGrad(): void {
    native.retainGrad(this.handle);
  }
  /** Accumulates gradients into the leaves; a non-scalar tensor needs an explicit gradient. */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    native.backward(this.handle, gradient ? gradient.handle : -1, opts.retainGraph ?? false);
  }

  // ---- in-place updates (optimizers, initialisers; run them under noGrad on parameters) ----
  add_(other: Tensor | number, alpha = 1): this {
    if (other instanceof Tensor) native.inplaceBinary(INPLACE_TENSOR_CODES.add_, this.handle, other.handle, alpha);
    else native.inplaceScalar(INPLACE_SCALAR_CODES.add_, this.handle, checkNumber('other', other) * alpha);
    return this;
  }
  sub_(other: Tensor | number, alpha = 1): this {
    if (other instanceof Tensor) native.inplaceBinary(INPLACE_TENSOR_CODES.sub_, this.handle, other.handle, alpha);
    else native.inplaceScalar(INPLACE_SCALAR_CODES.add_, this.handle, -checkNumber('other', other) * alpha);
    return this;
  }
  mul_(other: Tensor | number): this {
    if (other instanceof Tensor) native.inplaceBinary(INPLACE_TENSOR_CODES.mul_, this.handle, other.handle, 1);
    else native.inplaceScalar(INPLACE_SCALAR_CODES.mul_, this.handle, checkNumber('other', other));
    return this;
  }
  div_(other: Tensor | number): this {
    if (other instanceof Tensor) native.inplaceBinary(INPLACE_TENSOR_CODES.div_, this.handle, other.handle, 1);
    else native.inplaceScalar(INPLACE_SCALAR_CODES.div_, this.handle, checkNumber('other', other));
    return this;
  }
  copy_(src: Tensor): this {
    native.inplaceBinary(INPLACE_TENSOR_CODES.copy_, this.handle, src.handle, 1);
    return this;
  }
  fill_(value: number): this {
    if (typeof value !== 'number') invalid('value', 'a number', value);
    native.inplaceScalar(INPLACE_SCALAR_CODES.fill_, this.handle, value); // NaN and Inf are legitimate fill values
    return this;
  }
  zero_(): this {
    native.inplaceScalar(INPLACE_SCALAR_CODES.zero_, this.handle);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.inplaceScalar(INPLACE_SCALAR_CODES.normal_, this.handle, checkNumber('mean', mean), checkNumber('std', std, 0));
    return this;
  }
  uniform_(from = 0, to = 1): this {
    native.inplaceScalar(INPLACE_SCALAR_CODES.uniform_, this.handle, checkNumber('from', from), checkNumber('to', to));
    return this;
  }
  clamp_(min: number, max: number): this {
    native.inplaceScalar(INPLACE_SCALAR_CODES.clamp_, this.handle, checkNumber('min', min), checkNumber('max', max));
    return this;
  }
  sqrt_(): this {
    native.inplaceScalar(INPLACE_SCALAR_CODES.sqrt_, this.handle);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    native.addcmul_(this.handle, t1.handle, t2.handle, checkNumber('value', value));
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    native.addcdiv_(this.handle, t1.handle, t2.handle, checkNumber('value', value));
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    native.lerp_(this.handle, end.handle, checkNumber('weight', weight));
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this {
    native.maskedFill_(this.handle, mask.handle, checkNumber('value', value));
    return this;
  }
}

setTrackedPredicate((v: object): v is Tensor => v instanceof Tensor);

function shapeArgs(op: string, args: number[] | [number[]]): number[] {
  const shape = args.length === 1 && Array.isArray(args[0]) ? args[0] : (args as number[]);
  if (!shape.every(isInt)) invalid(`${op} shape`, 'integers', shape);
  return shape;
}

// ---- creation ----

function flattenNested(data: NestedArray, shape: number[], out: number[], depth: number, path: string): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) invalid(`data${path}`, `an array of length ${shape[depth]} (ragged nested arrays are not tensors)`, data);
    data.forEach((d, i) => flattenNested(d, shape, out, depth + 1, `${path}[${i}]`));
  } else {
    if (depth !== shape.length) invalid(`data${path}`, 'an array (ragged nested arrays are not tensors)', data);
    if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else if (typeof data === 'number') out.push(data);
    else invalid(`data${path}`, 'a number or boolean', data);
  }
}

function resolveDevice(device: Device | undefined): string | null {
  return device === undefined ? null : checkDevice(device);
}

/**
 * A tensor from nested arrays, a typed array (with opts.shape, default 1-D) or a number. The default dtype is
 * the typed array's, else float32 (int64 for integer nested data given dtype 'int64').
 */
export function tensor(data: NestedArray | ArrayBufferView, opts: TensorOptions & { shape?: number[] } = {}): Tensor {
  let result: Tensor;
  if (ArrayBuffer.isView(data)) {
    const src = dtypeOfArray(data, opts.dtype);
    if (!src) invalid('data', 'a Float32Array, Float64Array, Int32Array, BigInt64Array, Uint8Array, Int8Array, Int16Array (or Uint16Array with dtype float16/bfloat16)', data);
    const length = data.byteLength / BYTES_PER_ELEMENT[src];
    const shape = opts.shape ? checkShape('shape', opts.shape) : [length];
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== length) invalid('shape', `a shape with ${length} elements (the data's length)`, `[${shape.join(', ')}] (${n} elements)`);
    result = new Tensor(native.fromTypedArray(data, shape, dtypeCode(src), dtypeCode(opts.dtype ?? src), false, resolveDevice(opts.device)));
  } else {
    const shape: number[] = [];
    const flat: number[] = [];
    flattenNested(data, shape, flat, 0, '');
    if (opts.shape) {
      const want = checkShape('shape', opts.shape);
      if (want.reduce((a, b) => a * b, 1) !== flat.length) invalid('shape', `a shape with ${flat.length} elements`, `[${want.join(', ')}]`);
      shape.splice(0, shape.length, ...want);
    }
    const dtype = opts.dtype ?? 'float32';
    result = new Tensor(native.fromTypedArray(new Float64Array(flat), shape, dtypeCode('float64'), dtypeCode(dtype), false, resolveDevice(opts.device)));
  }
  if (opts.requiresGrad) result.requiresGrad = true;
  return result;
}

/**
 * A tensor over a typed array's memory without copying (CPU). The tensor and the array share memory: writes to
 * either are seen by both, and the array is kept alive as long as the tensor. Detaching (transferring) the
 * array's buffer while the tensor lives is not allowed.
 */
export function fromBuffer(data: ArrayBufferView, shape: number[], dtype?: DType): Tensor {
  const src = dtypeOfArray(data, dtype);
  if (!src) invalid('data', 'a typed array matching dtype', data);
  if (dtype !== undefined && dtype !== src) invalid('dtype', `the typed array's dtype ${src}`, dtype);
  checkShape('shape', shape);
  const n = shape.reduce((a, b) => a * b, 1);
  const length = data.byteLength / BYTES_PER_ELEMENT[src];
  if (n !== length) invalid('shape', `a shape with ${length} elements`, `[${shape.join(', ')}]`);
  return new Tensor(native.fromTypedArray(data, shape, dtypeCode(src), dtypeCode(src), true, null));
}

function creationOpts(opts: TensorOptions, defaultDtype: DType = 'float32'): [number, string | null] {
  return [dtypeCode(opts.dtype ?? defaultDtype), resolveDevice(opts.device)];
}

function withGrad(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

export function full(shape: number[], value: number, opts: TensorOptions = {}): Tensor {
  const [d, dev] = creationOpts(opts);
  if (typeof value !== 'number') invalid('value', 'a number', value);
  return withGrad(new Tensor(native.full(checkShape('shape', shape), value, d, dev)), opts);
}
export function zeros(shape: number[], opts: TensorOptions = {}): Tensor { return full(shape, 0, opts); }
export function ones(shape: number[], opts: TensorOptions = {}): Tensor { return full(shape, 1, opts); }
export function empty(shape: number[], opts: TensorOptions = {}): Tensor {
  const [d, dev] = creationOpts(opts);
  return withGrad(new Tensor(native.empty(checkShape('shape', shape), d, dev)), opts);
}
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor { return zeros(t.shape, { dtype: t.dtype, device: t.device, ...opts }); }
export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor { return ones(t.shape, { dtype: t.dtype, device: t.device, ...opts }); }
export function fullLike(t: Tensor, value: number, opts: TensorOptions = {}): Tensor { return full(t.shape, value, { dtype: t.dtype, device: t.device, ...opts }); }
export function scalar(value: number, opts: TensorOptions = {}): Tensor { return full([], value, opts); }

/** Values start, start+step, ... below end. arange(n) counts 0..n-1 as int64. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  checkNumber('start', start);
  checkNumber('end', end);
  if (typeof step !== 'number' || step === 0 || Number.isNaN(step)) invalid('step', 'a non-zero number', step);
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const [d, dev] = creationOpts(opts, allInt ? 'int64' : 'float32');
  return new Tensor(native.arange(start, end, step, d, dev));
}

export function randn(shape: number[], opts: TensorOptions = {}): Tensor {
  const [d, dev] = creationOpts(opts);
  return withGrad(new Tensor(native.random(RANDOM_CODES.randn, checkShape('shape', shape), d, dev)), opts);
}
export function rand(shape: number[], opts: TensorOptions = {}): Tensor {
  const [d, dev] = creationOpts(opts);
  return withGrad(new Tensor(native.random(RANDOM_CODES.rand, checkShape('shape', shape), d, dev)), opts);
}
/** Integers uniformly in [low, high). */
export function randint(low: number, high: number, shape: number[], opts: TensorOptions = {}): Tensor {
  checkInt('low', low);
  checkInt('high', high, low + 1);
  const [d, dev] = creationOpts(opts, 'int64');
  return new Tensor(native.random(RANDOM_CODES.randint, checkShape('shape', shape), d, dev, low, high));
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0 || !tensors.every((t) => t instanceof Tensor)) invalid('tensors', 'a non-empty array of Tensors', tensors);
  return new Tensor(native.cat(tensors.map((t) => t.handle), checkInt('dim', dim)));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0 || !tensors.every((t) => t instanceof Tensor)) invalid('tensors', 'a non-empty array of Tensors', tensors);
  return new Tensor(native.stack(tensors.map((t) => t.handle), checkInt('dim', dim)));
}
/** Elementwise cond ? a : b, broadcasting; a or b may be numbers. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  const opts: TensorOptions = like ? { dtype: like.dtype, device: like.device } : { device: cond.device };
  const ta = a instanceof Tensor ? a : full([], checkNumber('a', a), opts);
  const tb = b instanceof Tensor ? b : full([], checkNumber('b', b), opts);
  try {
    return new Tensor(native.where(cond.handle, ta.handle, tb.handle));
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

export { describe, isFloating };
