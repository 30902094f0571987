// Field schemas the model configs share (Hugging Face's names and ranges), and their cross-field checks.
import { z } from 'zod';
import { describe } from '../errors.js';

export const positiveInt = z.number().int().positive();
/** a dropout probability: [0, 1) */
export const dropoutProb = z.number().min(0).lt(1);
/** the MLP activations mmtrain implements, by Hugging Face's ACT2FN names */
export const HIDDEN_ACTS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;

/**
 * Adds an issue at `field` when `c[field]` is not a multiple of `c[divisor]` (both checked as positive integers
 * first: refinements run even when a field already failed).
 */
export function requireMultiple(ctx: z.RefinementCtx, c: Record<string, unknown>, field: string, divisor: string): void {
  const a = c[field];
  const b = c[divisor];
  if (!Number.isInteger(a) || !Number.isInteger(b) || (b as number) < 1 || (a as number) % (b as number) === 0) return;
  ctx.addIssue({ code: 'custom', path: [field], input: a, message: `expected a multiple of ${divisor} (${b}), received ${describe(a)}: change ${field} or ${divisor}` });
}

/** config.json's model_type: absent, or this model's (another model's checkpoint is refused, saying whose it is). */
export function modelType<T extends string>(type: T, model: string) {
  return z.literal(type, { error: (iss) => `expected "${type}", received ${describe(iss.input)}: not a ${model} checkpoint; load it with the model class of ${describe(iss.input)}` })
    .default(type);
}
