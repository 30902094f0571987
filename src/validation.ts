// Configuration checking, one idiom for every config (the run config, the BERT, ViT and fusion configs, image
// preprocessing, study files): a zod schema, parsed with the error map below, so that each problem reads
// "path: expected X, received Y" with the fix, and an unknown key names the nearest known one. (Function arguments
// are checked with errors.ts's helpers.) Loads no LibTorch: the CLI checks a run config before LibTorch loads.
import { z } from 'zod';
import { MmtrainError, describe } from './errors.js';

type RawIssue = z.core.$ZodRawIssue;

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', object: 'a mapping', record: 'a mapping',
  array: 'a list', tuple: 'a list', null: 'null',
};

function bound(origin: string, op: '>=' | '>' | '<=' | '<', n: number | bigint): string {
  const words = { '>=': 'at least', '>': 'more than', '<=': 'at most', '<': 'fewer than' }[op];
  if (origin === 'array' || origin === 'set') return `a list of ${words} ${n} items`;
  if (origin === 'string') return `a string of ${words} ${n} characters`;
  return `a number ${op} ${n}`;
}

/** Lower case without `_` and `-`, so that `hiddenSize` and `hidden-size` meet `hidden_size`. */
function normal(s: string): string {
  return s.toLowerCase().replace(/[-_]/g, '');
}

/** Edits (insert, delete, substitute, swap two neighbours) from a to b. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate a misspelt word most likely meant: a few edits away, or one it abbreviates; undefined when none is close. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const w = normal(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const n = normal(c);
    const d = editDistance(w, n);
    const close = d <= Math.max(1, Math.floor(Math.max(w.length, n.length) / 4)) || (w.length >= 3 && n.startsWith(w));
    if (close && d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** "X" of an "expected X, received Y" message: one alternative of a union. */
function expectedPart(message: string): string {
  return message.replace(/^expected /, '').replace(/, received [\s\S]*$/, '');
}

/** zod's error map for every mmtrain config: what was expected, what was received, and for unknown keys the fix. */
export function issueMessage(iss: RawIssue): string | undefined {
  const received = `received ${describe(iss.input)}`;
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? 'required, but missing' : `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}, ${received}`;
    case 'too_small':
      return `expected ${bound(iss.origin, iss.inclusive ? '>=' : '>', iss.minimum)}, ${received}`;
    case 'too_big':
      return `expected ${bound(iss.origin, iss.inclusive ? '<=' : '<', iss.maximum)}, ${received}`;
    case 'not_multiple_of':
      return `expected a multiple of ${iss.divisor}, ${received}`;
    case 'invalid_value': {
      const values = iss.values.map((v) => JSON.stringify(v));
      const near = typeof iss.input === 'string' ? nearest(iss.input, iss.values.filter((v): v is string => typeof v === 'string')) : undefined;
      return `expected ${values.length === 1 ? values[0] : `one of ${values.join(', ')}`}, ${received}${near ? ` (did you mean "${near}"?)` : ''}`;
    }
    case 'invalid_union': {
      const alternatives = [...new Set(iss.errors.map((e) => expectedPart(e[0]?.message ?? 'something else')))];
      return `expected ${alternatives.join(' or ')}, ${received}`;
    }
    case 'unrecognized_keys': {
      const known = Object.keys((iss.inst as { _zod?: { def?: { shape?: object } } } | undefined)?._zod?.def?.shape ?? {});
      return iss.keys.map((k) => {
        const near = nearest(k, known);
        return `unknown key "${k}" — remove it or check the spelling${near ? ` (did you mean "${near}"?)` : known.length ? ` (known keys: ${known.join(', ')})` : ''}`;
      }).join('\n');
    }
    default:
      return undefined;
  }
}

/** A line per problem, each starting with its key path (an unknown-keys issue gives a line per key). */
export function issueLines(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((i) => i.message.split('\n').map((m) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${m}`));
}

export interface FormatOptions {
  /** what was checked: "configuration" unless told */
  what?: string;
  /** a line added when a key is unknown (where to find the known ones) */
  unknownKeyHint?: string;
}

/** zod's issues as one message: the source, then a line per problem with its key path. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], source: string, opts: FormatOptions = {}): string {
  const all = issueLines(issues);
  const lines = all.slice(0, 20).map((l) => `  ${l}`);
  if (all.length > 20) lines.push(`  ... and ${all.length - 20} more`);
  if (opts.unknownKeyHint && issues.some((i) => i.code === 'unrecognized_keys')) lines.push(`  (${opts.unknownKeyHint})`);
  return `${source}: invalid ${opts.what ?? 'configuration'}:\n${lines.join('\n')}`;
}

/** Parses with mmtrain's error map; the issues come back rather than thrown, for callers that gather several parses. */
export function checkConfig<S extends z.ZodType>(schema: S, value: unknown): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(value, { error: issueMessage });
}

/** Parses a config, or throws one MmtrainError naming the source and every problem. */
export function parseConfig<S extends z.ZodType>(schema: S, value: unknown, source: string, opts: FormatOptions = {}): z.output<S> {
  const r = checkConfig(schema, value);
  if (!r.success) throw new MmtrainError(formatIssues(r.error.issues, source, opts));
  return r.data;
}

type WithoutDefaults<T extends z.ZodRawShape> = { [K in keyof T]: T[K] extends z.ZodDefault<infer I> ? I : T[K] };

/** A shape's fields without their defaults: the schema of overrides, where an absent key keeps the base value. */
export function withoutDefaults<T extends z.ZodRawShape>(shape: T): WithoutDefaults<T> {
  return Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, s instanceof z.ZodDefault ? s.unwrap() : s])) as WithoutDefaults<T>;
}
