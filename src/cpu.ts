// What the CPU offers, read from /proc/cpuinfo. A leaf module: the CLI reads it before LibTorch is loaded.
import { readFileSync } from 'node:fs';

/** The CPU's feature flags from /proc/cpuinfo (empty where there is none). */
export function cpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
    return (line.split(':')[1] ?? '').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/** The flags by which the CPU computes bf16 natively (AVX-512 BF16, AMX), the only CPUs where bf16 autocast pays. */
export function nativeBf16Flags(flags: string[] = cpuFlags()): string[] {
  return flags.filter((f) => f === 'avx512_bf16' || f === 'amx_bf16');
}
