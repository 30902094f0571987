// The one summary statistic the bench quotes.

/** The median: the middle value, or the mean of the two middle values when there is an even number. */
export function median(xs: number[]): number {
  if (!xs.length) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
