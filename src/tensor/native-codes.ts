// The addon's code tables as name -> code maps. Native code picks an op of a family (unary, binary, ...) or a dtype
// by a number, and defines each family once, as an array whose index is the code (native/src/code_tables.h); the
// addon exports the names in code order (native.codeTables) and the maps here are built from them when the addon
// loads, so the two sides cannot drift. The name lists below exist for typing: loading refuses an addon that lacks
// one of them (a build from older sources), and test/native-codes.test.ts requires each list to be exactly its
// table.
import { invalid } from '../errors.js';
import { DTYPES, type DType } from './dtype.js';
import { type CodeTables, native } from './native.js';

export const UNARY_OPS = [
  'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'gelu', 'geluTanh', 'silu',
  'square', 'sign', 'floor', 'ceil', 'round', 'reciprocal', 'logicalNot', 'isfinite', 'isnan', 'contiguous', 'clone',
  'detach', 'erf', 'log1p', 'expm1', 'isinf',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Binary ops, each with a tensor or a number as the other operand (rsub, rdiv and rpow with a number only). */
export const BINARY_OPS = [
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logicalAnd',
  'logicalOr', 'remainder', 'rsub', 'rdiv', 'rpow', 'floorDivide',
] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export const REDUCE_OPS = ['sum', 'mean', 'amax', 'amin', 'prod', 'var', 'std', 'norm', 'logsumexp', 'argmax', 'argmin', 'all', 'any'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

/** In-place updates by a tensor (native.inplaceBinary). */
export const INPLACE_TENSOR_OPS = ['add_', 'sub_', 'mul_', 'div_', 'copy_'] as const;
export type InplaceTensorOp = (typeof INPLACE_TENSOR_OPS)[number];

/** In-place updates by up to two numbers (native.inplaceScalar). */
export const INPLACE_SCALAR_OPS = ['add_', 'mul_', 'fill_', 'zero_', 'normal_', 'uniform_', 'clamp_', 'sqrt_', 'div_'] as const;
export type InplaceScalarOp = (typeof INPLACE_SCALAR_OPS)[number];

export const RANDOM_KINDS = ['randn', 'rand', 'randint', 'normal', 'uniform'] as const;
export type RandomKind = (typeof RANDOM_KINDS)[number];

export const LOSS_REDUCTIONS = ['none', 'mean', 'sum'] as const;
export type LossReduction = (typeof LOSS_REDUCTIONS)[number];

export const INTERPOLATION_MODES = ['bilinear', 'bicubic', 'nearest'] as const;
export type InterpolationMode = (typeof INTERPOLATION_MODES)[number];

/** Every table's TypeScript names, by the family the addon exports it under. */
export const NAMES_BY_TABLE: { readonly [F in keyof CodeTables]: readonly string[] } = {
  dtype: DTYPES,
  unary: UNARY_OPS,
  binary: BINARY_OPS,
  reduce: REDUCE_OPS,
  inplaceTensor: INPLACE_TENSOR_OPS,
  inplaceScalar: INPLACE_SCALAR_OPS,
  random: RANDOM_KINDS,
  lossReduction: LOSS_REDUCTIONS,
  interpolation: INTERPOLATION_MODES,
};

/**
 * name -> code for one table. The map has no prototype, so a user's string that is not a name ("toString") looks
 * up as undefined like any other unknown name.
 */
function codesOf<Name extends string>(table: keyof CodeTables, names: readonly Name[]): Readonly<Record<Name, number>> {
  const exported = native.codeTables?.[table];
  if (!Array.isArray(exported)) {
    throw new Error(`mmtrain: the native addon exports no "${table}" code table; it was built from other sources: rebuild it (npm run build:native)`);
  }
  const codes = Object.create(null) as Record<Name, number>;
  const missing: string[] = [];
  for (const name of names) {
    const code = exported.indexOf(name);
    if (code < 0) missing.push(name);
    else codes[name] = code;
  }
  if (missing.length) {
    throw new Error(
      `mmtrain: the native addon's "${table}" code table lacks ${missing.join(', ')} (it has ${exported.join(', ')}); ` +
        'it was built from other sources: rebuild it (npm run build:native)',
    );
  }
  return Object.freeze(codes);
}

export const UNARY_CODES = codesOf('unary', UNARY_OPS);
export const BINARY_CODES = codesOf('binary', BINARY_OPS);
export const REDUCE_CODES = codesOf('reduce', REDUCE_OPS);
export const INPLACE_TENSOR_CODES = codesOf('inplaceTensor', INPLACE_TENSOR_OPS);
export const INPLACE_SCALAR_CODES = codesOf('inplaceScalar', INPLACE_SCALAR_OPS);
export const RANDOM_CODES = codesOf('random', RANDOM_KINDS);
export const LOSS_REDUCTION_CODES = codesOf('lossReduction', LOSS_REDUCTIONS);
export const INTERPOLATION_CODES = codesOf('interpolation', INTERPOLATION_MODES);
const DTYPE_CODES = codesOf('dtype', DTYPES);
/** dtype by code; a code whose name TypeScript does not know has no entry. */
const DTYPE_BY_CODE: readonly (DType | undefined)[] = native.codeTables.dtype.map((n) => (DTYPES as readonly string[]).includes(n) ? n as DType : undefined);

export function dtypeCode(d: DType): number {
  const c = DTYPE_CODES[d];
  if (c === undefined) invalid('dtype', `one of ${DTYPES.join(', ')}`, d);
  return c;
}

export function dtypeFromCode(c: number): DType {
  const d = DTYPE_BY_CODE[c];
  if (d === undefined) throw new Error(`unsupported dtype code ${c} from LibTorch`);
  return d;
}
