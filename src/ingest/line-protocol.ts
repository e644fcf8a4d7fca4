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

const BACKSLASH = 92;
const COMMA = 44;
const SPACE = 32;
const EQUALS = 61;
const QUOTE = 34;
const HASH = 35;

/** Whether the backslash at `i` escapes the next character: a comma, a space, or (`equals`) an equals sign. */
function escapes(line: string, i: number, equals: boolean): boolean {
  if (i + 1 >= line.length) return false;
  const next = line.charCodeAt(i + 1);
  return next === COMMA || next === SPACE || (equals && next === EQUALS);
}

/** Where the last readUntil or readString stopped (a module variable rather than a tuple per call: this is the hot path). */
let scanEnd = 0;

/**
 * One name or tag value from `pos` up to the first unescaped comma, space or (`stopAtEquals`) equals
 * sign: its text with escapes removed; `scanEnd` is then the index of the stop. Scans character
 * codes and slices when nothing was escaped (the common case).
 */
function readUntil(line: string, pos: number, stopAtEquals: boolean, equalsEscapable: boolean): string {
  let i = pos;
  let escaped = false;
  const n = line.length;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === BACKSLASH && escapes(line, i, equalsEscapable)) {
      escaped = true;
      i += 2;
      continue;
    }
    if (c === COMMA || c === SPACE || (stopAtEquals && c === EQUALS)) break;
    i++;
  }
  scanEnd = i;
  if (!escaped) return line.slice(pos, i);
  let out = '';
  for (let k = pos; k < i; k++) {
    if (line.charCodeAt(k) === BACKSLASH && escapes(line, k, equalsEscapable)) k++;
    out += line[k];
  }
  return out;
}

/** Whether `raw` from `from` to `to` is one or more ASCII digits. */
function digits(raw: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = raw.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The kind of the value parseValue last returned (a module variable: no object per field on the hot path). */
let valueKind: FieldValue['kind'] = 'float';

function parseValue(raw: string, field: string): number | boolean {
  const n = raw.length;
  if (n === 0) throw new LineProtocolError(`field ${JSON.stringify(field)} has no value`);
  const last = raw.charCodeAt(n - 1);
  if (last === 105 /* i */) {
    const sign = raw.charCodeAt(0) === 45 || raw.charCodeAt(0) === 43 ? 1 : 0;
    if (digits(raw, sign, n - 1)) {
      valueKind = 'integer';
      return Number(raw.slice(0, -1));
    }
  } else if (last === 117 /* u */ && digits(raw, 0, n - 1)) {
    valueKind = 'integer';
    return Number(raw.slice(0, -1));
  }
  if (raw in BOOLEANS) {
    valueKind = 'boolean';
    return BOOLEANS[raw]!;
  }
  if (FLOAT.test(raw)) {
    const value = Number(raw);
    if (Number.isFinite(value)) {
      valueKind = 'float';
      return value;
    }
  }
  throw new LineProtocolError(`field ${JSON.stringify(field)} has an invalid value ${JSON.stringify(raw.slice(0, 64))}`);
}

/** A quoted string field's value from the opening quote at `pos`; `\"` and `\\` are unescaped. `scanEnd` is then the index after the closing quote. */
function readString(line: string, pos: number, key: string): string {
  const n = line.length;
  let i = pos + 1;
  let escaped = false;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === QUOTE) break;
    if (c === BACKSLASH && i + 1 < n && (line.charCodeAt(i + 1) === QUOTE || line.charCodeAt(i + 1) === BACKSLASH)) {
      escaped = true;
      i += 2;
      continue;
    }
    i++;
  }
  if (i >= n) throw new LineProtocolError(`string field ${JSON.stringify(key)} is not closed`);
  scanEnd = i + 1;
  if (!escaped) return line.slice(pos + 1, i);
  let value = '';
  for (let k = pos + 1; k < i; k++) {
    const c = line.charCodeAt(k);
    if (c === BACKSLASH && (line.charCodeAt(k + 1) === QUOTE || line.charCodeAt(k + 1) === BACKSLASH)) k++;
    value += line[k];
  }
  return value;
}

/**
 * What a line is read into, part by part as the scanner meets them: a Point (parseLine), or a
 * reading straight away (line-protocol-mapping.ts), without a Point in between on the hot path.
 */
export interface PointSink {
  /** First, the measurement name. */
  start(measurement: string): void;
  tag(key: string, value: string): void;
  field(key: string, kind: FieldValue['kind'], value: number | string | boolean): void;
}

/** Reads one non-empty, non-comment line into `sink`; returns the timestamp's digits, or null when there is none. */
export function scanLine(line: string, sink: PointSink): string | null {
  // Measurement: up to an unescaped comma (tags follow) or space (fields follow).
  const measurement = readUntil(line, 0, false, false);
  if (measurement === '') throw new LineProtocolError('the line has no measurement name');
  sink.start(measurement);
  let pos = scanEnd;
  while (line.charCodeAt(pos) === COMMA) {
    const key = readUntil(line, pos + 1, true, true);
    const eq = scanEnd;
    if (line.charCodeAt(eq) !== EQUALS || key === '') throw new LineProtocolError(`tag ${JSON.stringify(key)} has no value`);
    const value = readUntil(line, eq + 1, false, true);
    if (value === '') throw new LineProtocolError(`tag ${JSON.stringify(key)} has no value`);
    sink.tag(key, value);
    pos = scanEnd;
  }
  if (line.charCodeAt(pos) !== SPACE) throw new LineProtocolError('the line has no fields');
  pos++;
  const n = line.length;
  for (;;) {
    const key = readUntil(line, pos, true, true);
    const eq = scanEnd;
    if (line.charCodeAt(eq) !== EQUALS || key === '') throw new LineProtocolError(`field ${JSON.stringify(key)} has no value`);
    pos = eq + 1;
    if (line.charCodeAt(pos) === QUOTE) {
      sink.field(key, 'string', readString(line, pos, key));
      pos = scanEnd;
    } else {
      let end = pos;
      while (end < n) {
        const c = line.charCodeAt(end);
        if (c === COMMA || c === SPACE) break;
        end++;
      }
      const value = parseValue(line.slice(pos, end), key);
      sink.field(key, valueKind, value);
      pos = end;
    }
    if (line.charCodeAt(pos) === COMMA) {
      pos++;
      continue;
    }
    break;
  }
  if (pos >= n) return null;
  if (line.charCodeAt(pos) !== SPACE) throw new LineProtocolError('unexpected text after the fields');
  // The common case, digits to the end of the line, without trimming or a regular expression.
  const negative = line.charCodeAt(pos + 1) === 45;
  if (digits(line, pos + (negative ? 2 : 1), n)) return line.slice(pos + 1);
  const rest = line.slice(pos + 1).trim();
  if (rest === '') return null;
  if (!INTEGER.test(rest)) throw new LineProtocolError(`the timestamp ${JSON.stringify(rest.slice(0, 32))} is not an integer`);
  return rest;
}

/** Builds a Point: later duplicates of a tag or field key win, in the first one's place. */
class PointBuilder implements PointSink {
  measurement = '';
  readonly tags = new Map<string, string>();
  readonly fields = new Map<string, FieldValue>();
  start(measurement: string): void {
    this.measurement = measurement;
  }
  tag(key: string, value: string): void {
    this.tags.set(key, value);
  }
  field(key: string, kind: FieldValue['kind'], value: number | string | boolean): void {
    this.fields.set(key, { kind, value } as FieldValue);
  }
}

/** Parses one non-empty, non-comment line. */
export function parseLine(line: string, lineNumber: number): Point {
  const point = new PointBuilder();
  const timestamp = scanLine(line, point);
  return { line: lineNumber, measurement: point.measurement, tags: point.tags, fields: point.fields, timestamp };
}

/** Whether a line is blank or a `#` comment (skipped, as InfluxDB skips them). */
export function isSkipped(line: string): boolean {
  const first = line.charCodeAt(0);
  // The common case, a line starting with a measurement name, decided on its first character.
  if (first > SPACE && first !== HASH) return false;
  return line.trim() === '' || line.trimStart().startsWith('#');
}

/** Calls `each` with every line of a body that is not blank or a comment, and its 1-based number. */
export function forEachLine(body: string, each: (line: string, lineNumber: number) => void): void {
  let start = 0;
  let lineNumber = 0;
  while (start <= body.length) {
    let end = body.indexOf('\n', start);
    if (end < 0) end = body.length;
    lineNumber++;
    const line = end > start && body.charCodeAt(end - 1) === 13 ? body.slice(start, end - 1) : body.slice(start, end);
    start = end + 1;
    if (!isSkipped(line)) each(line, lineNumber);
  }
}

/** Every line of a body: the points, and the lines that could not be read, by line number. */
export function parseBody(body: string): { points: Point[]; errors: LineError[] } {
  const points: Point[] = [];
  const errors: LineError[] = [];
  forEachLine(body, (line, lineNumber) => {
    try {
      points.push(parseLine(line, lineNumber));
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      errors.push({ line: lineNumber, message: err.message });
    }
  });
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
