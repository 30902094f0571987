// Seeded randomness of the data pipeline, one definition for the manifest loader, augmentation and the streamed
// formats (no dependency: the stream thread loads it without sharp).

/** A small seeded generator (mulberry32): shuffles, augmentation decisions. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
