import type { Reading } from '../../domain/reading.js';

/**
 * A batch of readings laid out column by column. Numbers travel in typed arrays whose buffers are
 * transferred to the writer thread instead of copied; strings go through structured clone.
 */
export interface ReadingColumns {
  readonly deviceIds: string[];
  readonly tsUs: Float64Array;
  /** NaN stands for "no count". */
  readonly counts: Float64Array;
  readonly tsTexts: (string | null)[];
  readonly payloads: (string | null)[];
}

export function toColumns(readings: readonly Reading[]): ReadingColumns {
  const n = readings.length;
  const cols: ReadingColumns = {
    deviceIds: new Array<string>(n),
    tsUs: new Float64Array(n),
    counts: new Float64Array(n),
    tsTexts: new Array<string | null>(n),
    payloads: new Array<string | null>(n),
  };
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    cols.deviceIds[i] = r.deviceId;
    cols.tsUs[i] = r.tsUs;
    cols.counts[i] = r.count ?? NaN;
    cols.tsTexts[i] = r.tsText;
    cols.payloads[i] = r.payload;
  }
  return cols;
}
