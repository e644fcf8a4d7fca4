import type { DeviceSort } from '../types.js';

/** The SQL of device listings: which columns, how they sort, how a row becomes a summary. */

import { SORT_COLUMNS } from '../summary-row.js';

export { DEVICE_COLUMNS, toSummary, type DeviceRow } from '../summary-row.js';

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
