import { ValidationError } from '../domain/errors.js';
import { checkCount, checkDeviceId, checkPayloadSize, isCount, serializePayload, type Reading } from '../domain/reading.js';
import { epochToMicros, parseTimestamp, timestampMicros } from '../domain/timestamp.js';
import { fieldName, itemName, type ReadingShape } from './shape.js';

/**
 * Turns one item a transport received into a Reading, applying the domain's rules as its shape
 * names them, or throws the ValidationError that names the first field at fault. Valid items build
 * no field name or message: the per-reading cost of the hot path is the checks themselves.
 */
export class CandidateReader {
  /** The last device id checked, and what it became: a batch is mostly runs of one device. */
  private lastRawId: unknown = undefined;
  private lastId = '';

  constructor(private readonly shape: ReadingShape) {}

  read(item: unknown, index: number): Reading {
    const shape = this.shape;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      const name = itemName(shape, index);
      throw new ValidationError(name, `${name} must be an object ${shape.itemForm}`);
    }
    const fields = item as Record<string, unknown>;
    const deviceId = 'fixed' in shape.deviceId ? shape.deviceId.fixed : this.deviceId(fields[shape.deviceId.property], index, shape.deviceId.property);

    const ts = fields[shape.ts];
    let tsUs: number;
    let tsText: string | null = null;
    if (typeof ts === 'number' && shape.epoch !== undefined) {
      if ('refuse' in shape.epoch) throw new ValidationError(fieldName(shape, index, shape.ts), shape.epoch.refuse);
      tsUs = epochToMicros(ts, shape.epoch.unit, fieldName(shape, index, shape.ts));
    } else {
      tsUs = timestampMicros(ts);
      if (tsUs !== tsUs) tsUs = parseTimestamp(ts, fieldName(shape, index, shape.ts)).us; // NaN: let it say why
      tsText = ts as string;
    }

    let count: number | null = null;
    if (shape.count !== undefined) {
      const { property, rule } = shape.count;
      const value = fields[property];
      if (rule === 'optional' && (value === undefined || value === null)) count = null;
      else if (isCount(value, rule === 'positive' ? POSITIVE : ANY)) count = value;
      else count = checkCount(value, fieldName(shape, index, property), rule === 'positive' ? POSITIVE : ANY);
    }

    let payload: string | null = null;
    if (shape.payload !== undefined) {
      const { property, required, serialized } = shape.payload;
      const value = fields[property];
      // Null is no payload where one is optional; where one is required, only a missing one is "required".
      if (serialized === true && typeof value === 'string') payload = checkPayloadSize(value, fieldName(shape, index, property));
      else if (value !== undefined && (value !== null || required)) payload = serializePayload(value, fieldName(shape, index, property));
      else if (required) {
        const name = fieldName(shape, index, property);
        throw new ValidationError(name, `${name} is required (a JSON object)`);
      }
    }
    return { deviceId, tsUs, tsText, count, payload };
  }

  private deviceId(raw: unknown, index: number, property: string): string {
    if (raw === this.lastRawId) return this.lastId;
    const id = checkDeviceId(raw, fieldName(this.shape, index, property));
    this.lastRawId = raw;
    this.lastId = id;
    return id;
  }
}

const POSITIVE = { positive: true } as const;
const ANY = { positive: false } as const;
