/** What a chunk keeps of its readings' counts, so aggregates of `count` need not decode it. */
export interface CountStats {
  /** Readings with a count. */
  readonly counted: number;
  readonly sum: number;
  /** Null when no reading has a count. */
  readonly min: number | null;
  readonly max: number | null;
}

/** The stats of `counts[start..end)`; NaN stands for a reading without a count. */
export function countStats(counts: ArrayLike<number>, start: number, end: number): CountStats {
  let counted = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = start; i < end; i++) {
    const c = counts[i]!;
    if (c !== c) continue; // NaN: no count
    counted++;
    sum += c;
    if (c < min) min = c;
    if (c > max) max = c;
  }
  return { counted, sum, min: counted === 0 ? null : min, max: counted === 0 ? null : max };
}
