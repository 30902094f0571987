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

/** Student's t 0.975 quantiles for 1 to 30 degrees of freedom (the two-sided 95% critical values). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/**
 * The two-sided 95% critical value of Student's t with `df` degrees of freedom: the table for whole df up to 30
 * (a fractional df, as Welch's, takes the next lower whole one: a wider, conservative interval), past it the
 * Cornish-Fisher expansion around the normal's 1.96 (within 0.001 of the exact value).
 */
export function t975(df: number): number {
  if (!(df >= 1)) invalid('df', 'at least 1 degree of freedom', df);
  if (df <= 30) return T975[Math.floor(df) - 1]!;
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

/** The mean of values and the half-width of its 95% confidence interval (Student's t; NaN below two values). */
export function meanCi95(xs: readonly number[]): { mean: number; half: number } {
  return { mean: mean(xs), half: xs.length < 2 ? NaN : t975(xs.length - 1) * sampleStd(xs) / Math.sqrt(xs.length) };
}

/**
 * The difference of two means (a - b) with the half-width of its 95% confidence interval by Welch's t (unequal
 * variances, Welch-Satterthwaite degrees of freedom); NaN when either side has fewer than two values.
 */
export function welchDiff95(a: readonly number[], b: readonly number[]): { diff: number; half: number } {
  const diff = mean(a) - mean(b);
  if (a.length < 2 || b.length < 2) return { diff, half: NaN };
  const va = sampleStd(a) ** 2 / a.length;
  const vb = sampleStd(b) ** 2 / b.length;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { diff, half: 0 };
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return { diff, half: t975(Math.max(1, df)) * se };
}
