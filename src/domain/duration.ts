import { ValidationError } from './errors.js';

const UNIT_US: Record<string, number> = {
  us: 1,
  ms: 1_000,
  s: 1_000_000,
  m: 60_000_000,
  h: 3_600_000_000,
  d: 86_400_000_000,
  w: 604_800_000_000,
};

/** Parses `90s`, `5m`, `1h`, `30d` (units us, ms, s, m, h, d, w) into microseconds. */
export function parseDuration(value: unknown, field: string): number {
  const match = typeof value === 'string' ? /^(\d{1,9})(us|ms|s|m|h|d|w)$/.exec(value) : null;
  if (match === null) {
    throw new ValidationError(field, `${field} must be a duration such as 30s, 5m, 1h or 30d (units us, ms, s, m, h, d, w)`);
  }
  const us = Number(match[1]) * UNIT_US[match[2]!]!;
  if (us <= 0) throw new ValidationError(field, `${field} must be greater than zero`);
  return us;
}
