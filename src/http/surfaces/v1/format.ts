import type { Reading } from '../../../domain/reading.js';
import { parseTimestamp, formatUtc } from '../../../domain/timestamp.js';
import type { DeviceSummary } from '../../../store/types.js';

/** The /v1 shapes: RFC 3339 UTC timestamps, payloads as JSON objects. */

export function deviceItem(d: DeviceSummary) {
  return {
    device_id: d.deviceId,
    first_ts: formatUtc(d.firstTsUs),
    latest_ts: formatUtc(d.latestTsUs),
    reading_count: d.readingCount,
    cumulative_count: d.cumulativeCount,
    latest_payload: d.latestPayload === null ? null : (JSON.parse(d.latestPayload) as unknown),
  };
}

export function readingItem(r: Reading) {
  return {
    device_id: r.deviceId,
    ts: formatUtc(r.tsUs),
    count: r.count,
    payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
  };
}

/** A query-string instant: RFC 3339, like every /v1 timestamp. */
export function queryInstant(value: string | undefined, field: string): number | undefined {
  return value === undefined ? undefined : parseTimestamp(value, field).us;
}
