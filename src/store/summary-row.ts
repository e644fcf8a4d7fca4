import type { DeviceSummary } from './types.js';

/**
 * A device summary as both SQL backends keep it (same column names), and the column each
 * listing sort reads.
 */
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

export const SORT_COLUMNS = {
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
