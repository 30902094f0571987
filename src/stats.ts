// Summary statistics of plain number arrays, for diagnostics, warnings, studies, reports and the bench. A leaf
// module: it loads no LibTorch, so anything may use it. Empty input gives NaN (numpy's answer, without the
// warning); callers that must not quote an empty measurement check for it themselves.
import { invalid } from './errors.js';

/**
 * The q-quantile of values sorted ascending, by linear interpolation between the two nearest ranks (numpy's
 * default method, "linear"): position (n - 1) q, then lower + (upper - lower) * fraction.
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) invalid('q', 'a number from 0 to 1', q);
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** The median of values in any order: quantile 0.5 of a sorted copy. */
export function median(xs: readonly number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The sample standard deviation (Bessel's correction, numpy's ddof=1); NaN for fewer than two values. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}
