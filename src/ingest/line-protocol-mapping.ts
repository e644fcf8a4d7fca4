import { timestampMicros, type Point, type Precision } from './line-protocol.js';
import type { ReadingShape } from './shape.js';

/**
 * How a line-protocol point becomes a reading, for every door line protocol comes in by (the
 * /write routes, `tally import`): the device from a tag (else the measurement), the count from an
 * integer field, every other field and tag in the payload with the measurement name.
 */

/** How line protocol maps onto readings (TALLY_LP_DEVICE_TAG, TALLY_LP_COUNT_FIELD). */
export interface LineProtocolMapping {
  readonly deviceTag: string;
  readonly countField: string;
}

/** A point as an item of the pipeline, read through `lineProtocolShape`. */
export interface LineProtocolItem {
  readonly device: string;
  readonly ts: number;
  readonly count: number | undefined;
  readonly payload: Record<string, unknown>;
}

/** Each point as an item of the pipeline: the device, microseconds, count and payload. */
export const lineProtocolShape: ReadingShape = {
  deviceId: { property: 'device' },
  ts: 'ts',
  epoch: { unit: 'us' },
  count: { property: 'count', rule: 'optional' },
  payload: { property: 'payload', required: false },
  itemForm: 'a line',
};

/** `nowUs` is the instant a line without a timestamp gets, as InfluxDB gives it the server's time. */
export function lineProtocolItem(point: Point, precision: Precision, nowUs: number, mapping: LineProtocolMapping): LineProtocolItem {
  const payload: Record<string, unknown> = { measurement: point.measurement };
  for (const [key, value] of point.tags) if (key !== mapping.deviceTag) payload[key] = value;
  let count: number | undefined;
  for (const [key, field] of point.fields) {
    if (key === mapping.countField && field.kind === 'integer') count = field.value;
    else payload[key] = field.value;
  }
  return {
    device: point.tags.get(mapping.deviceTag) ?? point.measurement,
    ts: point.timestamp === null ? nowUs : timestampMicros(point.timestamp, precision),
    count,
    payload,
  };
}
