// Seeded random numbers (mulberry32) for tests that draw their cases from a seed they print, so a
// failure reruns the same way.
export function seededRandom(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    /** In [0, 1). */
    next,
    /** An integer in [lo, hi]. */
    int,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    /** Shuffles `items` in place and returns it. */
    shuffle: <T>(items: T[]): T[] => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [items[i], items[j]] = [items[j]!, items[i]!];
      }
      return items;
    },
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255))),
  };
}

export type SeededRandom = ReturnType<typeof seededRandom>;
