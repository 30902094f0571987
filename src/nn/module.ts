// Module: named parameters, buffers and children with Hugging Face-style dotted paths, so a state dict maps
// one to one onto checkpoint keys (`encoder.layer.0.attention.self.query.weight`).
import { MmtrainError, invalid } from '../errors.js';
import { noGrad } from '../tensor/modes.js';
import { keep } from '../tensor/scope.js';
import type { Device } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';

export interface LoadReport {
  /** keys the module has that the state dict lacks */
  missing: string[];
  /** keys the state dict has that the module lacks */
  unexpected: string[];
  /** keys present in both with a different shape */
  mismatched: { key: string; expected: number[]; received: number[] }[];
}

export abstract class Module {
  training = true;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable tensor under `name`; it is kept alive outside scopes and requires grad. */
  protected registerParameter(name: string, t: Tensor | null, requiresGrad = true): Tensor {
    this.#checkName(name);
    if (t !== null) {
      keep(t);
      if (requiresGrad) t.requiresGrad = true;
    }
    this.#params.set(name, t);
    return t as Tensor;
  }

  /** Registers a non-trainable tensor (in the state dict when persistent). */
  protected registerBuffer(name: string, t: Tensor, persistent = true): Tensor {
    this.#checkName(name);
    keep(t);
    this.#buffers.set(name, { tensor: t, persistent });
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    if (!(m instanceof Module)) invalid(`module ${name}`, 'a Module', m);
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) invalid('name', 'a non-empty name without dots', name);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new MmtrainError(`${this.constructor.name}: "${name}" is registered twice`);
    }
  }

  children(): [string, Module][] {
    return [...this.#children.entries()];
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.#children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.#params) if (p) out.push([prefix ? `${prefix}.${n}` : n, p]);
    for (const [n, m] of this.#children) out.push(...m.namedParameters(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.#buffers) if (!persistentOnly || b.persistent) out.push([prefix ? `${prefix}.${n}` : n, b.tensor]);
    for (const [n, m] of this.#children) out.push(...m.namedBuffers(prefix ? `${prefix}.${n}` : n, persistentOnly));
    return out;
  }

  /** Total number of parameter elements (trainable only when asked). */
  numParameters(trainableOnly = false): number {
    return this.parameters().filter((p) => !trainableOnly || p.requiresGrad).reduce((a, p) => a + p.numel, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and persistent buffers by dotted name. The tensors are the module's own, not copies. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers('', true)]);
  }

  /**
   * Copies tensors into this module's parameters and buffers by name (with dtype conversion). Shapes must match.
   * strict (default) throws when keys are missing or unexpected, listing them; otherwise they are reported.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadReport {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const k of own.keys()) if (!src.has(k)) report.missing.push(k);
    for (const k of src.keys()) if (!own.has(k)) report.unexpected.push(k);
    for (const [k, t] of own) {
      const s = src.get(k);
      if (!s) continue;
      const a = t.shape;
      const b = s.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) report.mismatched.push({ key: k, expected: a, received: b });
    }
    const strict = opts.strict ?? true;
    if (report.mismatched.length || (strict && (report.missing.length || report.unexpected.length))) {
      throw new MmtrainError(`${this.constructor.name}.loadStateDict: ${formatReport(report)}`);
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const s = src.get(k);
        if (s) t.copy_(s);
      }
    });
    return report;
  }

  /** Clears gradients (set to none, as torch's zero_grad(set_to_none=True)). */
  /**
   * Moves every parameter and buffer to `device` in place (PyTorch's `module.to(device)`): each stays the same
   * tensor object, so optimizers built afterwards, and references held elsewhere, see the move.
   */
  to(device: Device): this {
    noGrad(() => {
      for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
        if (t.device === device) continue;
        const moved = t.to(device);
        t.setData_(moved);
        moved.dispose();
      }
    });
    return this;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Sets requiresGrad on every parameter (freeze with false). */
  requiresGrad_(v: boolean): this {
    for (const p of this.parameters()) p.requiresGrad = v;
    return this;
  }

  /** Frees every parameter and buffer. The module cannot be used afterwards. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
  }
}

export function formatReport(r: LoadReport, max = 20): string {
  const parts: string[] = [];
  const list = (xs: string[]) => xs.slice(0, max).join(', ') + (xs.length > max ? ` and ${xs.length - max} more` : '');
  if (r.missing.length) parts.push(`missing keys (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length) parts.push(`unexpected keys (${r.unexpected.length}): ${list(r.unexpected)}`);
  if (r.mismatched.length) {
    parts.push(`shape mismatches (${r.mismatched.length}): ` + list(r.mismatched.map((m) => `${m.key} expected [${m.expected.join(', ')}] but received [${m.received.join(', ')}]`)));
  }
  return parts.join('; ') || 'all keys matched';
}
