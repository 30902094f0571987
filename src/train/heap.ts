// Returning the checkpoint's bytes to the heap at once. Writing a checkpoint copies every parameter and optimizer
// state into V8 ArrayBuffers, whose memory glibc malloc gets back only when V8 collects them; with few JS
// allocations per training step that can take a whole epoch, and meanwhile those blocks split the heap's free
// chunks so that each step's word-embedding gradient took fresh memory: the demo's peak RSS reached 0.9–1.3 GB in
// some runs instead of 0.4. One collection after each save (tens of ms, once an epoch) keeps it flat.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null = null;

/** A full garbage collection (V8's own, enabled on first use). */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
