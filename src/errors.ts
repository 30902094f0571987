// One error helper for argument validation (parameter, expected, received), used everywhere in TypeScript.
// Native code trusts its arguments; everything a user passes is checked here first.

export class MmtrainError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MmtrainError';
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  if (typeof value === 'function') return 'function';
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? name : 'object';
}

/** Throws "Expected <expected> for <parameter> but received <received>". */
export function invalid(parameter: string, expected: string, received: unknown): never {
  throw new MmtrainError(`Expected ${expected} for ${parameter} but received ${describe(received)}`);
}

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

export function checkInt(parameter: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (!isInt(v) || v < min || v > max) {
    const range = min === -Infinity ? (max === Infinity ? 'an integer' : `an integer <= ${max}`)
      : max === Infinity ? `an integer >= ${min}` : `an integer between ${min} and ${max}`;
    invalid(parameter, range, v);
  }
  return v;
}

export function checkNumber(parameter: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max) {
    invalid(parameter, min === -Infinity && max === Infinity ? 'a number' : `a number between ${min} and ${max}`, v);
  }
  return v;
}

export function checkShape(parameter: string, v: unknown): number[] {
  if (!Array.isArray(v) || !v.every((d) => isInt(d) && d >= 0)) invalid(parameter, 'an array of non-negative integers', v);
  return v as number[];
}
