// Shared test helpers: closeness checks with explicit tolerances, fixture paths.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../src/index.js';

// dist/test/helpers.js -> repository root is two levels up
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');

export interface Tol {
  atol: number;
  rtol: number;
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise, with the worst element in the message. */
export function assertClose(actual: Tensor, expected: Tensor, tol: Tol, what = 'tensor'): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.toFloat32Array();
  const b = expected.toFloat32Array();
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) {
      worst = i;
      worstExcess = Infinity;
      break;
    }
    if (x === y) continue;
    const excess = Math.abs(x - y) - (tol.atol + tol.rtol * Math.abs(y));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${a[worst]} but expected ${b[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
setFlagsFromString('--expose-gc');
const gcNow = runInNewContext('gc') as () => void;

/** Runs a full GC and lets finalizers run, so tensor counts are not moved by earlier garbage mid-measurement. */
export async function settleGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gcNow();
    await new Promise((r) => setImmediate(r));
  }
}
