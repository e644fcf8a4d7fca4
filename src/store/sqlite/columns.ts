import type { Reading } from '../../domain/reading.js';
import { canonicalUtcDigits } from './chunk.js';

/**
 * A batch of readings as the writer thread takes it: typed arrays whose buffers are transferred to
 * the thread, not copied, and one string per run of readings of the same device. Each reading's
 * stored text (its chunk line, see chunk.ts) is formatted here, on the thread that parsed it, and
 * UTF-8 encoded into one buffer: the writer files those bytes as they are, in the journal and then
 * in chunks, without making a string of them: a string per reading costs both threads dearly in
 * postMessage.
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
  // Room for every line: a timestamp and a count take at most 24 bytes each (17 and 11 as the safe
  // integers they are), three tabs and a newline 4; timestamp text is ASCII (validated), and a
  // payload at most 3 bytes per UTF-16 unit.
  let room = 0;
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    room += 52 + (r.tsText === null ? 0 : r.tsText.length) + (r.payload === null ? 0 : 3 * r.payload.length);
  }
  // Not from Buffer's shared pool: the buffer is transferred to the writer thread whole.
  let text = Buffer.allocUnsafeSlow(room);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    if (i === 0 || r.deviceId !== readings[i - 1]!.deviceId) {
      if (i > 0) runEnds.push(i);
      devices.push(r.deviceId);
    }
    tsUs[i] = r.tsUs;
    counts[i] = r.count ?? NaN;
    pos = writeLine(text, pos, r);
    ends[i] = pos;
  }
  if (n > 0) runEnds.push(n);
  // Payloads rarely need their worst case: when it left much unused, copy what was written rather
  // than hold it until compaction. Not through Buffer.from, whose small copies come from Buffer's
  // shared pool: postMessage cannot transfer the pool, and cloned its whole 8 KiB every commit.
  if (room - pos > SHRINK_SLACK_BYTES) {
    const exact = Buffer.allocUnsafeSlow(pos);
    text.copy(exact, 0, 0, pos);
    text = exact;
  } else {
    text = text.subarray(0, pos);
  }
  return { devices, runEnds: Uint32Array.from(runEnds), tsUs, counts, text, ends };
}

/**
 * Writes a reading's chunk line (the bytes of `chunkLine`) at `pos`; returns the position after it.
 * Byte by byte rather than through a string per line, which would be formatted, joined and encoded.
 */
function writeLine(out: Buffer, pos: number, r: Reading): number {
  pos = writeInteger(out, pos, r.tsUs);
  out[pos++] = TAB;
  if (r.count !== null) pos = writeInteger(out, pos, r.count);
  out[pos++] = TAB;
  const tsText = r.tsText;
  if (tsText !== null) {
    const digits = canonicalUtcDigits(tsText);
    if (digits >= 0) out[pos++] = ZERO + digits;
    else for (let k = 0; k < tsText.length; k++) out[pos++] = tsText.charCodeAt(k);
  }
  out[pos++] = TAB;
  if (r.payload !== null) pos += out.write(r.payload, pos, 'utf8');
  out[pos++] = NEWLINE;
  return pos;
}

/** Unused bytes of a batch's text buffer worth a copy to drop them. */
const SHRINK_SLACK_BYTES = 64 * 1024;
const TAB = 9;
const NEWLINE = 10;
const ZERO = 48;

/** Writes the decimal digits of a safe integer (as `String(n)` would) at `pos`; returns the position after them. */
export function writeInteger(out: Uint8Array, pos: number, n: number): number {
  if (!Number.isSafeInteger(n)) {
    // Not on any validated path; written as String writes it all the same.
    const digits = String(n);
    for (let k = 0; k < digits.length; k++) out[pos++] = digits.charCodeAt(k);
    return pos;
  }
  if (n < 0) {
    out[pos++] = 45; // '-'
    n = -n;
  }
  if (n < 1e8) return writeSmall(out, pos, n);
  // Two halves under 10^8, each within int32 arithmetic; the low one padded to 8 digits.
  const high = Math.floor(n / 1e8);
  let low = n - high * 1e8;
  pos = writeSmall(out, pos, high);
  for (let k = pos + 7; k >= pos; k--) {
    const q = (low / 10) | 0;
    out[k] = ZERO + low - q * 10;
    low = q;
  }
  return pos + 8;
}

/** Digits of 0 <= n < 10^8 (or any value under 2^31). */
function writeSmall(out: Uint8Array, pos: number, n: number): number {
  let digits = 1;
  for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
  for (let k = pos + digits - 1; k >= pos; k--) {
    const q = (n / 10) | 0;
    out[k] = ZERO + n - q * 10;
    n = q;
  }
  return pos + digits;
}

/** The buffers of a batch that postMessage transfers instead of copying. */
export function transferList(cols: ReadingColumns): ArrayBuffer[] {
  return [cols.runEnds, cols.tsUs, cols.counts, cols.text, cols.ends].map((a) => a.buffer as ArrayBuffer);
}
