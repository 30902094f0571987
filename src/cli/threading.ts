// OpenMP thread waiting for the run at hand, decided before LibTorch loads (libgomp reads it once, at load).
// fp32 matmuls run in OpenBLAS's own pthreads: OpenMP workers must not spin beside them (mmtrain sets
// OMP_WAIT_POLICY=PASSIVE). Under bf16 autocast the matmuls run in oneDNN's OpenMP kernels, which lose ~30% when
// their workers sleep between parallel regions: measured on 2 cores, the tiny fusion step under bf16 went from 87
// to 128 samples/s with GOMP_SPINCOUNT=10000 (fp32 would lose 4-13% with it, so only bf16 runs get it).
// A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { nativeBf16Flags } from '../cpu.js';

/** The precision a `train` command line will use, or null when it cannot tell (the real parse reports errors). */
export function trainPrecision(argv: string[]): string | null {
  const i = argv.indexOf('train');
  if (i < 0) return null;
  const args = argv.slice(i + 1);
  const value = (flag: string) => {
    const j = args.indexOf(flag);
    return j >= 0 ? args[j + 1] : undefined;
  };
  for (let j = 0; j < args.length; j++) {
    const m = args[j] === '--set' ? /^train\.precision=(\S+)$/.exec(args[j + 1] ?? '') : null;
    if (m) return m[1]!;
  }
  let file = value('--config');
  const resume = value('--resume');
  if ((!file || !existsSync(file)) && resume) file = join(resume, 'config.json');
  if (!file || !existsSync(file)) return null;
  try {
    const raw = YAML.parse(readFileSync(file, 'utf8')) as { train?: { precision?: unknown } } | null;
    return typeof raw?.train?.precision === 'string' ? raw.train.precision : 'fp32';
  } catch {
    return null;
  }
}

/** bf16 where the CPU computes it natively (AVX-512 BF16 or AMX), the only CPUs where bf16 autocast pays; else fp32. */
export function preferredPrecision(): 'fp32' | 'bf16' {
  return nativeBf16Flags().length ? 'bf16' : 'fp32';
}

/** The precision the `demo` command will use: its --precision, else the preferred one. */
export function demoPrecision(argv: string[]): string | null {
  const i = argv.indexOf('demo');
  if (i < 0) return null;
  const j = argv.indexOf('--precision', i);
  return j >= 0 ? argv[j + 1] ?? null : preferredPrecision();
}

export function tuneThreadWaiting(argv: string[], env: NodeJS.ProcessEnv = process.env): void {
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return;
  if ((trainPrecision(argv) ?? demoPrecision(argv)) === 'bf16') env.GOMP_SPINCOUNT = '10000';
}
