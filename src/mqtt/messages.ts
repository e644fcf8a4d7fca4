import type { EpochUnit } from '../domain/timestamp.js';
import type { ReadingShape } from '../ingest/shape.js';
import type { Route } from './topics.js';

/**
 * A message's payload read into items for the ingest pipeline, in the shape of its topic. Only the
 * JSON and the message's form are checked here; the readings themselves are checked once, by the
 * pipeline, as for every transport.
 */
export interface DecodedMessage {
  readonly items: readonly unknown[];
  readonly shape: ReadingShape;
  /** Where item `k` was in the message, for the error report: its index (and a gateway's device). */
  locate(k: number): { readonly index: number; readonly device_id?: string };
}

/** A message refused as a whole: nothing of it is written. */
export interface MessageProblem {
  readonly reason: string;
}

export interface DecodeOptions {
  /** Most readings one message may carry (TALLY_MAX_READINGS, as for one HTTP request). */
  readonly maxReadings: number;
  /** Most bytes in one message (TALLY_BODY_LIMIT, as for one HTTP body). */
  readonly maxBytes: number;
  readonly epochUnit?: EpochUnit;
}

const DEVICE_FORM = '{ts, count?, payload?}';

function epoch(options: DecodeOptions): ReadingShape['epoch'] {
  return options.epochUnit === undefined
    ? { refuse: 'ts is a number: MQTT readings take RFC 3339 text (or set TALLY_MQTT_EPOCH_UNIT to s, ms or us)' }
    : { unit: options.epochUnit };
}

function deviceShape(deviceId: string, options: DecodeOptions, array: boolean): ReadingShape {
  return {
    deviceId: { fixed: deviceId },
    ts: 'ts',
    epoch: epoch(options),
    count: { property: 'count', rule: 'optional' },
    payload: { property: 'payload', required: false },
    ...(array ? { itemPath: (i: number) => `[${i}].` } : {}),
    itemForm: DEVICE_FORM,
  };
}

export function decodeMessage(route: Exclude<Route, { kind: 'unknown' }>, payload: Buffer, options: DecodeOptions): DecodedMessage | MessageProblem {
  if (payload.length > options.maxBytes) return { reason: `message of ${payload.length} bytes is over the limit of ${options.maxBytes}` };
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { reason: 'payload is not valid JSON' };
  }
  return route.kind === 'device' ? deviceMessage(route.deviceId, value, options) : gatewayMessage(value, options);
}

function tooMany(n: number, options: DecodeOptions): MessageProblem | undefined {
  if (n === 0) return { reason: 'message holds no readings' };
  if (n > options.maxReadings) return { reason: `message holds ${n} readings; at most ${options.maxReadings} are allowed in one message` };
  return undefined;
}

function deviceMessage(deviceId: string, value: unknown, options: DecodeOptions): DecodedMessage | MessageProblem {
  if (Array.isArray(value)) {
    return tooMany(value.length, options) ?? { items: value, shape: deviceShape(deviceId, options, true), locate: (index) => ({ index }) };
  }
  if (typeof value !== 'object' || value === null) return { reason: `payload must be a reading ${DEVICE_FORM} or an array of them` };
  return { items: [value], shape: deviceShape(deviceId, options, false), locate: () => ({ index: 0 }) };
}

/**
 * `{"<device_id>": [readings...]}` (a single reading object also serves) into items that carry their
 * device, so the pipeline checks the id like any other field.
 */
function gatewayMessage(value: unknown, options: DecodeOptions): DecodedMessage | MessageProblem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { reason: 'payload must be an object {"<device_id>": [readings...]}' };
  }
  const items: unknown[] = [];
  const ids: string[] = [];
  const indexes: number[] = [];
  for (const [deviceId, readings] of Object.entries(value)) {
    const list = Array.isArray(readings) ? readings : [readings];
    if (items.length + list.length > options.maxReadings) return tooMany(items.length + list.length, options)!;
    list.forEach((reading: unknown, index) => {
      // Only an object's reading fields are carried over: a non-object stays as it is, and is rejected by index.
      items.push(typeof reading === 'object' && reading !== null && !Array.isArray(reading) ? { ...reading, device_id: deviceId } : reading);
      ids.push(deviceId);
      indexes.push(index);
    });
  }
  const problem = tooMany(items.length, options);
  if (problem !== undefined) return problem;
  return {
    items,
    shape: {
      deviceId: { property: 'device_id' },
      ts: 'ts',
      epoch: epoch(options),
      count: { property: 'count', rule: 'optional' },
      payload: { property: 'payload', required: false },
      itemPath: (k) => `${JSON.stringify(ids[k])}[${indexes[k]}].`,
      itemForm: DEVICE_FORM,
    },
    locate: (k) => ({ index: indexes[k]!, device_id: ids[k]! }),
  };
}
