/**
 * The text form readings take inside SQLite (chunk.ts reads every form): one line per reading, `ts<TAB>count<TAB>tsText<TAB>payload`,
 * an empty field for null. A chunk holds one device's readings in timestamp order; a journal entry
 * holds one commit's readings in the same form, their device keys kept beside them. A device's
 * newest chunk stays text while readings are appended to it; older chunks are sealed
 * (chunk-sealed.ts).
 *
 * Tabs and newlines cannot occur inside the fields: timestamps are validated, and payloads are
 * JSON.stringify output, which escapes control characters. So a line splits on the first three tabs.
 *
 * A timestamp text in the canonical UTC form of its instant (`2024-01-01T00:00:00Z`, `.000Z` or
 * `.000000Z`: what toISOString and most clients send) is kept as one digit, the number of fraction
 * digits, and written out again when read: half the bytes of a typical line, on disk twice (journal
 * and chunk). A valid timestamp text is at least 20 characters, so a one-character field is never one.
 */
import { formatUtcDigits } from '../../domain/timestamp.js';

/** One reading of a chunk: what a query returns, without the device. */
export interface ChunkReading {
  readonly tsUs: number;
  readonly count: number | null;
  readonly tsText: string | null;
  readonly payload: string | null;
}

/** A chunk line for one reading (newline included). */
export function chunkLine(tsUs: number, count: number | null, tsText: string | null, payload: string | null): string {
  const digits = tsText === null ? -1 : canonicalUtcDigits(tsText);
  const tsField = digits < 0 ? (tsText ?? '') : String(digits);
  return `${integerText(tsUs)}\t${count ?? ''}\t${tsField}\t${payload ?? ''}\n`;
}

/**
 * For a validated timestamp text in canonical UTC form (`YYYY-MM-DDTHH:MM:SS`, then nothing, 3 or 6
 * fraction digits, then `Z`), the number of fraction digits; otherwise -1. Validation already
 * fixed every other character, so the length and four of them decide.
 */
export function canonicalUtcDigits(tsText: string): number {
  const n = tsText.length;
  if (tsText.charCodeAt(n - 1) !== 90 || tsText.charCodeAt(10) !== 84) return -1; // 'Z', 'T'
  if (n === 20) return 0;
  if (tsText.charCodeAt(19) !== 46) return -1; // '.'
  return n === 24 ? 3 : n === 27 ? 6 : -1;
}

/**
 * `String(n)` for an integer, faster for the 16-digit microsecond timestamps of the hot path: V8
 * formats a number beyond the small-integer range through its slower double-to-string routine,
 * while two halves under 10^8 each take the small-integer path.
 */
export function integerText(n: number): string {
  if (n < 1e8 || !Number.isSafeInteger(n)) return String(n);
  const high = Math.floor(n / 1e8);
  // + 1e8 then dropping the leading 1 pads the low half to 8 digits.
  return `${high}${String(n - high * 1e8 + 1e8).slice(1)}`;
}

/**
 * Parses the fields of the line that starts at `start`; returns the index after its newline.
 * Throws on a line without its three tabs (only a bug could write one) rather than read past it.
 */
function parseLine(data: string, start: number, visit: (r: ChunkReading) => void, timestampTexts = true): number {
  let end = data.indexOf('\n', start);
  if (end < 0) end = data.length;
  const a = data.indexOf('\t', start);
  const b = data.indexOf('\t', a + 1);
  const c = data.indexOf('\t', b + 1);
  if (a < 0 || b < 0 || c < 0 || c >= end) throw new Error(`corrupt chunk text: no reading at offset ${start}`);
  const tsUs = Number(data.slice(start, a));
  visit({
    tsUs,
    count: b === a + 1 ? null : Number(data.slice(a + 1, b)),
    tsText: c === b + 1 ? null : c === b + 2 ? (timestampTexts ? formatUtcDigits(tsUs, data.charCodeAt(b + 1) - 48) : null) : data.slice(b + 1, c),
    payload: end === c + 1 ? null : data.slice(c + 1, end),
  });
  return end + 1;
}

/** Every reading of a text chunk, in its (timestamp) order. */
export function decodeText(data: string, timestampTexts = true): ChunkReading[] {
  const out: ChunkReading[] = [];
  for (let pos = 0; pos < data.length; ) pos = parseLine(data, pos, (r) => out.push(r), timestampTexts);
  return out;
}

/**
 * The readings of a chunk at or after `fromUs`, newest first, read from the end of the chunk: a
 * newest-first listing needs only the tail of most chunks.
 */
export function decodeTextTail(data: string, fromUs: number): ChunkReading[] {
  const out: ChunkReading[] = [];
  let end = data.length; // the chunk ends with a newline
  while (end > 0) {
    const start = data.lastIndexOf('\n', end - 2) + 1;
    if (Number(data.slice(start, data.indexOf('\t', start))) < fromUs) break;
    parseLine(data, start, (r) => out.push(r));
    end = start;
  }
  return out;
}

/** Whether a text chunk holds a reading at `tsUs`: a substring search, nothing decoded. */
export function textHas(data: string, tsUs: number): boolean {
  const head = `${integerText(tsUs)}\t`;
  return data.startsWith(head) || data.includes(`\n${head}`);
}

/** The timestamps of a chunk's readings, in its order, nothing else decoded. */
export function textInstants(data: string): number[] {
  const out: number[] = [];
  for (let start = 0; start < data.length; ) {
    out.push(Number(data.slice(start, data.indexOf('\t', start))));
    const end = data.indexOf('\n', start);
    start = end < 0 ? data.length : end + 1;
  }
  return out;
}

