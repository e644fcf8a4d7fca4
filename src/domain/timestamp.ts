import { ValidationError } from './errors.js';

/** A parsed instant: microseconds since the Unix epoch (UTC) and the UTC offset it was written with. */
export interface Instant {
  readonly us: number;
  /** Offset from UTC in minutes as sent (`Z` is 0). */
  readonly offsetMinutes: number;
}

/**
 * Years accepted. Microseconds since 1970 stay exact in a double (2^53) only within about ±285
 * years, so the range is bounded rather than silently losing precision.
 */
export const MIN_YEAR = 1900;
export const MAX_YEAR = 2200;

// RFC 3339 date-time: seconds required, optional fraction, zone required (Z, ±hh:mm or ±hhmm).
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  if (month === 2 && (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return 29;
  return DAYS_IN_MONTH[month - 1]!;
}

/**
 * Parses an RFC 3339 / ISO 8601 timestamp strictly. Throws a ValidationError naming `field` for a
 * missing zone, an impossible date or time, or anything that is not such a timestamp.
 */
export function parseTimestamp(value: unknown, field: string): Instant {
  if (typeof value !== 'string') {
    throw new ValidationError(field, `${field} must be an RFC 3339 timestamp string, e.g. 2021-09-29T16:09:15+01:00`);
  }
  const m = RFC3339.exec(value);
  if (m === null) {
    throw new ValidationError(
      field,
      `${field} is not an RFC 3339 timestamp with seconds and a zone (e.g. 2021-09-29T16:09:15Z or +01:00): ${JSON.stringify(value.slice(0, 64))}`,
    );
  }
  const year = +m[1]!;
  const month = +m[2]!;
  const day = +m[3]!;
  const hour = +m[4]!;
  const minute = +m[5]!;
  const second = +m[6]!;
  if (year < MIN_YEAR || year > MAX_YEAR) {
    throw new ValidationError(field, `${field} year ${year} is outside the supported range ${MIN_YEAR}-${MAX_YEAR}`);
  }
  if (month < 1 || month > 12) throw new ValidationError(field, `${field} has an impossible month: ${m[2]}`);
  if (day < 1 || day > daysInMonth(year, month)) {
    throw new ValidationError(field, `${field} has an impossible date: ${m[1]}-${m[2]}-${m[3]}`);
  }
  if (hour > 23 || minute > 59 || second > 59) {
    throw new ValidationError(field, `${field} has an impossible time of day: ${m[4]}:${m[5]}:${m[6]}`);
  }
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const oh = +m[10]!;
    const om = +m[11]!;
    if (oh > 23 || om > 59) throw new ValidationError(field, `${field} has an impossible UTC offset`);
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Fractions finer than a microsecond are truncated: identity is at microsecond precision.
  const fraction = m[7];
  const micros = fraction === undefined ? 0 : +(fraction + '00000').slice(0, 6);
  const epochSeconds = Date.UTC(year, month - 1, day, hour, minute, second) / 1000 - offsetMinutes * 60;
  return { us: epochSeconds * 1_000_000 + micros, offsetMinutes };
}

const MIN_US = Date.UTC(MIN_YEAR, 0, 1) * 1000;
const MAX_US = Date.UTC(MAX_YEAR + 1, 0, 1) * 1000 - 1;

/** Converts a numeric epoch in the given unit to microseconds, or throws naming `field`. */
export function epochToMicros(value: unknown, unit: 's' | 'ms' | 'us', field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ValidationError(field, `${field} must be a number of ${unitName(unit)} since the Unix epoch`);
  }
  const factor = unit === 's' ? 1_000_000 : unit === 'ms' ? 1000 : 1;
  // value * factor can miss the whole number by a rounding error (1.000001 * 1e6 is 1000000.9999999999,
  // 4363913714.560991 * 1e6 is …560991.5): accept the whole microsecond next to it that converts back
  // to exactly the value sent.
  const approx = value * factor;
  let us = Math.round(approx);
  if (us / factor !== value) us = approx < us ? us - 1 : us + 1;
  if (us / factor !== value) {
    throw new ValidationError(field, `${field} must be a whole number of ${unitName(unit)}${unit === 'us' ? '' : ' (or finer fractions up to a microsecond)'}`);
  }
  if (us < MIN_US || us > MAX_US) {
    throw new ValidationError(field, `${field} is outside the supported range (years ${MIN_YEAR}-${MAX_YEAR})`);
  }
  return us;
}

function unitName(unit: 's' | 'ms' | 'us'): string {
  return unit === 's' ? 'seconds' : unit === 'ms' ? 'milliseconds' : 'microseconds';
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Formats microseconds as RFC 3339 in UTC, with a fraction only when there is one. */
export function formatUtc(us: number): string {
  const ms = Math.floor(us / 1000);
  const micros = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // 2021-09-29T15:09:15.123Z
  const base = iso.slice(0, 19);
  const millis = iso.slice(20, 23);
  if (micros !== 0) return `${base}.${millis}${pad(micros, 3)}Z`;
  if (millis !== '000') return `${base}.${millis}Z`;
  return `${base}Z`;
}

/**
 * Formats an instant as `%Y-%m-%dT%H:%M:%S%z` in the offset it was sent with, e.g.
 * `2021-09-29T16:09:15+0100` (the Bright Counter surface's documented form; no fraction).
 */
export function formatStrftimeZ(us: number, offsetMinutes: number): string {
  const local = new Date(Math.floor(us / 1_000_000) * 1000 + offsetMinutes * 60_000).toISOString().slice(0, 19);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}
