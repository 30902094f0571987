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

let droppedYoungBytes = 0;

/**
 * Counts bytes of ArrayBuffers that die young (a checkpoint's per-tensor copies once written) and runs a
 * young-generation collection (a scavenge: a fraction of a millisecond with few live young objects) after every
 * 32 MiB. With few JS allocations per step, V8's own schedule
 * leaves such buffers for many steps, and meanwhile they split the C heap so that later tensors take fresh memory.
 */
export function dropYoungBuffer(bytes: number): void {
  droppedYoungBytes += bytes;
  if (droppedYoungBytes >= 32 << 20) {
    droppedYoungBytes = 0;
    v8Gc()({ type: 'minor', execution: 'sync' });
  }
}
