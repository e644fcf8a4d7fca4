/**
 * The InfluxDB line protocol, as Telegraf and the InfluxDB client libraries write it:
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * Escapes: a backslash makes the next comma, space or equals sign (and, in a measurement, comma
 * or space) literal; a string field value is double-quoted, with `\"` and `\\` inside. Field values:
 * a float (`1`, `-1.5`, `1e3`), an integer (`1i`), an unsigned integer (`1u`), a boolean (`t`, `T`,
 * `true`, `True`, `TRUE` and the same for false) or a string. Empty lines and `#` comments are
 * skipped. Pure: no I/O; the caller maps points to readings.
 */

export type FieldValue =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'integer'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'boolean'; readonly value: boolean };

export interface Point {
  /** 1-based line number in the body. */
  readonly line: number;
  readonly measurement: string;
  readonly tags: ReadonlyMap<string, string>;
  readonly fields: ReadonlyMap<string, FieldValue>;
  /** The timestamp's digits as sent (in the request's precision), or null when the line has none. */
  readonly timestamp: string | null;
}

export interface LineError {
  readonly line: number;
  readonly message: string;
}

export class LineProtocolError extends Error {}

const BOOLEANS: Record<string, boolean> = { t: true, T: true, true: true, True: true, TRUE: true, f: false, F: false, false: false, False: false, FALSE: false };
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;
const UNSIGNED = /^\d+$/;

/** Reads up to the first unescaped character of `stops` from `pos`; returns the unescaped text and the stop's index. */
function readUntil(line: string, pos: number, stops: string, escapable: string): [string, number] {
  let out = '';
  let i = pos;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length && escapable.includes(line[i + 1]!)) {
      out += line[i + 1];
      i += 2;
      continue;
    }
    if (stops.includes(c)) break;
    out += c;
    i++;
  }
  return [out, i];
}

function parseValue(raw: string, field: string): FieldValue {
  if (raw.length === 0) throw new LineProtocolError(`field ${JSON.stringify(field)} has no value`);
  const last = raw[raw.length - 1];
  if (last === 'i' && INTEGER.test(raw.slice(0, -1))) return { kind: 'integer', value: Number(raw.slice(0, -1)) };
  if (last === 'u' && UNSIGNED.test(raw.slice(0, -1))) return { kind: 'integer', value: Number(raw.slice(0, -1)) };
  if (raw in BOOLEANS) return { kind: 'boolean', value: BOOLEANS[raw]! };
  if (FLOAT.test(raw)) {
    const value = Number(raw);
    if (Number.isFinite(value)) return { kind: 'float', value };
  }
  throw new LineProtocolError(`field ${JSON.stringify(field)} has an invalid value ${JSON.stringify(raw.slice(0, 64))}`);
}

/** Parses one non-empty, non-comment line. */
export function parseLine(line: string, lineNumber: number): Point {
  // Measurement: up to an unescaped comma (tags follow) or space (fields follow).
  const [measurement, afterName] = readUntil(line, 0, ', ', ', ');
  if (measurement === '') throw new LineProtocolError('the line has no measurement name');
  let pos = afterName;
  const tags = new Map<string, string>();
  while (line[pos] === ',') {
    const [key, eq] = readUntil(line, pos + 1, '=, ', ',= ');
    if (line[eq] !== '=' || key === '') throw new LineProtocolError(`tag ${JSON.stringify(key)} has no value`);
    const [value, next] = readUntil(line, eq + 1, ', ', ',= ');
    if (value === '') throw new LineProtocolError(`tag ${JSON.stringify(key)} has no value`);
    tags.set(key, value);
    pos = next;
  }
  if (line[pos] !== ' ') throw new LineProtocolError('the line has no fields');
  pos++;
  const fields = new Map<string, FieldValue>();
  for (;;) {
    const [key, eq] = readUntil(line, pos, '=, ', ',= ');
    if (line[eq] !== '=' || key === '') throw new LineProtocolError(`field ${JSON.stringify(key)} has no value`);
    pos = eq + 1;
    if (line[pos] === '"') {
      let value = '';
      pos++;
      while (pos < line.length && line[pos] !== '"') {
        if (line[pos] === '\\' && (line[pos + 1] === '"' || line[pos + 1] === '\\')) pos++;
        value += line[pos++];
      }
      if (line[pos] !== '"') throw new LineProtocolError(`string field ${JSON.stringify(key)} is not closed`);
      pos++;
      fields.set(key, { kind: 'string', value });
    } else {
      let end = pos;
      while (end < line.length && line[end] !== ',' && line[end] !== ' ') end++;
      fields.set(key, parseValue(line.slice(pos, end), key));
      pos = end;
    }
    if (line[pos] === ',') {
      pos++;
      continue;
    }
    break;
  }
  let timestamp: string | null = null;
  if (pos < line.length) {
    if (line[pos] !== ' ') throw new LineProtocolError('unexpected text after the fields');
    const rest = line.slice(pos + 1).trim();
    if (rest !== '') {
      if (!INTEGER.test(rest)) throw new LineProtocolError(`the timestamp ${JSON.stringify(rest.slice(0, 32))} is not an integer`);
      timestamp = rest;
    }
  }
  return { line: lineNumber, measurement, tags, fields, timestamp };
}

/** Every line of a body: the points, and the lines that could not be read, by line number. */
export function parseBody(body: string): { points: Point[]; errors: LineError[] } {
  const points: Point[] = [];
  const errors: LineError[] = [];
  let start = 0;
  let lineNumber = 0;
  while (start <= body.length) {
    let end = body.indexOf('\n', start);
    if (end < 0) end = body.length;
    lineNumber++;
    const line = body.slice(start, end).replace(/\r$/, '');
    start = end + 1;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    try {
      points.push(parseLine(line, lineNumber));
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      errors.push({ line: lineNumber, message: err.message });
    }
  }
  return { points, errors };
}

export type Precision = 'ns' | 'us' | 'ms' | 's';

/**
 * Microseconds of a timestamp given in `precision`, or NaN when it is out of range. Nanoseconds
 * are truncated to the microsecond, Tally's identity (readings 1 ns apart are one reading).
 */
export function timestampMicros(digits: string, precision: Precision): number {
  switch (precision) {
    case 's':
      return Number(digits) * 1_000_000;
    case 'ms':
      return Number(digits) * 1_000;
    case 'us':
      return Number(digits);
    case 'ns': {
      // Integer division by 1,000 on the digits: nanosecond epochs pass 2^53.
      const negative = digits.startsWith('-');
      const abs = digits.replace(/^[+-]/, '');
      const whole = abs.length > 3 ? Number(abs.slice(0, -3)) : 0;
      const rest = abs.length > 3 ? Number(abs.slice(-3)) : Number(abs);
      return negative ? -(whole + (rest > 0 ? 1 : 0)) : whole; // floor, also below zero
    }
  }
}
