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

/** The value a reading contributes to an aggregate: its count, or a numeric field of its payload. */
function valueOf(reading: ChunkReading, field: AggregateQuery['field']): number | null {
  if (field.kind === 'count') return reading.count;
  if (reading.payload === null) return null;
  const value = (JSON.parse(reading.payload) as Record<string, unknown>)[field.name];
  return typeof value === 'number' ? value : null;
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

  constructor(private readonly query: AggregateQuery) {}

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
    if (count === 0) return;
    const b = this.buckets.get(startUs);
    if (b === undefined) this.buckets.set(startUs, { count, sum, min, max });
    else {
      b.count += count;
      b.sum += sum;
      if (min < b.min) b.min = min;
      if (max > b.max) b.max = max;
    }
  }

  /** Adds the readings of a decoded chunk that fall in the range. */
  addReadings(readings: Iterable<ChunkReading>): void {
    for (const r of readings) {
      if (r.tsUs < this.query.fromUs || r.tsUs >= this.query.toUs) continue;
      const v = valueOf(r, this.query.field);
      if (v !== null) this.addSummary(this.startOf(r.tsUs), 1, v, v, v);
    }
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
