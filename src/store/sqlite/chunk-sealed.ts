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
import { canonicalUtcDigits, type ChunkReading } from './chunk-text.js';

const FORMAT = 1;
const TS_RAW = 4;
const DIGITS_OF_KIND = [-1, 0, 3, 6];
/** Counts whose zigzag stays a safe integer. */
const COUNT_LIMIT = 2 ** 50;

/** Whether a chunk's data (as SQLite returns it) is in the sealed form. */
export function isSealed(data: string | Uint8Array): data is Uint8Array {
  return typeof data !== 'string';
}

/** A chunk's readings as the sealed form lays them out, before encoding. */
interface Columns {
  readonly ts: Float64Array;
  /** NaN: no count. */
  readonly counts: Float64Array;
  /** Per reading: 0 no timestamp text, 1-3 canonical (0, 3, 6 digits), TS_RAW kept as sent. */
  readonly kinds: Uint8Array;
  /** The kept timestamp texts, in order. */
  readonly raw: string[];
  readonly payloads: Array<string | null>;
}

function KIND_OF_DIGITS(digits: number): number {
  if (digits === 0) return 1;
  if (digits === 3) return 2;
  if (digits === 6) return 3;
  throw new Error(`corrupt chunk text: timestamp digits ${digits}`);
}

/** The sealed form of a chunk's readings (in timestamp order), or undefined if they cannot be held exactly. */
export function encodeSealed(readings: readonly ChunkReading[], codec: Codec = DEFAULT_CODEC): Buffer | undefined {
  const n = readings.length;
  const c: Columns = { ts: new Float64Array(n), counts: new Float64Array(n), kinds: new Uint8Array(n), raw: [], payloads: new Array(n) };
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    c.ts[i] = r.tsUs;
    c.counts[i] = r.count ?? NaN;
    const digits = r.tsText === null ? -2 : canonicalUtcDigits(r.tsText);
    if (digits === -1) c.raw.push(r.tsText!);
    c.kinds[i] = digits === -2 ? 0 : digits === -1 ? TS_RAW : KIND_OF_DIGITS(digits);
    c.payloads[i] = r.payload;
  }
  return encodeColumns(c, codec);
}

/**
 * The sealed form of a text chunk (chunk-text.ts), parsed straight into columns: its one-digit
 * timestamp texts stay digits, never written out and parsed again. Undefined as encodeSealed.
 */
export function sealText(text: string, codec: Codec = DEFAULT_CODEC): Buffer | undefined {
  let n = 0;
  for (let pos = text.indexOf('\n'); pos >= 0; pos = text.indexOf('\n', pos + 1)) n++;
  const c: Columns = { ts: new Float64Array(n), counts: new Float64Array(n), kinds: new Uint8Array(n), raw: [], payloads: new Array(n) };
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = text.indexOf('\n', start);
    const a = text.indexOf('\t', start);
    const b = text.indexOf('\t', a + 1);
    const t = text.indexOf('\t', b + 1);
    if (a < 0 || b < 0 || t < 0 || t >= end) throw new Error(`corrupt chunk text: no reading at offset ${start}`);
    c.ts[i] = Number(text.slice(start, a));
    c.counts[i] = b === a + 1 ? NaN : Number(text.slice(a + 1, b));
    if (t === b + 1) c.kinds[i] = 0;
    else if (t === b + 2) c.kinds[i] = KIND_OF_DIGITS(text.charCodeAt(b + 1) - 48);
    else {
      c.kinds[i] = TS_RAW;
      c.raw.push(text.slice(b + 1, t));
    }
    c.payloads[i] = end === t + 1 ? null : text.slice(t + 1, end);
    start = end + 1;
  }
  if (start !== text.length) throw new Error('corrupt chunk text: no newline at its end');
  return encodeColumns(c, codec);
}

function encodeColumns(c: Columns, codec: Codec): Buffer | undefined {
  const n = c.ts.length;
  if (n === 0) return undefined;
  let room = 16 + 24 * n;
  for (const text of c.raw) room += 3 * text.length;
  for (const payload of c.payloads) if (payload !== null) room += 3 * payload.length;
  const body = Buffer.allocUnsafe(room);
  let pos = 0;
  const first = c.ts[0]!;
  if (!Number.isSafeInteger(first)) return undefined;
  body[pos++] = first < 0 ? 1 : 0;
  pos = writeVarint(body, pos, Math.abs(first));
  for (let i = 1; i < n; i++) {
    const ts = c.ts[i]!;
    const delta = ts - c.ts[i - 1]!;
    if (!Number.isSafeInteger(ts) || !Number.isSafeInteger(delta) || delta <= 0) return undefined;
    pos = writeVarint(body, pos, delta);
  }
  let previous = 0;
  for (let i = 0; i < n; i++) {
    const count = c.counts[i]!;
    if (count !== count) {
      body[pos++] = 0; // NaN: none
      continue;
    }
    if (!Number.isSafeInteger(count) || Math.abs(count) >= COUNT_LIMIT) return undefined;
    const change = count - previous;
    pos = writeVarint(body, pos, (change >= 0 ? 2 * change : -2 * change - 1) + 1);
    previous = count;
  }
  body.set(c.kinds, pos);
  pos += n;
  for (const text of c.raw) pos = writeVarint(body, pos, text.length + 1);
  for (const payload of c.payloads) pos = writeVarint(body, pos, payload === null ? 0 : payload.length + 1);
  for (const text of c.raw) pos += body.write(text, pos, 'utf8');
  for (const payload of c.payloads) if (payload !== null) pos += body.write(payload, pos, 'utf8');

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
function readingsOf(u: Unpacked, from: number): ChunkReading[] {
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
    const tsText = kind === 0 ? null : kind === TS_RAW ? raw[k++]! : formatIfWanted(i >= from, ts[i]!, kind);
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
export function decodeSealed(blob: Uint8Array): ChunkReading[] {
  return readingsOf(unpack(blob), 0);
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
