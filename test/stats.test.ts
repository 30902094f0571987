// Summary statistics (src/stats.ts) against values worked out by hand with numpy's definitions: quantile by
// linear interpolation (np.quantile's default), median, mean and the sample std (ddof=1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, median, quantile, sampleStd } from '../src/stats.js';

test('quantile interpolates linearly between the nearest ranks, as np.quantile does by default', () => {
  const xs = [1, 2, 4, 8, 16];
  // position (n - 1) q: q 0.1 -> 0.4: 1 + (2 - 1) * 0.4
  assert.equal(quantile(xs, 0.1), 1.4);
  // q 0.25 -> 1: exactly the second value
  assert.equal(quantile(xs, 0.25), 2);
  // q 0.3 -> 1.2: 2 + (4 - 2) * 0.2
  assert.ok(Math.abs(quantile(xs, 0.3) - 2.4) < 1e-12);
  // q 0.9 -> 3.6: 8 + (16 - 8) * 0.6
  assert.ok(Math.abs(quantile(xs, 0.9) - 12.8) < 1e-12);
  assert.equal(quantile(xs, 0), 1);
  assert.equal(quantile(xs, 1), 16);
  assert.equal(quantile([5], 0.7), 5);
  // four values, q 0.5 -> 1.5: 2 + (4 - 2) * 0.5
  assert.equal(quantile([1, 2, 4, 8], 0.5), 3);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test('quantile refuses a q outside [0, 1], naming it', () => {
  assert.throws(() => quantile([1, 2], 1.5), /Expected a number from 0 to 1 for q but received number 1.5/);
  assert.throws(() => quantile([1, 2], Number.NaN), /for q/);
});

test('median sorts a copy: the middle value, or the midpoint of the two middle ones', () => {
  const xs = [9, 1, 5];
  assert.equal(median(xs), 5);
  assert.deepEqual(xs, [9, 1, 5]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([0.3, -1, 10, 7, 2, 2]), 2);
  assert.equal(median([-3]), -3);
  assert.ok(Number.isNaN(median([])));
});

test('mean and the sample standard deviation (Bessel\'s correction)', () => {
  assert.equal(mean([1, 2, 3, 6]), 3);
  assert.ok(Number.isNaN(mean([])));
  // deviations from 3: -2, -1, 0, 3 -> squares sum 14, / (4 - 1)
  assert.ok(Math.abs(sampleStd([1, 2, 3, 6]) - Math.sqrt(14 / 3)) < 1e-15);
  assert.equal(sampleStd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
  assert.ok(Number.isNaN(sampleStd([1])));
});
