import { scanLine, timestampMicros, type FieldValue, type PointSink, type Precision } from './line-protocol.js';
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
  /** JSON text of the payload object: the measurement name, tags and fields. */
  readonly payload: string;
}

/**
 * Each point as an item of the pipeline: the device, microseconds, count and payload. The payload
 * arrives serialized: the mapping builds a flat object of strings, numbers and booleans, so only
 * its size is left to check.
 */
export const lineProtocolShape: ReadingShape = {
  deviceId: { property: 'device' },
  ts: 'ts',
  epoch: { unit: 'us' },
  count: { property: 'count', rule: 'optional' },
  payload: { property: 'payload', required: false, serialized: true },
  itemForm: 'a line',
};

/**
 * Reads lines straight into items (a PointSink: no Point, Map or field object per line). One per
 * write or file: it keeps the payload text of the last bare measurement, and counts the lines
 * that had no timestamp.
 */
export class LineProtocolMapper implements PointSink {
  /** Lines mapped without a timestamp (they got `nowUs`). */
  untimed = 0;
  private measurement = '';
  private device: string | undefined;
  private count: number | undefined;
  private payload: Record<string, unknown> | undefined;
  private bareMeasurement: string | undefined;
  private barePayload = '';

  constructor(
    private readonly mapping: LineProtocolMapping,
    private readonly precision: Precision,
  ) {}

  /** One line (not blank, not a comment) as an item; throws LineProtocolError for a line that cannot be read. */
  item(line: string, nowUs: number): LineProtocolItem {
    const timestamp = scanLine(line, this);
    if (timestamp === null) this.untimed++;
    return {
      device: this.device ?? this.measurement,
      // A line without a timestamp gets the server's time, as InfluxDB does (a retry is then a new reading).
      ts: timestamp === null ? nowUs : timestampMicros(timestamp, this.precision),
      count: this.count,
      payload: this.payload === undefined ? this.bare() : JSON.stringify(this.payload),
    };
  }

  start(measurement: string): void {
    this.measurement = measurement;
    this.device = undefined;
    this.count = undefined;
    this.payload = undefined;
  }

  tag(key: string, value: string): void {
    if (key === this.mapping.deviceTag) this.device = value;
    else (this.payload ??= { measurement: this.measurement })[key] = value;
  }

  field(key: string, kind: FieldValue['kind'], value: number | string | boolean): void {
    // The last of duplicate keys wins, as InfluxDB has it.
    if (key === this.mapping.countField) {
      if (kind === 'integer') {
        this.count = value as number;
        if (this.payload !== undefined) delete this.payload[key];
        return;
      }
      this.count = undefined;
    }
    (this.payload ??= { measurement: this.measurement })[key] = value;
  }

  /** The payload of a line with nothing but its measurement (and device and count): the same text for every such line. */
  private bare(): string {
    if (this.bareMeasurement !== this.measurement) {
      this.bareMeasurement = this.measurement;
      this.barePayload = JSON.stringify({ measurement: this.measurement });
    }
    return this.barePayload;
  }
}
