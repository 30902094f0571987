// Class labels, one rule for every data format: integers (or integer strings) index the label list directly; names
// go through it; booleans are 0 and 1. Without a given list, labels are discovered: integers give "0".."max" (at least
// two classes), booleans alone give "false", "true", names give the sorted set of names.

import { MmtrainError } from '../errors.js';

/** The most classes integer labels may make when discovered (a larger one is an id, not a class index). */
const MAX_CLASSES = 1_000_000;

const isIntLabel = (v: unknown) => (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'bigint') || (typeof v === 'string' && /^\d+$/.test(v));

const isMinusOne = (v: unknown) => v === -1 || v === -1n;

/**
 * Whether a raw label is absent (no label): missing, null, empty, or the number -1, which `datasets` writes for a
 * ClassLabel sample without a label (test splits) and mmtrain uses for an unlabelled sample.
 */
export function noLabel(v: unknown): boolean {
  return v === undefined || v === null || v === '' || isMinusOne(v);
}

/** The problem of a sample without a label where one is needed. */
export function missingLabel(v: unknown): string {
  return isMinusOne(v) ? '"label" is -1, no label (as datasets marks the samples of an unlabelled split)' : '"label" is missing';
}

/** The label list discovered from raw label values (absent ones ignored). */
export function discoverLabels(values: Iterable<unknown>): string[] {
  let max = -1;
  let allInt = true;
  let allBool = true;
  let any = false;
  const names = new Set<string>();
  for (const v of values) {
    if (noLabel(v)) continue;
    any = true;
    if (typeof v === 'boolean') max = Math.max(max, Number(v));
    else {
      allBool = false;
      if (isIntLabel(v)) max = Math.max(max, Number(v));
      else allInt = false;
    }
    if (typeof v === 'string') names.add(v);
  }
  if (any && allBool) return ['false', 'true'];
  if (allInt && max >= MAX_CLASSES) throw new MmtrainError(`labels: found the integer label ${max}; integer labels are class indices 0..max, which would make ${max + 1} classes (at most ${MAX_CLASSES}): give the class names in data.labels, or use class indices`);
  if (allInt) return Array.from({ length: Math.max(max + 1, 2) }, (_, i) => String(i));
  return [...names].sort();
}

/**
 * A function from a raw label to its class index, or to the message saying why it is not one. `given`: the list
 * came from the user (an integer string is then a name only).
 */
export function labelResolver(labels: string[], given: boolean): (v: unknown) => number | string {
  const index = new Map(labels.map((l, i) => [l, i]));
  return (v) => {
    if (typeof v === 'bigint') v = Number(v);
    if (typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0 || v >= labels.length) return `label ${v} is not a class index in [0, ${labels.length - 1}]`;
      return v;
    }
    if (typeof v === 'string') {
      const i = index.get(v) ?? (isIntLabel(v) && Number(v) < labels.length && !given ? Number(v) : undefined);
      if (i === undefined) return `unknown label "${v}" (known: ${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', ...' : ''})`;
      return i;
    }
    return '"label" must be an integer or a label name';
  };
}
