/**
 * Queries over chunks, done in JavaScript: SQLite finds the chunks (by device and time range, from
 * their indexes), these functions decode them and put their readings in order.
 */
import type { AggregateBucket, AggregateQuery } from '../types.js';
import { decodeChunk, type ChunkData, type ChunkReading } from './chunk.js';

/** A chunk as a query walks it: its readings' data (either form) and its bound in the walk's direction. */
export interface ChunkRow {
  readonly data: ChunkData;
  /** first_ts_us when walking oldest first, last_ts_us when newest first. */
  readonly bound: number;
}

export interface MergeOptions<R extends ChunkRow, T> {
  /**
   * Readings of a chunk row that the query wants (range and cursor filters applied). `cutoff` is
   * the timestamp past which (in walk order) no reading can make the result any more, once enough
   * are gathered: a row may leave those out (undefined: keep all).
   */
  readonly readingsOf: (row: R, cutoff: number | undefined) => T[];
  readonly tsOf: (item: T) => number;
  /** Result order; ties (same timestamp) broken here. */
  readonly compare: (a: T, b: T) => number;
  readonly ascending: boolean;
  /** At most this many; -1 for all. */
  readonly limit: number;
}

/**
 * Readings of chunks that arrive ordered by bound (oldest first by first timestamp, or newest
 * first by last timestamp), merged into one ordered list. Chunks may overlap, so a reading is
 * placed only once no chunk still to come can hold one before it: its timestamp is past the next
 * chunk's bound. Stops reading chunks once `limit` are placed.
 */
export function mergeChunks<R extends ChunkRow, T>(rows: Iterable<R>, o: MergeOptions<R, T>): T[] {
  const out: T[] = [];
  let buffer: T[] = [];
  // The buffer's most advanced timestamp in walk order: nothing in it is final unless this is.
  let head = o.ascending ? Infinity : -Infinity;
  const full = () => o.limit >= 0 && out.length >= o.limit;
  const flush = (bound: number | undefined) => {
    buffer.sort(o.compare);
    let n = 0;
    while (n < buffer.length && !full()) {
      const ts = o.tsOf(buffer[n]!);
      if (bound !== undefined && (o.ascending ? ts >= bound : ts <= bound)) break;
      out.push(buffer[n++]!);
    }
    buffer = buffer.slice(n);
    head = buffer.length === 0 ? (o.ascending ? Infinity : -Infinity) : o.tsOf(buffer[0]!);
  };
  // Once the result could be filled from what is gathered, the last of those it would take.
  let cutoff: number | undefined;
  const updateCutoff = () => {
    const missing = o.limit - out.length;
    if (o.limit < 0 || buffer.length < missing) return;
    buffer.sort(o.compare);
    cutoff = o.tsOf(buffer[missing - 1]!);
  };
  let pending: R | undefined;
  for (const row of rows) {
    if (pending !== undefined) {
      // `row` is the next chunk: what lies strictly before its bound is final.
      if (o.ascending ? head < row.bound : head > row.bound) flush(row.bound);
      if (full()) return out;
      // Every reading still to come is at or past the next bound: past the cutoff, nothing can place.
      if (cutoff !== undefined && (o.ascending ? row.bound > cutoff : row.bound < cutoff)) break;
    }
    for (const item of o.readingsOf(row, cutoff)) {
      buffer.push(item);
      const ts = o.tsOf(item);
      if (o.ascending ? ts < head : ts > head) head = ts;
    }
    updateCutoff();
    pending = row;
  }
  flush(undefined);
  return out;
}

/** The decoded readings of a chunk within [fromUs, toUs). */
export function readingsBetween(data: ChunkData, fromUs: number, toUs: number): ChunkReading[] {
  const all = decodeChunk(data);
  return all.length > 0 && all[0]!.tsUs >= fromUs && all[all.length - 1]!.tsUs < toUs
    ? all
    : all.filter((r) => r.tsUs >= fromUs && r.tsUs < toUs);
}

/** Field `name` of the payload if it is an object and that field a number, else null. */
function parsedNumber(payload: string, name: string): number | null {
  const parsed = JSON.parse(payload) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null; // only an object has fields
  const value = (parsed as Record<string, unknown>)[name];
  return typeof value === 'number' && Object.hasOwn(parsed, name) ? value : null;
}

/**
 * Field `name` of the payload if it is an object and that field a number, else null, as
 * JSON.parse would find it but without building the object: an aggregate of a payload field reads
 * one key of every reading's payload. Payloads are JSON.stringify output (no spaces, no key twice,
 * only `"`, `\\` and control characters escaped), so the top-level key whose text is `name` is the
 * key, and the number after it runs to the next `,` or `}`. A name JSON would escape (`plainName`
 * false, for the whole query) goes through JSON.parse.
 */
export function payloadNumber(payload: string, name: string, plainName: boolean): number | null {
  if (!plainName) return parsedNumber(payload, name);
  if (payload.charCodeAt(0) !== 123) return null; // '{': only an object has fields
  const n = payload.length;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = payload.charCodeAt(i);
    if (c === 34) {
      // A string: to its closing quote, over escapes.
      const start = i + 1;
      for (i = start; i < n; i++) {
        const d = payload.charCodeAt(i);
        if (d === 92) i++; // '\\': the next character is escaped
        else if (d === 34) break;
      }
      if (depth !== 1 || payload.charCodeAt(i + 1) !== 58 || i - start !== name.length || !payload.startsWith(name, start)) continue; // not our key
      const from = i + 2;
      const first = payload.charCodeAt(from);
      if (first !== 45 && (first < 48 || first > 57)) return null; // '-', digits: only a number counts
      return numberAt(payload, from);
    }
    if (c === 123 || c === 91) depth++; // '{' '['
    else if (c === 125 || c === 93) depth--; // '}' ']'
  }
  return null;
}

const POWERS_OF_TEN = Array.from({ length: 16 }, (_, k) => 10 ** k);

/**
 * The JSON number starting at `from` (it runs to the next `,` or `}`). Most sensor values have at
 * most 15 digits and no exponent: their digits make an exact integer, and one division by an exact
 * power of ten rounds correctly, as Number() would; anything else goes to Number().
 */
function numberAt(text: string, from: number): number {
  const n = text.length;
  let i = from;
  const negative = text.charCodeAt(i) === 45; // '-'
  if (negative) i++;
  let mantissa = 0;
  let digits = 0;
  let fraction = -1; // digits after the point, once one is seen
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      mantissa = mantissa * 10 + (c - 48);
      digits++;
      if (fraction >= 0) fraction++;
    } else if (c === 46 && fraction < 0) fraction = 0; // '.'
    else break;
  }
  const c = text.charCodeAt(i);
  if ((c === 44 || c === 125 || i === n) && digits <= 15 && fraction !== 0) {
    const value = fraction > 0 ? mantissa / POWERS_OF_TEN[fraction]! : mantissa;
    return negative ? -value : value;
  }
  let end = i;
  while (end < n && text.charCodeAt(end) !== 44 && text.charCodeAt(end) !== 125) end++; // ',' '}'
  return Number(text.slice(from, end));
}

/** Whether JSON writes `name` as it is (no character escaped): then payloadNumber can look for its text. */
export function isPlainName(name: string): boolean {
  return JSON.stringify(name) === `"${name}"`;
}

interface Accumulator {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/**
 * Epoch-aligned buckets over [fromUs, toUs), filled a reading or a chunk's summary at a time:
 * count, sum, min, max and mean of the values present; buckets without a value are left out.
 */
export class Buckets {
  private readonly buckets = new Map<number, Accumulator>();
  private readonly plainName: boolean;

  constructor(private readonly query: AggregateQuery) {
    this.plainName = query.field.kind === 'payload' && isPlainName(query.field.name);
  }

  /** The value a reading contributes: its count, or a numeric field of its payload. */
  private valueOf(reading: ChunkReading): number | null {
    const field = this.query.field;
    if (field.kind === 'count') return reading.count;
    return reading.payload === null ? null : payloadNumber(reading.payload, field.name, this.plainName);
  }

  /** The start of the bucket holding `tsUs`. */
  startOf(tsUs: number): number {
    const every = this.query.everyUs;
    return tsUs - (((tsUs % every) + every) % every);
  }

  /** Whether a whole chunk from `firstUs` to `lastUs` lies in one bucket, inside the range. */
  holdsWhole(firstUs: number, lastUs: number): boolean {
    return firstUs >= this.query.fromUs && lastUs < this.query.toUs && this.startOf(firstUs) === this.startOf(lastUs);
  }

  /** Adds `count` values with this sum, min and max to the bucket starting at `startUs`. */
  addSummary(startUs: number, count: number, sum: number, min: number, max: number): void {
    if (count > 0) this.add(startUs, undefined, count, sum, min, max);
  }

  /** Adds the readings of a decoded chunk that fall in the range. */
  addReadings(readings: Iterable<ChunkReading>): void {
    const { fromUs, toUs, everyUs } = this.query;
    // Readings come in time order: the bucket of the last one is most likely the next one's too,
    // and a float modulo and a map lookup per reading cost more than the rest of its work.
    let start = Number.NaN;
    let end = Number.NaN;
    let bucket: Accumulator | undefined;
    for (const r of readings) {
      const ts = r.tsUs;
      if (ts < fromUs || ts >= toUs) continue;
      const v = this.valueOf(r);
      if (v === null) continue;
      if (!(ts >= start && ts < end)) {
        start = this.startOf(ts);
        end = start + everyUs;
        bucket = undefined;
      }
      bucket = this.add(start, bucket, 1, v, v, v);
    }
  }

  /** Adds to the bucket starting at `startUs` (`bucket`: it, if already at hand); returns the bucket. */
  private add(startUs: number, bucket: Accumulator | undefined, count: number, sum: number, min: number, max: number): Accumulator {
    const b = bucket ?? this.buckets.get(startUs);
    if (b === undefined) {
      const created = { count, sum, min, max };
      this.buckets.set(startUs, created);
      return created;
    }
    b.count += count;
    b.sum += sum;
    if (min < b.min) b.min = min;
    if (max > b.max) b.max = max;
    return b;
  }

  result(): AggregateBucket[] {
    return [...this.buckets.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([startUs, b]) => ({ startUs, count: b.count, sum: b.sum, min: b.min, max: b.max, avg: b.sum / b.count }));
  }
}

/**
 * Chunk rows ordered by bound (ascending or descending, as a walk reads them) with `extra` rows
 * placed among them by their bounds: the journal's pending readings, as rows of their own.
 */
export function* withRows<R extends ChunkRow>(rows: Iterable<R>, extra: R[], ascending: boolean): Iterable<R> {
  extra.sort(ascending ? (a, b) => a.bound - b.bound : (a, b) => b.bound - a.bound);
  let k = 0;
  for (const row of rows) {
    while (k < extra.length && (ascending ? extra[k]!.bound <= row.bound : extra[k]!.bound >= row.bound)) yield extra[k++]!;
    yield row;
  }
  while (k < extra.length) yield extra[k++]!;
}
