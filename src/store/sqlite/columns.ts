import type { Reading } from '../../domain/reading.js';
import { chunkLine } from './chunk.js';

/**
 * A batch of readings as the writer thread takes it: typed arrays whose buffers are transferred to
 * the thread, not copied, and one string per run of readings of the same device. Each reading's
 * stored text (its chunk line, see chunk.ts) is formatted here, on the thread that parsed it, and
 * UTF-8 encoded into one buffer: the writer files those bytes as they are, in the journal and then
 * in chunks, without making a string of them. (Sending a string per reading cost the parsing thread
 * 14% of its time in postMessage on 1,000-reading batches, and the writer as much again.)
 */
export interface ReadingColumns {
  /** The device of each run of consecutive readings of one device. */
  readonly devices: string[];
  /** Index after the last reading of each run. */
  readonly runEnds: Uint32Array;
  readonly tsUs: Float64Array;
  /** NaN stands for "no count". */
  readonly counts: Float64Array;
  /** The readings' chunk lines, one after the other, UTF-8. */
  readonly text: Uint8Array;
  /** Byte offset after each reading's line in `text` (a line starts where the previous ended). */
  readonly ends: Uint32Array;
}

export function toColumns(readings: readonly Reading[]): ReadingColumns {
  const n = readings.length;
  const devices: string[] = [];
  const runEnds: number[] = [];
  const tsUs = new Float64Array(n);
  const counts = new Float64Array(n);
  const ends = new Uint32Array(n);
  const lines = new Array<string>(n);
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    if (i === 0 || r.deviceId !== readings[i - 1]!.deviceId) {
      if (i > 0) runEnds.push(i);
      devices.push(r.deviceId);
    }
    tsUs[i] = r.tsUs;
    counts[i] = r.count ?? NaN;
    const line = chunkLine(r.tsUs, r.count, r.tsText, r.payload);
    lines[i] = line;
    ends[i] = chars += line.length;
  }
  if (n > 0) runEnds.push(n);
  // One flat string (join), not one built by +=: measuring the UTF-8 length of a string of 1,000
  // concatenations cost more than all the formatting.
  const joined = lines.join('');
  const bytes = Buffer.byteLength(joined);
  // Not from Buffer's shared pool: the buffer is transferred to the writer thread whole.
  const text = Buffer.allocUnsafeSlow(bytes);
  text.write(joined, 0, 'utf8');
  if (bytes !== joined.length) {
    // Some text is not ASCII, so character offsets are not byte offsets: every line ends with the
    // only newline in it.
    for (let i = 0, end = 0; i < n; i++) ends[i] = end = text.indexOf(10, end) + 1;
  }
  return { devices, runEnds: Uint32Array.from(runEnds), tsUs, counts, text, ends };
}

/** The buffers of a batch that postMessage transfers instead of copying. */
export function transferList(cols: ReadingColumns): ArrayBuffer[] {
  return [cols.runEnds, cols.tsUs, cols.counts, cols.text, cols.ends].map((a) => a.buffer as ArrayBuffer);
}
