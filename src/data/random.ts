// Seeded randomness of the data pipeline, one definition for the manifest loader and the streamed formats.
export { mulberry32 } from './image.js';

/** A 32-bit hash of integers (FNV-1a over their low and high words): seeds from (seed, epoch, ...). */
export function hashSeed(...xs: number[]): number {
  let h = 2166136261;
  for (const x of xs) {
    h = Math.imul(h ^ (x & 0xffffffff), 16777619);
    h = Math.imul(h ^ Math.floor(x / 4294967296), 16777619);
  }
  return h >>> 0;
}

/** Fisher-Yates with a seeded generator. */
export function shuffleInPlace<T>(a: T[], rnd: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}
