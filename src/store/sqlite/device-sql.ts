import type { DeviceListQuery, DeviceSort, DeviceSummary } from '../types.js';

/** The SQL of device listings: which columns, how they sort, how a row becomes a summary. */

export interface DeviceRow {
  device_id: string;
  first_ts_us: number;
  latest_ts_us: number;
  latest_ts_text: string | null;
  latest_payload: string | null;
  reading_count: number;
  cumulative_count: number;
}

export const DEVICE_COLUMNS = 'device_id, first_ts_us, latest_ts_us, latest_ts_text, latest_payload, reading_count, cumulative_count';

const SORT_COLUMNS = {
  deviceId: 'device_id',
  latestTs: 'latest_ts_us',
  firstTs: 'first_ts_us',
  readingCount: 'reading_count',
  cumulativeCount: 'cumulative_count',
} as const;

export function toSummary(row: DeviceRow): DeviceSummary {
  return {
    deviceId: row.device_id,
    firstTsUs: row.first_ts_us,
    latestTsUs: row.latest_ts_us,
    latestTsText: row.latest_ts_text,
    latestPayload: row.latest_payload,
    readingCount: row.reading_count,
    cumulativeCount: row.cumulative_count,
  };
}

const PAYLOAD_FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A JSON path literal for json_extract. Field names are restricted, so they are safe in SQL. */
function jsonPath(field: string): string {
  if (!PAYLOAD_FIELD.test(field)) throw new Error(`unsupported payload field name: ${field}`);
  return `'$.${field}'`;
}

/** The SQL value a device listing sorts by: a column, or the first present of the named latest-payload fields. */
export function sortValue(sort: DeviceSort): string {
  if (sort.by !== 'payload') return SORT_COLUMNS[sort.by];
  const parts = sort.fields.map((f) => `json_extract(latest_payload, ${jsonPath(f)})`);
  return parts.length === 1 ? parts[0]! : `coalesce(${parts.join(', ')})`;
}

/**
 * ORDER BY for a device listing, ties broken by the device key (the order devices were first
 * seen: stable, and what keyset cursors resume from). Devices without a sorted payload field come
 * last in either order.
 */
export function orderBy(sort: DeviceSort, dir: 'ASC' | 'DESC'): string {
  const value = sortValue(sort);
  const nullsLast = sort.by === 'payload' ? `${value} IS NULL, ` : '';
  return `${nullsLast}${value} ${dir}, key ${dir}`;
}

/** What a device-listing cursor belongs to: reusing one for another sort, order or prefix is an error. */
export function listingOf(query: DeviceListQuery): string {
  const sort = query.sort.by === 'payload' ? `payload.${query.sort.fields.join(',')}` : query.sort.by;
  return `devices|${sort}|${query.order}|${query.prefix ?? ''}`;
}
