// Shared test helpers: closeness checks with explicit tolerances, fixture paths.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../src/index.js';

// dist/test/helpers.js -> repository root is two levels up
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
// WebDataset shard counts kept between runs (shard-counts.ts) go to a folder of this test file's own, not the user's
// cache: child processes (the CLI) inherit it
process.env.MMTRAIN_CACHE_DIR ??= mkdtempSync(join(tmpdir(), 'mmtrain-cache-'));

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

/**
 * The tests' tiny fusion model for training runs: width 16, 2 heads, 16px images in 8px patches. With
 * `dropout: false` every dropout is off (runs that must match bit for bit across processes).
 */
export function tinyModel(opts: { dropout?: boolean } = {}): Record<string, unknown> {
  const off = opts.dropout === false ? { hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 } : {};
  return {
    text: { preset: 'bert-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, ...off } },
    image: { preset: 'vit-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8, ...off } },
    fusion_num_heads: 2, head_hidden_size: 16, ...(opts.dropout === false ? { head_dropout: 0 } : {}),
  };
}
