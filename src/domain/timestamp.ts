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
  if (typeof value === 'string') {
    const us = wellFormedMicros(value);
    if (us === us) return { us, offsetMinutes: wellFormedOffset };
  }
  return parseOrExplain(value, field);
}

/**
 * Microseconds of a valid timestamp, NaN for anything `parseTimestamp` would refuse: the per-reading
 * check of the hot path, with no object made and no field name built (ask `parseTimestamp` why).
 */
export function timestampMicros(value: unknown): number {
  return typeof value === 'string' ? wellFormedMicros(value) : NaN;
}

/** The digit at `i`, or -1. */
function digit(s: string, i: number): number {
  const d = s.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : -1;
}

/** Two digits at `i` as a number, or -1. */
function twoDigits(s: string, i: number): number {
  const a = digit(s, i);
  const b = digit(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The UTC offset, in minutes, of the timestamp `wellFormedMicros` last accepted. */
let wellFormedOffset = 0;

/**
 * The date and hour (`YYYY-MM-DDTHH`, 13 characters) of the last timestamp whose head was parsed,
 * and its seconds since the epoch read as UTC: readings arrive in runs within one hour, and
 * comparing 13 character codes costs less than parsing and checking them (and less than
 * `startsWith`, which allocates).
 */
const cachedHead = new Int32Array(13).fill(-1); // its character codes; -1 matches none
let cachedHeadSeconds = 0;

/** Whether `s` starts with the cached head. */
function sameHead(s: string): boolean {
  // Hour first: it changes most often.
  for (let k = 12; k >= 0; k--) if (s.charCodeAt(k) !== cachedHead[k]) return false;
  return true;
}

/** Seconds since the epoch, read as UTC, of a valid `YYYY-MM-DDTHH` at the start of `s`, or NaN. */
function headSeconds(s: string): number {
  const y1 = twoDigits(s, 0);
  const y2 = twoDigits(s, 2);
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  const hour = twoDigits(s, 11);
  const t = s.charCodeAt(10);
  if (
    y1 < 0 || y2 < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
    s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || (t !== 84 && t !== 116)
  ) {
    return NaN;
  }
  const year = y1 * 100 + y2;
  if (year < MIN_YEAR || year > MAX_YEAR || day > daysInMonth(year, month)) return NaN;
  return daysFromCivil(year, month, day) * 86_400 + hour * 3600;
}

/**
 * The hot path: reads a valid timestamp with character arithmetic, no regex and no Date, and
 * leaves its offset in `wellFormedOffset`. Returns NaN for anything it does not accept, and
 * `parseOrExplain` then finds and names the fault, so the two accept exactly the same strings.
 */
function wellFormedMicros(s: string): number {
  const n = s.length;
  if (n < 20 || n > 35) return NaN;
  let head: number;
  if (sameHead(s)) {
    head = cachedHeadSeconds;
  } else {
    head = headSeconds(s);
    if (head !== head) return NaN;
    for (let k = 0; k < 13; k++) cachedHead[k] = s.charCodeAt(k);
    cachedHeadSeconds = head;
  }
  const minute = twoDigits(s, 14);
  const second = twoDigits(s, 17);
  if (minute < 0 || minute > 59 || second < 0 || second > 59 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return NaN;
  let i = 19;
  let micros = 0;
  if (s.charCodeAt(i) === 46) {
    let count = 0;
    for (i++; i < n; i++, count++) {
      const d = digit(s, i);
      if (d < 0) break;
      if (count < 6) micros = micros * 10 + d;
    }
    if (count === 0 || count > 9) return NaN;
    for (; count < 6; count++) micros *= 10;
  }
  let offsetMinutes = 0;
  const z = s.charCodeAt(i);
  if (z === 90 || z === 122) {
    if (i + 1 !== n) return NaN;
  } else if (z === 43 || z === 45) {
    const oh = twoDigits(s, i + 1);
    const colon = s.charCodeAt(i + 3) === 58 ? 1 : 0;
    const om = twoDigits(s, i + 3 + colon);
    if (oh < 0 || oh > 23 || om < 0 || om > 59 || i + 5 + colon !== n) return NaN;
    offsetMinutes = (z === 45 ? -1 : 1) * (oh * 60 + om);
  } else {
    return NaN;
  }
  wellFormedOffset = offsetMinutes;
  return (head + minute * 60 + second - offsetMinutes * 60) * 1_000_000 + micros;
}

/** The strict parser that explains every fault; `parseWellFormed` defers to it for anything odd. */
function parseOrExplain(value: unknown, field: string): Instant {
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

/** Units a numeric epoch may be given in. */
export type EpochUnit = 's' | 'ms' | 'us';

/** Converts a numeric epoch in the given unit to microseconds, or throws naming `field`. */
export function epochToMicros(value: unknown, unit: EpochUnit, field: string): number {
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

function unitName(unit: EpochUnit): string {
  return unit === 's' ? 'seconds' : unit === 'ms' ? 'milliseconds' : 'microseconds';
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Formats microseconds as RFC 3339 in UTC, with a fraction only when there is one. */
export function formatUtc(us: number): string {
  const seconds = Math.floor(us / 1_000_000);
  const fraction = us - seconds * 1_000_000;
  const base = formatSeconds(seconds);
  if (fraction === 0) return `${base}Z`;
  const digits = pad(fraction, 6);
  return fraction % 1000 === 0 ? `${base}.${digits.slice(0, 3)}Z` : `${base}.${digits}Z`;
}

/** Formats microseconds as RFC 3339 in UTC with exactly `digits` (0, 3 or 6) fraction digits. */
export function formatUtcDigits(us: number, digits: number): string {
  const seconds = Math.floor(us / 1_000_000);
  const base = formatSeconds(seconds);
  if (digits === 0) return `${base}Z`;
  const fraction = pad(us - seconds * 1_000_000, 6);
  return `${base}.${digits === 6 ? fraction : fraction.slice(0, digits)}Z`;
}

/**
 * `YYYY-MM-DDTHH:MM:SS` for whole seconds since the epoch, without a Date: listings format
 * thousands of timestamps per page. Civil-from-days after Howard Hinnant's algorithm.
 */
function formatSeconds(epochSeconds: number): string {
  const days = Math.floor(epochSeconds / 86_400);
  const secondOfDay = epochSeconds - days * 86_400;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay % 3600) / 60);
  return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(secondOfDay % 60)}`;
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
