import { ValidationError } from './errors.js';

/**
 * A validated reading, ready to store. Identity is (deviceId, tsUs): the first write wins.
 * `payload` is already serialised JSON so it crosses threads and reaches the store unchanged.
 */
export interface Reading {
  readonly deviceId: string;
  /** Microseconds since the Unix epoch, UTC. */
  readonly tsUs: number;
  /** The timestamp exactly as the client sent it, or null when it arrived as a number. */
  readonly tsText: string | null;
  readonly count: number | null;
  readonly payload: string | null;
}

export const LIMITS = {
  deviceIdMaxLength: 256,
  /** Counts above this would make cumulative sums leave the range a double holds exactly. */
  maxCount: 2 ** 31 - 1,
  payloadMaxBytes: 64 * 1024,
  payloadMaxDepth: 32,
} as const;

// C0 controls, DEL and C1 controls.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

function codePoints(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

export function checkDeviceId(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ValidationError(field, `${field} must be a string`);
  // Characters, not UTF-16 units: count code points only when the units could exceed the limit.
  const length = value.length > LIMITS.deviceIdMaxLength ? codePoints(value) : value.length;
  if (length === 0 || length > LIMITS.deviceIdMaxLength) {
    throw new ValidationError(field, `${field} must be 1-${LIMITS.deviceIdMaxLength} characters long`);
  }
  // A lone surrogate cannot be stored as UTF-8 and would come back as U+FFFD: a different id.
  if (!value.isWellFormed()) throw new ValidationError(field, `${field} must be well-formed Unicode (no lone surrogates)`);
  if (CONTROL_CHARS.test(value)) throw new ValidationError(field, `${field} must not contain control characters`);
  return value;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A UUID in its canonical lower-case form, so `ABC…` and `abc…` name the same device. */
export function checkUuid(value: unknown, field: string): string {
  if (typeof value !== 'string' || !UUID.test(value)) {
    throw new ValidationError(field, `${field} must be a UUID, e.g. 063c5957-8905-45f9-bfe3-960713788919`);
  }
  return value.toLowerCase();
}

export function checkCount(value: unknown, field: string, options: { positive: boolean }): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ValidationError(field, `${field} must be an integer`);
  }
  const min = options.positive ? 1 : 0;
  if (value < min) throw new ValidationError(field, `${field} must be ${options.positive ? 'greater than 0' : '0 or greater'}`);
  if (value > LIMITS.maxCount) throw new ValidationError(field, `${field} must be at most ${LIMITS.maxCount}`);
  return value;
}

/** Whether `checkCount` accepts `value`: the per-reading test of the hot path, with no field name built. */
export function isCount(value: unknown, options: { positive: boolean }): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= (options.positive ? 1 : 0) && value <= LIMITS.maxCount;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Depth of a JSON value, counted without recursion so a hostile body cannot exhaust the stack. */
function exceedsDepth(root: unknown, maxDepth: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (depth > maxDepth) return true;
    if (typeof value !== 'object' || value === null) continue;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Validates a payload object and returns its JSON text (what the store keeps). */
export function serializePayload(value: unknown, field: string): string {
  if (!isPlainObject(value)) throw new ValidationError(field, `${field} must be a JSON object`);
  if (exceedsDepth(value, LIMITS.payloadMaxDepth)) {
    throw new ValidationError(field, `${field} is nested deeper than ${LIMITS.payloadMaxDepth} levels`);
  }
  return checkPayloadSize(JSON.stringify(value), field);
}

/**
 * The size rule of a payload already serialized (by a mapper that built a flat object itself, such
 * as line protocol's): returns the text, or throws naming `field` when it is over the limit.
 */
export function checkPayloadSize(text: string, field: string): string {
  // A UTF-8 byte is at least one UTF-16 unit and at most three: measure exactly only when it matters.
  if (text.length * 3 > LIMITS.payloadMaxBytes && Buffer.byteLength(text) > LIMITS.payloadMaxBytes) {
    throw new ValidationError(field, `${field} is larger than ${LIMITS.payloadMaxBytes} bytes`);
  }
  return text;
}
