/**
 * The sealed form of a chunk: a BLOB, written once a chunk stops taking appends (chunk.ts has the
 * text form, which a device's newest chunk keeps while readings are appended to it).
 *
 * Layout: a format byte (1), a codec byte (codec.ts), the reading count as a varint, then the
 * columns below, compressed together by the codec:
 *
 * - timestamps: a sign byte and the first instant's magnitude, then each delta to the previous one
 *   (always > 0: a chunk holds one device's distinct instants in order). A steady series repeats
 *   one delta, which the codec all but removes.
 * - counts: per reading a varint, 0 for none, else 1 + the zigzag of the change from the previous
 *   count present.
 * - timestamp texts: per reading a byte, 0 none, 1-3 the canonical UTC text with 0, 3 or 6 fraction
 *   digits (written out again from the instant, as the text form does), 4 kept as sent.
 * - the UTF-16 length + 1 of each kept timestamp text and of each payload (0: none), then all those
 *   strings one after the other, UTF-8: decoded as one string and sliced, not one call per reading.
 *
 * Encoding refuses (returns undefined) what it could not give back exactly (an instant or a delta
 * beyond 2^53, a count that is not a safe integer); such a chunk stays text.
 */
import { formatUtcDigits } from '../../domain/timestamp.js';
import { compress, decompress, DEFAULT_CODEC, type Codec } from './codec.js';
import { chunkLine, type ChunkReading } from './chunk-text.js';

const FORMAT = 1;
const TS_RAW = 4;
const DIGITS_OF_KIND = [-1, 0, 3, 6];
/** Counts whose zigzag stays a safe integer. */
const COUNT_LIMIT = 2 ** 50;

/** Whether a chunk's data (as SQLite returns it) is in the sealed form. */
export function isSealed(data: string | Uint8Array): data is Uint8Array {
  return typeof data !== 'string';
}

function KIND_OF_DIGITS(digits: number): number {
  if (digits === 0) return 1;
  if (digits === 3) return 2;
  if (digits === 6) return 3;
  throw new Error(`corrupt chunk text: timestamp digits ${digits}`);
}

/** The sealed form of a chunk's readings (in timestamp order), or undefined if they cannot be held exactly. */
export function encodeSealed(readings: readonly ChunkReading[], codec: Codec = DEFAULT_CODEC): Buffer | undefined {
  return sealText(readings.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join(''), codec);
}

/** The sealed form of a text chunk (chunk-text.ts) held as a string. Undefined as sealLines. */
export function sealText(text: string, codec: Codec = DEFAULT_CODEC): Buffer | undefined {
  return sealLines(Buffer.from(text, 'utf8'), codec);
}

const TAB = 9;
const NEWLINE = 10;
const MINUS = 45;
/** The shortest line: `0\t\t\t\n`. */
const MIN_LINE_BYTES = 5;

/**
 * Per-reading columns of the chunk being sealed, reused by every seal: the writer thread seals one
 * chunk at a time, and a 16 KiB chunk would otherwise allocate eight arrays of a few thousand entries.
 */
const scratch = {
  capacity: 0,
  ts: new Float64Array(0),
  /** NaN: no count. */
  counts: new Float64Array(0),
  kinds: new Uint8Array(0),
  /** Byte ranges in the lines of each kept timestamp text and each payload (payloadStart -1: none). */
  rawStart: new Int32Array(0),
  rawEnd: new Int32Array(0),
  payloadStart: new Int32Array(0),
  payloadEnd: new Int32Array(0),
  /** UTF-16 lengths of the same (the decoder slices one decoded string). */
  rawUnits: new Int32Array(0),
  payloadUnits: new Int32Array(0),
};

function reserve(readings: number): typeof scratch {
  if (readings <= scratch.capacity) return scratch;
  const n = Math.max(readings, 2 * scratch.capacity);
  return Object.assign(scratch, {
    capacity: n,
    ts: new Float64Array(n),
    counts: new Float64Array(n),
    kinds: new Uint8Array(n),
    rawStart: new Int32Array(n),
    rawEnd: new Int32Array(n),
    payloadStart: new Int32Array(n),
    payloadEnd: new Int32Array(n),
    rawUnits: new Int32Array(n),
    payloadUnits: new Int32Array(n),
  });
}

/** The UTF-16 length of valid UTF-8 `bytes[start, end)`: code points, plus one more for each beyond U+FFFF. */
function utf16Units(bytes: Uint8Array, start: number, end: number): number {
  let units = end - start;
  for (let p = start; p < end; p++) {
    const b = bytes[p]!;
    if (b < 0x80) continue;
    if ((b & 0xc0) === 0x80) units--; // a continuation byte
    else if (b >= 0xf0) units++; // a four-byte sequence: a surrogate pair
  }
  return units;
}

/**
 * The sealed form of a text chunk given as its UTF-8 lines (what compaction builds, or a text chunk
 * read back as bytes): parsed byte by byte into columns, its timestamp and payload texts copied as
 * bytes, never decoded into strings and encoded again. Undefined for what the sealed form cannot hold
 * exactly (an instant or count that is not a safe integer, instants not strictly increasing); throws
 * on lines that are not the text form.
 */
export function sealLines(lines: Uint8Array, codec: Codec = DEFAULT_CODEC): Buffer | undefined {
  const length = lines.length;
  const c = reserve(Math.ceil(length / MIN_LINE_BYTES));
  const { ts, counts, kinds, rawStart, rawEnd, rawUnits, payloadStart, payloadEnd, payloadUnits } = c;
  let n = 0;
  let b = 0;
  for (let p = 0; p < length; n++) {
    const lineStart = p;
    // The instant: an integer, perhaps negative.
    const negative = lines[p] === MINUS;
    if (negative) p++;
    let value = 0;
    const digitsFrom = p;
    while (p < length && (b = lines[p]!) !== TAB) {
      if (b < 48 || b > 57) return b === NEWLINE ? corruptLine(lineStart) : undefined; // a fraction or an exponent: not an integer
      value = value * 10 + (b - 48);
      p++;
    }
    if (p === length) corruptLine(lineStart);
    if (p === digitsFrom || p - digitsFrom > 16 || value > Number.MAX_SAFE_INTEGER) return undefined;
    ts[n] = negative ? -value : value;
    // The count: empty for none.
    const countNegative = lines[++p] === MINUS;
    if (countNegative) p++;
    const countFrom = p;
    value = 0;
    while (p < length && (b = lines[p]!) !== TAB) {
      if (b < 48 || b > 57) return b === NEWLINE ? corruptLine(lineStart) : undefined;
      value = value * 10 + (b - 48);
      p++;
    }
    if (p === length) corruptLine(lineStart);
    if (p === countFrom) {
      if (countNegative) return undefined;
      counts[n] = Number.NaN;
    } else if (p - countFrom > 15 || value >= COUNT_LIMIT) return undefined;
    else counts[n] = countNegative ? -value : value;
    // The timestamp text: none, a fraction-digit count (canonical UTC), or kept as sent.
    const textFrom = ++p;
    while (p < length && (b = lines[p]!) !== TAB) {
      if (b === NEWLINE) corruptLine(lineStart);
      p++;
    }
    if (p === length) corruptLine(lineStart);
    if (p === textFrom) kinds[n] = 0;
    else if (p === textFrom + 1) kinds[n] = KIND_OF_DIGITS(lines[textFrom]! - 48);
    else {
      kinds[n] = TS_RAW;
      rawStart[n] = textFrom;
      rawEnd[n] = p;
      rawUnits[n] = utf16Units(lines, textFrom, p);
    }
    // The payload: the rest of the line, empty for none.
    const payloadFrom = ++p;
    let wide = 0; // UTF-16 units minus bytes
    while (p < length && (b = lines[p]!) !== NEWLINE) {
      if (b >= 0x80) wide += (b & 0xc0) === 0x80 ? -1 : b >= 0xf0 ? 1 : 0; // a continuation byte; a surrogate pair's lead
      p++;
    }
    if (p === length) throw new Error('corrupt chunk text: no newline at its end');
    payloadStart[n] = p === payloadFrom ? -1 : payloadFrom;
    payloadEnd[n] = p;
    payloadUnits[n] = p - payloadFrom + wide;
    p++;
  }
  return n === 0 ? undefined : encodeColumns(lines, c, n, codec);
}

function corruptLine(offset: number): never {
  throw new Error(`corrupt chunk text: no reading at offset ${offset}`);
}

/** Copies `from[start, end)` to `to` at `pos`; returns the position after it. */
function copyBytes(from: Uint8Array, start: number, end: number, to: Buffer, pos: number): number {
  // A short range costs less copied byte by byte than through a subarray and set.
  if (end - start < 64) {
    for (let b = start; b < end; b++) to[pos++] = from[b]!;
    return pos;
  }
  to.set(from.subarray(start, end), pos);
  return pos + end - start;
}

function encodeColumns(lines: Uint8Array, c: typeof scratch, n: number, codec: Codec): Buffer | undefined {
  const body = Buffer.allocUnsafe(16 + 24 * n + lines.length);
  let pos = 0;
  const first = c.ts[0]!;
  body[pos++] = first < 0 ? 1 : 0;
  pos = writeVarint(body, pos, Math.abs(first));
  for (let i = 1; i < n; i++) {
    const delta = c.ts[i]! - c.ts[i - 1]!;
    if (!Number.isSafeInteger(delta) || delta <= 0) return undefined;
    pos = writeVarint(body, pos, delta);
  }
  let previous = 0;
  for (let i = 0; i < n; i++) {
    const count = c.counts[i]!;
    if (count !== count) {
      body[pos++] = 0; // NaN: none
      continue;
    }
    const change = count - previous;
    pos = writeVarint(body, pos, (change >= 0 ? 2 * change : -2 * change - 1) + 1);
    previous = count;
  }
  body.set(c.kinds.subarray(0, n), pos);
  pos += n;
  for (let i = 0; i < n; i++) if (c.kinds[i] === TS_RAW) pos = writeVarint(body, pos, c.rawUnits[i]! + 1);
  for (let i = 0; i < n; i++) pos = writeVarint(body, pos, c.payloadStart[i]! < 0 ? 0 : c.payloadUnits[i]! + 1);
  for (let i = 0; i < n; i++) if (c.kinds[i] === TS_RAW) pos = copyBytes(lines, c.rawStart[i]!, c.rawEnd[i]!, body, pos);
  for (let i = 0; i < n; i++) if (c.payloadStart[i]! >= 0) pos = copyBytes(lines, c.payloadStart[i]!, c.payloadEnd[i]!, body, pos);

  const packed = compress(codec, body.subarray(0, pos));
  const header = Buffer.allocUnsafe(12);
  header[0] = FORMAT;
  header[1] = codec;
  const headerBytes = writeVarint(header, 2, n);
  return Buffer.concat([header.subarray(0, headerBytes), packed]);
}

/** The columns of a sealed chunk, unpacked; strings are sliced out on demand. */
interface Unpacked {
  readonly n: number;
  readonly ts: Float64Array;
  readonly body: Buffer;
  /** Position of the counts column in `body`. */
  readonly countsAt: number;
}

function unpack(blob: Uint8Array): Unpacked {
  if (blob[0] !== FORMAT) throw new Error(`corrupt chunk: unknown sealed format ${blob[0]}`);
  const header = { pos: 2 };
  const n = readVarint(blob, header);
  const body = decompress(blob[1] as Codec, blob.subarray(header.pos));
  const cursor = { pos: 1 };
  const ts = new Float64Array(n);
  let t = readVarint(body, cursor);
  ts[0] = body[0] === 1 ? -t : t;
  for (let i = 1; i < n; i++) ts[i] = t = ts[i - 1]! + readVarint(body, cursor);
  if (cursor.pos > body.length) throw new Error('corrupt chunk: sealed columns cut short');
  return { n, ts, body, countsAt: cursor.pos };
}

/** Readings `from` to the end of a sealed chunk, oldest first. */
function readingsOf(u: Unpacked, from: number, timestampTexts = true): ChunkReading[] {
  const { n, ts, body } = u;
  const cursor = { pos: u.countsAt };
  const counts = new Array<number | null>(n);
  let previous = 0;
  for (let i = 0; i < n; i++) {
    const v = readVarint(body, cursor);
    if (v === 0) counts[i] = null;
    else {
      const z = v - 1;
      previous += z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      counts[i] = previous;
    }
  }
  const kindsAt = cursor.pos;
  cursor.pos += n;
  let rawCount = 0;
  for (let i = kindsAt; i < kindsAt + n; i++) if (body[i] === TS_RAW) rawCount++;
  const rawLengths = new Array<number>(rawCount);
  for (let k = 0; k < rawCount; k++) rawLengths[k] = readVarint(body, cursor) - 1;
  const payloadLengths = new Int32Array(n);
  for (let i = 0; i < n; i++) payloadLengths[i] = readVarint(body, cursor) - 1;
  if (cursor.pos > body.length) throw new Error('corrupt chunk: sealed columns cut short');
  const strings = body.toString('utf8', cursor.pos);
  let at = 0;
  const raw = rawLengths.map((length) => strings.slice(at, (at += length)));
  const out: ChunkReading[] = [];
  for (let i = 0, k = 0; i < n; i++) {
    const kind = body[kindsAt + i]!;
    const length = payloadLengths[i]!;
    const tsText = kind === 0 ? null : kind === TS_RAW ? raw[k++]! : formatIfWanted(timestampTexts && i >= from, ts[i]!, kind);
    const payload = length < 0 ? null : strings.slice(at, (at += length));
    if (i >= from) out.push({ tsUs: ts[i]!, count: counts[i]!, tsText, payload });
  }
  if (at !== strings.length) throw new Error('corrupt chunk: sealed strings do not add up');
  return out;
}

function formatIfWanted(wanted: boolean, tsUs: number, kind: number): string | null {
  if (kind > 3) throw new Error(`corrupt chunk: timestamp kind ${kind}`);
  return wanted ? formatUtcDigits(tsUs, DIGITS_OF_KIND[kind]!) : null;
}

/** Every reading of a sealed chunk, in timestamp order. */
export function decodeSealed(blob: Uint8Array, timestampTexts = true): ChunkReading[] {
  return readingsOf(unpack(blob), 0, timestampTexts);
}

/** The readings of a sealed chunk at or after `fromUs`, newest first. */
export function decodeSealedTail(blob: Uint8Array, fromUs: number): ChunkReading[] {
  const u = unpack(blob);
  let from = u.n;
  while (from > 0 && u.ts[from - 1]! >= fromUs) from--;
  return from === u.n ? [] : readingsOf(u, from).reverse();
}

/** The instants of a sealed chunk, in order; nothing else decoded. */
export function sealedInstants(blob: Uint8Array): Float64Array {
  return unpack(blob).ts;
}

/** Writes a non-negative safe integer as a varint (7 bits a byte, low first); returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, value: number): number {
  if (value < 0x80000000) {
    // Most values (deltas, counts, lengths): 31 bits, shifted as an integer.
    let v = value | 0;
    while (v >= 128) {
      out[pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    out[pos++] = v;
    return pos;
  }
  // Division, not shifts: values go past 32 bits.
  while (value >= 128) {
    out[pos++] = (value % 128) | 128;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}

/** Reads a varint at `cursor.pos`, advancing it. */
export function readVarint(buf: Uint8Array, cursor: { pos: number }): number {
  let byte = buf[cursor.pos++]!;
  if (byte < 128) return byte;
  let value = byte & 127;
  let scale = 128;
  for (;;) {
    byte = buf[cursor.pos++]!;
    if (byte === undefined) throw new Error('corrupt chunk: varint cut short');
    value += (byte & 127) * scale;
    if (byte < 128) return value;
    scale *= 128;
    if (scale > 2 ** 56) throw new Error('corrupt chunk: varint too long');
  }
}
