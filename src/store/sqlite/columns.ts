import type { Reading } from '../../domain/reading.js';
import { chunkLine } from './chunk.js';

/**
 * A batch of readings as the writer thread takes it. Numbers travel in typed arrays whose buffers
 * are transferred instead of copied; each reading's stored text (its chunk line, see chunk.ts) is
 * formatted here, on the thread that parsed it, so the writer thread only files it.
 */
export interface ReadingColumns {
  readonly deviceIds: string[];
  readonly tsUs: Float64Array;
  /** NaN stands for "no count". */
  readonly counts: Float64Array;
  readonly lines: string[];
}

export function toColumns(readings: readonly Reading[]): ReadingColumns {
  const n = readings.length;
  const cols: ReadingColumns = {
    deviceIds: new Array<string>(n),
    tsUs: new Float64Array(n),
    counts: new Float64Array(n),
    lines: new Array<string>(n),
  };
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    cols.deviceIds[i] = r.deviceId;
    cols.tsUs[i] = r.tsUs;
    cols.counts[i] = r.count ?? NaN;
    cols.lines[i] = chunkLine(r.tsUs, r.count, r.tsText, r.payload);
  }
  return cols;
}
