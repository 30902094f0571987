// Deterministic release of native tensors. Scopes (like tfjs `tidy`) are the main mechanism: every tensor
// created inside a scope is freed when it closes, unless it is returned or kept. `dispose()` frees one tensor
// at once. A FinalizationRegistry is only a safety net: its callbacks run late, and never inside a synchronous
// loop, so a loop that relies on the GC grows without bound.
import { MmtrainError } from '../errors.js';
import { native, type Handle } from './native.js';

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

interface Tracked extends Disposable {
  /** marks the tensor disposed and hands its native handle over for a batched free */
  releaseHandle(): Handle;
  /** true once keep()-ed: no scope frees it */
  kept: boolean;
  /** true while the finalizer holds a record for it (only tensors outside every scope) */
  registered: boolean;
  readonly handle: Handle;
}

const scopes: Tracked[][] = [];

const finalizer = new FinalizationRegistry<Handle>((h) => {
  // Generation-checked in native: a handle already freed (and its slot reused) is left alone.
  native.free(h);
});

/**
 * A tensor made inside a scope is the scope's to free; only tensors that live outside every scope (made there,
 * returned from the outermost scope, or kept) get a finalizer record. Hot loops run in scopes, so they pay no
 * finalizer cost (measured: 0.3 µs per tensor).
 */
export function trackNew(t: Tracked): void {
  const top = scopes[scopes.length - 1];
  if (top) top.push(t);
  else register(t);
}

function register(t: Tracked): void {
  if (!t.registered && !t.isDisposed) {
    finalizer.register(t, t.handle, t);
    t.registered = true;
    // Only now is the tensor's memory V8's concern: it tells V8's heuristics when a collection would free native
    // memory. Scoped tensors are freed by their scope and are not reported.
    native.reportExternal(t.handle);
  }
}

/**
 * Called by dispose(): drops the finalizer's record at once. Records of live objects are only cleared when the
 * event loop runs, so without this a synchronous loop would grow the JS heap by one record per tensor.
 */
export function untrack(t: Tracked): void {
  if (t.registered) {
    finalizer.unregister(t);
    t.registered = false;
  }
}

/** Keeps a tensor (or every tensor in a container) alive past all enclosing scopes. */
export function keep<T>(value: T): T {
  visitTensors(value, (t) => {
    t.kept = true;
    register(t);
  });
  return value;
}

function visitTensors(value: unknown, fn: (t: Tracked) => void, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTracked(value)) {
    fn(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) visitTensors(v, fn, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) visitTensors(v, fn, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) visitTensors(v, fn, seen);
  }
}

let isTracked: (v: object) => v is Tracked = (v): v is Tracked => false;
export function setTrackedPredicate(p: (v: object) => v is Tracked): void {
  isTracked = p;
}

/**
 * Runs fn in a scope: tensors created inside are disposed when it returns, except those in its result (a
 * tensor, or arrays / plain objects / Maps of them), which move to the enclosing scope, and those kept.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    disposeScope(scope, new Set());
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    disposeScope(scope, new Set());
    throw new MmtrainError('tidy() takes a synchronous function: grad mode and scopes cannot span an await. Use tidy inside the async code instead.');
  }
  const returned = new Set<Tracked>();
  visitTensors(result, (t) => returned.add(t));
  disposeScope(scope, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of returned) {
    if (t.kept || t.isDisposed) continue;
    if (parent) parent.push(t);
    else register(t);
  }
  return result;
}

function disposeScope(scope: Tracked[], spare: Set<Tracked>): void {
  // One native call frees the whole scope.
  const handles: Handle[] = [];
  for (const t of scope) if (!t.kept && !spare.has(t) && !t.isDisposed) handles.push(t.releaseHandle());
  if (handles.length) native.freeMany(handles);
}

/** Number of open scopes (for tests and diagnostics). */
export function scopeDepth(): number {
  return scopes.length;
}

/** Live native tensors and bytes held by this process's tensors (views count once, with their base). */
export function memory(): { liveTensors: number; liveBytes: number } {
  const s = native.memoryStats();
  return { liveTensors: s.liveTensors, liveBytes: s.liveBytes };
}

/**
 * Returns the C heap's free pages to the kernel. mmtrain keeps up to 256 MiB of freed heap between training steps
 * (native/src/addon.cc); after a training loop that memory only inflates RSS for what follows. Returns whether
 * any pages went back (always false where the C library is not glibc).
 */
export function releaseFreeMemory(): boolean {
  native.cudaEmptyCache(); // the CUDA caching allocator's unused blocks too (nothing in a CPU build)
  return native.releaseFreeMemory();
}
