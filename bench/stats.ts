// The bench's median: the shared one (src/stats.ts), refusing an empty measurement rather than quoting NaN.
import { median as medianOf } from '../src/stats.js';

export function median(xs: number[]): number {
  if (!xs.length) throw new Error('median of no values: the bench measured nothing');
  return medianOf(xs);
}
