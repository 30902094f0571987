// OpenMP thread waiting for the run at hand, set before LibTorch loads (libgomp reads it once, at load): a command
// that trains calls tuneThreadWaiting with its run's precision (`train` as its config loader reads it, `demo` from
// its --precision) before it loads LibTorch (commands.ts).
// fp32 matmuls run in OpenBLAS's own pthreads: OpenMP workers must not spin beside them (mmtrain sets
// OMP_WAIT_POLICY=PASSIVE). Under bf16 autocast the matmuls run in oneDNN's OpenMP kernels, which lose ~30% when
// their workers sleep between parallel regions: measured on 2 cores, the tiny fusion step under bf16 went from 87
// to 128 samples/s with GOMP_SPINCOUNT=10000 (fp32 would lose 4-13% with it, so only bf16 runs get it).
// A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
import { nativeBf16Flags } from '../cpu.js';

/** bf16 where the CPU computes it natively (AVX-512 BF16 or AMX), the only CPUs where bf16 autocast pays; else fp32. */
export function preferredPrecision(): 'fp32' | 'bf16' {
  return nativeBf16Flags().length ? 'bf16' : 'fp32';
}

/** Sets the OpenMP waiting a run of this precision gets; call it before LibTorch loads. */
export function tuneThreadWaiting(precision: string, env: NodeJS.ProcessEnv = process.env): void {
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return;
  if (precision === 'bf16') env.GOMP_SPINCOUNT = '10000';
}
