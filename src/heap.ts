// Returning the checkpoint's bytes to the heap at once. Writing a checkpoint copies every parameter and optimizer
// state into V8 ArrayBuffers, whose memory glibc malloc gets back only when V8 collects them; with few JS
// allocations per training step that can take a whole epoch, and meanwhile those blocks split the heap's free
// chunks so that each step's word-embedding gradient took fresh memory: the demo's peak RSS reached 0.9–1.3 GB in
// some runs instead of 0.4. One collection after each save (tens of ms, once an epoch) keeps it flat.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (opts?: { type: 'minor' | 'major'; execution: 'sync' }) => void;
let gc: GcFunction | null = null;

function v8Gc(): GcFunction {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as GcFunction;
  }
  return gc;
}

/** A full garbage collection (V8's own, enabled on first use). */
export function collectGarbage(): void {
  v8Gc()();
}

/**
 * A young-generation collection (a scavenge: a fraction of a millisecond with few live young objects). It frees the
 * memory of ArrayBuffers that died young, such as batch buffers received from the batch thread and already copied
 * into tensors, which would otherwise wait for V8's own schedule and fragment the C heap meanwhile.
 */
export function collectYoungGarbage(): void {
  v8Gc()({ type: 'minor', execution: 'sync' });
}
