import type { Reading } from '../../domain/reading.js';
import { DEVICE_COLUMNS as SUMMARY_COLUMNS, SORT_COLUMNS, toSummary, type DeviceRow as SummaryRow } from '../summary-row.js';
import type { AggregateQuery, DeviceListQuery, DeviceSort } from '../types.js';

/** The SQL of the PostgreSQL store, and how its rows become domain values. */

/**
 * One batch, one statement, one round trip (and, alone, its own transaction). The batch arrives as
 * five parallel arrays; duplicates inside it are resolved by batch order (DISTINCT ON keeps the
 * lowest ordinal), rows go in sorted by (device_id, ts_us) and summaries by device_id, so two
 * nodes writing overlapping batches take their locks in one order and never deadlock. Summaries are
 * built from the rows actually inserted (RETURNING), aggregated per device first, since ON CONFLICT
 * DO UPDATE may touch a row only once per statement. Answers the input ordinals (1-based) stored.
 */
export const APPEND = `
WITH input AS (
  SELECT device_id COLLATE "C" AS device_id, ts_us, ts_text, count, payload, ord
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::integer[], $5::text[])
    WITH ORDINALITY AS t(device_id, ts_us, ts_text, count, payload, ord)
), firsts AS MATERIALIZED (
  SELECT DISTINCT ON (device_id, ts_us) * FROM input ORDER BY device_id, ts_us, ord
), inserted AS (
  INSERT INTO readings (device_id, ts_us, ts_text, count, payload)
  SELECT device_id, ts_us, ts_text, count, payload FROM firsts ORDER BY device_id, ts_us
  ON CONFLICT (device_id, ts_us) DO NOTHING
  RETURNING device_id, ts_us, ts_text, count, payload
), latest AS (
  SELECT DISTINCT ON (device_id) device_id, ts_us, ts_text, payload FROM inserted ORDER BY device_id, ts_us DESC
), totals AS (
  SELECT device_id, min(ts_us) AS first_ts_us, count(*) AS n, coalesce(sum(count), 0) AS total FROM inserted GROUP BY device_id
), summaries AS (
  INSERT INTO devices AS d (device_id, first_ts_us, latest_ts_us, latest_ts_text, latest_payload, reading_count, cumulative_count)
  SELECT t.device_id, t.first_ts_us, l.ts_us, l.ts_text, l.payload, t.n, t.total
  FROM totals t JOIN latest l USING (device_id) ORDER BY t.device_id
  ON CONFLICT (device_id) DO UPDATE SET
    first_ts_us = least(d.first_ts_us, excluded.first_ts_us),
    latest_ts_us = greatest(d.latest_ts_us, excluded.latest_ts_us),
    -- The latest is the greatest timestamp, never the last to arrive.
    latest_ts_text = CASE WHEN excluded.latest_ts_us > d.latest_ts_us THEN excluded.latest_ts_text ELSE d.latest_ts_text END,
    latest_payload = CASE WHEN excluded.latest_ts_us > d.latest_ts_us THEN excluded.latest_payload ELSE d.latest_payload END,
    reading_count = d.reading_count + excluded.reading_count,
    cumulative_count = d.cumulative_count + excluded.cumulative_count
)
SELECT f.ord FROM firsts f JOIN inserted i USING (device_id, ts_us)`;

/** APPEND's parameters: the batch as columns, built in one pass (`ts` also names the partitions it needs). */
export function appendParams(readings: readonly Reading[]): { values: unknown[]; ts: number[] } {
  const n = readings.length;
  const ids = new Array<string>(n);
  const ts = new Array<number>(n);
  const texts = new Array<string | null>(n);
  const counts = new Array<number | null>(n);
  const payloads = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const r = readings[i]!;
    ids[i] = r.deviceId;
    ts[i] = r.tsUs;
    texts[i] = r.tsText;
    counts[i] = r.count;
    payloads[i] = r.payload;
  }
  return { values: [ids, ts, texts, counts, payloads], ts };
}

/** A summary row with the key that breaks listing ties. */
export type DeviceRow = SummaryRow & { key: number };

export const DEVICE_COLUMNS = `key, ${SUMMARY_COLUMNS}`;

export { toSummary };

export interface ReadingRow {
  device_id: string;
  ts_us: number;
  ts_text: string | null;
  count: number | null;
  payload: string | null;
}

export const READING_COLUMNS = 'device_id, ts_us, ts_text, count, payload';

export const toReading = (row: ReadingRow): Reading => ({
  deviceId: row.device_id,
  tsUs: row.ts_us,
  tsText: row.ts_text,
  count: row.count,
  payload: row.payload,
});

/**
 * Escapes jsonb refuses although they are valid JSON (and JSON.stringify writes them): \u0000 and
 * lone surrogates. Every escape is matched from the left (so an escaped backslash is one token);
 * the acceptable ones are kept (group 1), those are dropped: they can only sit inside strings, and
 * only numeric fields are read from the result.
 */
const JSONB_REFUSED = String.raw`(\\(?:[^u]|u(?!0000|[dD][89a-fA-F])[0-9a-fA-F]{4}))|\\u[0-9a-fA-F]{4}`;

/** A JSON text column as jsonb, cleaned of what jsonb refuses (the regex runs only when the text holds an escape). */
const jsonOf = (column: string): string =>
  String.raw`(CASE WHEN strpos(${column}, '\u') > 0 THEN regexp_replace(${column}, '${JSONB_REFUSED}', '\1', 'g') ELSE ${column} END)::jsonb`;

/** A numeric field of a JSON text column, as float8; null when absent or not a JSON number (text, boolean, object). */
const numericField = (column: string, param: string): string =>
  `CASE WHEN jsonb_typeof(${jsonOf(column)} -> ${param}::text) = 'number' THEN (${jsonOf(column)} ->> ${param}::text)::float8 END`;

/** SQL text with its parameters, numbered from $1 in the order pushed. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * The first code point string greater than every string starting with `prefix`, in code point
 * (= UTF-8 byte, COLLATE "C") order; null when there is none.
 */
export function prefixEnd(prefix: string): string | null {
  const points = Array.from(prefix);
  while (points.length > 0) {
    let next = points.pop()!.codePointAt(0)! + 1;
    if (next === 0xd800) next = 0xe000; // surrogates are not characters
    if (next <= 0x10ffff) return points.join('') + String.fromCodePoint(next);
  }
  return null;
}

function prefixFilter(prefix: string | undefined, params: Params): string[] {
  if (prefix === undefined || prefix === '') return [];
  const end = prefixEnd(prefix);
  // A range of the device_id index, exact because device ids compare by code point.
  return [`device_id >= ${params.add(prefix)}`, ...(end === null ? [] : [`device_id < ${params.add(end)}`])];
}

/** The value a listing sorts by: a column, or the first numeric of the named latest-payload fields. */
function sortValue(sort: DeviceSort, params: Params): string {
  if (sort.by !== 'payload') return SORT_COLUMNS[sort.by];
  const parts = sort.fields.map((f) => numericField('latest_payload', params.add(f)));
  return parts.length === 1 ? parts[0]! : `coalesce(${parts.join(', ')})`;
}

/** A listing page: where it starts (the cursor's [sort value, key]) and how it is ordered, ties broken by key. */
export function devicePageQuery(
  query: DeviceListQuery,
  after: readonly [number | string | null, number] | undefined,
): { text: string; values: unknown[] } {
  const params = new Params();
  const asc = query.order === 'asc';
  const dir = asc ? 'ASC' : 'DESC';
  const cmp = asc ? '>' : '<';
  const value = sortValue(query.sort, params);
  const where = prefixFilter(query.prefix, params);
  if (after !== undefined) {
    const [v, k] = after;
    if (query.sort.by === 'deviceId') where.push(`device_id ${cmp} ${params.add(v)}`); // unique: no tie to break
    else if (query.sort.by !== 'payload') where.push(`(${value}, key) ${cmp} (${params.add(v)}, ${params.add(k)})`);
    // Devices without the field come last in either order, ordered by key among themselves.
    else if (v === null) where.push(`${value} IS NULL AND key ${cmp} ${params.add(k)}`);
    else where.push(`(${value} IS NULL OR (${value}, key) ${cmp} (${params.add(v)}::float8, ${params.add(k)}))`);
  }
  const order =
    query.sort.by === 'deviceId' ? `device_id ${dir}` : query.sort.by === 'payload' ? `${value} ${dir} NULLS LAST, key ${dir}` : `${value} ${dir}, key ${dir}`;
  const text = `SELECT ${value} AS sort_value, ${DEVICE_COLUMNS} FROM devices
    ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
    ORDER BY ${order} LIMIT ${params.add(query.limit)} OFFSET ${params.add(query.offset ?? 0)}`;
  return { text, values: params.values };
}

/** How many devices a listing covers. */
export function deviceCountQuery(prefix: string | undefined): { text: string; values: unknown[] } {
  const params = new Params();
  const where = prefixFilter(prefix, params);
  return { text: `SELECT count(*) AS total FROM devices ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}`, values: params.values };
}

export const GET_DEVICE = `SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = $1`;

export const historyQuery = (asc: boolean): string =>
  `SELECT ${READING_COLUMNS} FROM readings WHERE device_id = $1 AND ts_us >= $2 AND ts_us < $3
   ORDER BY ts_us ${asc ? 'ASC' : 'DESC'} LIMIT $4`;

/** Newest first across devices; equal timestamps by device id, which is also what the cursor resumes from. */
/** A page of all readings (of devices starting with `prefix`), newest first, after (timestamp, device id). */
export function recordsQuery(limit: number, after: readonly [number, string] | undefined, prefix: string | undefined): { text: string; values: unknown[] } {
  const params = new Params();
  const where = prefixFilter(prefix, params);
  if (after !== undefined) where.push(`(ts_us, device_id) < (${params.add(after[0])}, ${params.add(after[1])})`);
  const text = `SELECT ${READING_COLUMNS} FROM readings ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
    ORDER BY ts_us DESC, device_id DESC LIMIT ${params.add(limit)}`;
  return { text, values: params.values };
}

/** Buckets aligned to the epoch: a timestamp's bucket starts at floor(ts / every) * every, rounding down before 1970 too. */
export function aggregateQuery(deviceId: string, q: AggregateQuery): { text: string; values: unknown[] } {
  const values: unknown[] = [deviceId, q.fromUs, q.toUs, q.everyUs];
  const value = q.field.kind === 'count' ? 'count::float8' : numericField('payload', `$${values.push(q.field.name)}`);
  const text = `SELECT start_us, count(*) AS n, sum(v) AS sum, min(v) AS min, max(v) AS max FROM (
      SELECT ts_us - ((ts_us % $4) + $4) % $4 AS start_us, ${value} AS v
      FROM readings WHERE device_id = $1 AND ts_us >= $2 AND ts_us < $3
    ) b WHERE v IS NOT NULL GROUP BY start_us ORDER BY start_us`;
  return { text, values };
}

/** Deletes the device's readings and its summary; answers the summary rows deleted. */
export const DELETE_DEVICE = `WITH gone AS (DELETE FROM readings WHERE device_id = $1) DELETE FROM devices WHERE device_id = $1`;

/**
 * The oldest readings before the bound, at most $2 of them, by the (ts_us, device_id) index; what
 * went is added to each device's pruned_* (summaries stay all-time). Answers how many went.
 */
export const PRUNE = `WITH gone AS (
    DELETE FROM readings r USING (
      SELECT device_id, ts_us FROM readings WHERE ts_us < $1 ORDER BY ts_us, device_id LIMIT $2
    ) old WHERE r.device_id = old.device_id AND r.ts_us = old.ts_us
    RETURNING r.device_id, r.count
  ), per AS (
    SELECT device_id, count(*) AS n, coalesce(sum(count), 0) AS total FROM gone GROUP BY device_id
  ), noted AS (
    UPDATE devices d SET pruned_count = d.pruned_count + per.n, pruned_sum = d.pruned_sum + per.total
    FROM per WHERE d.device_id = per.device_id
  )
  SELECT coalesce(sum(n), 0)::bigint AS n FROM per`;

/** Before a week's partition is dropped: what it holds is added to each device's pruned_*. */
export const notePrunedPartition = (partition: string): string => `UPDATE devices d
  SET pruned_count = d.pruned_count + p.n, pruned_sum = d.pruned_sum + p.total
  FROM (SELECT device_id, count(*) AS n, coalesce(sum(count), 0) AS total FROM ${partition} GROUP BY device_id) p
  WHERE d.device_id = p.device_id`;
