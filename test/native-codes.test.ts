// The addon's code tables and TypeScript's names for them: the same sets, so a table changed on one side only
// fails here; codes outside a table are refused by name; every dtype survives the trip through its code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DTYPES, tidy, zeros } from '../src/index.js';
import { native, type CodeTables } from '../src/tensor/native.js';
import {
  BINARY_CODES, INPLACE_SCALAR_CODES, INPLACE_TENSOR_CODES, INTERPOLATION_CODES, LOSS_REDUCTION_CODES, NAMES_BY_TABLE,
  RANDOM_CODES, REDUCE_CODES, UNARY_CODES, dtypeCode,
} from '../src/tensor/native-codes.js';

const sorted = (xs: readonly string[]) => [...xs].sort();

test('every code table the addon exports has a TypeScript name list, and no list lacks a table', () => {
  assert.deepEqual(sorted(Object.keys(native.codeTables)), sorted(Object.keys(NAMES_BY_TABLE)));
  assert.equal(Object.keys(NAMES_BY_TABLE).length, 9, 'the dtype table and eight op tables');
});

for (const table of Object.keys(NAMES_BY_TABLE) as (keyof CodeTables)[]) {
  test(`code table "${table}": TypeScript's names are exactly the addon's`, () => {
    const exported = native.codeTables[table];
    assert.ok(exported.length > 0, `the addon's "${table}" table is empty`);
    assert.equal(new Set(exported).size, exported.length, `the addon's "${table}" table repeats a name: ${exported.join(', ')}`);
    assert.deepEqual(sorted(NAMES_BY_TABLE[table]), sorted(exported));
  });
}

test('each name -> code map sends a name to its index in the addon\'s table', () => {
  const maps: [keyof CodeTables, Readonly<Record<string, number>>][] = [
    ['unary', UNARY_CODES], ['binary', BINARY_CODES], ['reduce', REDUCE_CODES], ['inplaceTensor', INPLACE_TENSOR_CODES],
    ['inplaceScalar', INPLACE_SCALAR_CODES], ['random', RANDOM_CODES], ['lossReduction', LOSS_REDUCTION_CODES],
    ['interpolation', INTERPOLATION_CODES],
  ];
  for (const [table, codes] of maps) {
    assert.ok(native.codeTables[table].length > 0 && native.codeTables[table].length === Object.keys(codes).length, `${table}: ${native.codeTables[table].length} codes in the addon, ${Object.keys(codes).length} names`);
    native.codeTables[table].forEach((name, code) => assert.equal(codes[name], code, `${table}: ${name}`));
  }
  assert.ok(DTYPES.length > 0 && native.codeTables.dtype.length === DTYPES.length, `dtype: ${native.codeTables.dtype.length} codes, ${DTYPES.length} dtypes`);
  native.codeTables.dtype.forEach((name, code) => assert.equal(dtypeCode(name as (typeof DTYPES)[number]), code, `dtype: ${name}`));
  // the maps have no prototype: a user's "toString" is an unknown name like any other
  assert.equal((LOSS_REDUCTION_CODES as Record<string, unknown>).toString, undefined);
});

test('a code outside its table is refused with the family and the codes it has', () => {
  tidy(() => {
    const a = zeros([2]);
    const h = a.handle;
    const past = (t: keyof CodeTables) => native.codeTables[t].length;
    assert.throws(() => native.unary(past('unary'), h), new RegExp(`unknown unary op code ${past('unary')} \\(expected 0 to ${past('unary') - 1}\\)`));
    assert.throws(() => native.binary(-1, h, h), /unknown binary op code -1/);
    assert.throws(() => native.binaryScalar(past('binary'), h, 1, true), /unknown binary op code/);
    assert.throws(() => native.reduce(past('reduce'), h, null, false), /unknown reduction code/);
    assert.throws(() => native.inplaceBinary(past('inplaceTensor'), h, h, 1), /unknown in-place op code/);
    assert.throws(() => native.inplaceScalar(past('inplaceScalar'), h, 1), /unknown in-place op code/);
    assert.throws(() => native.random(past('random'), [2], dtypeCode('float32'), null), /unknown random kind code/);
    assert.throws(() => native.mseLoss(h, h, past('lossReduction')), /unknown loss reduction code/);
    assert.throws(() => native.interpolate(zeros([1, 1, 2, 2]).handle, [4, 4], past('interpolation'), false), /unknown interpolation mode code/);
    assert.throws(() => native.full([1], 0, past('dtype'), null), new RegExp(`unknown dtype code ${past('dtype')}`));
    // rsub, rdiv and rpow exist for a number only
    assert.throws(() => native.binary(BINARY_CODES.rsub, h, h), /rsub takes a number/);
  });
});

test('every dtype survives the trip to LibTorch and back through its code', () => {
  assert.ok(DTYPES.length > 0, 'no dtypes');
  tidy(() => {
    for (const d of DTYPES) assert.equal(zeros([1], { dtype: d }).dtype, d);
  });
});
