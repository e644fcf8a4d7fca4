import { describe, expect, test } from 'vitest';
import { validationError } from './expect-validation.js';
import { ValidationError } from '../../src/domain/errors.js';
import {
  MAX_YEAR,
  MIN_YEAR,
  epochToMicros,
  formatStrftimeZ,
  formatUtc,
  parseTimestamp,
} from '../../src/domain/timestamp.js';

/** 2021-09-29T15:09:15Z in microseconds. */
const T0 = 1_632_928_155_000_000;


describe('parseTimestamp: accepted forms', () => {
  test.each([
    ['2021-09-29T15:09:15Z', T0, 0],
    ['2021-09-29T15:09:15z', T0, 0],
    ['2021-09-29t15:09:15Z', T0, 0],
    ['2021-09-29T16:09:15+01:00', T0, 60],
    ['2021-09-29T16:09:15+0100', T0, 60],
    ['2021-09-29T09:39:15-05:30', T0, -330],
    ['2021-09-29T09:39:15-0530', T0, -330],
    ['2021-09-30T04:09:15+13:00', T0, 780],
    ['2021-09-29T15:09:15+00:00', T0, 0],
  ])('%s', (text, us, offsetMinutes) => {
    expect(parseTimestamp(text, 'ts')).toEqual({ us, offsetMinutes });
  });

  test('-00:00 (RFC 3339 "unknown local offset") is UTC', () => {
    const parsed = parseTimestamp('2021-09-29T15:09:15-00:00', 'ts');
    expect(parsed.us).toBe(T0);
    expect(parsed.offsetMinutes === 0).toBe(true); // may be -0, which formats as +0000
    expect(formatStrftimeZ(parsed.us, parsed.offsetMinutes)).toBe('2021-09-29T15:09:15+0000');
  });

  test('the same instant written with different offsets has the same us', () => {
    const forms = [
      '2021-09-29T15:09:15.250Z',
      '2021-09-29T16:09:15.250+01:00',
      '2021-09-29T16:09:15.250+0100',
      '2021-09-29T09:39:15.250-05:30',
      '2021-09-29T23:54:15.250+08:45',
    ];
    const parsed = forms.map((f) => parseTimestamp(f, 'ts'));
    for (const p of parsed) expect(p.us).toBe(T0 + 250_000);
    expect(parsed.map((p) => p.offsetMinutes)).toEqual([0, 60, 60, -330, 525]);
  });

  test.each([
    ['1', 100_000],
    ['12', 120_000],
    ['123', 123_000],
    ['1234', 123_400],
    ['12345', 123_450],
    ['123456', 123_456],
    ['1234567', 123_456],
    ['12345678', 123_456],
    ['123456789', 123_456],
    ['999999999', 999_999],
    ['000001', 1],
    ['0000009', 0],
  ])('fraction .%s is %i microseconds (finer digits truncated)', (fraction, micros) => {
    expect(parseTimestamp(`2021-09-29T15:09:15.${fraction}Z`, 'ts').us).toBe(T0 + micros);
  });

  test('a fraction of 10 digits is rejected', () => {
    validationError(() => parseTimestamp('2021-09-29T15:09:15.1234567890Z', 'ts'), 'ts');
  });

  test('leap day 2024-02-29 and 2000-02-29 are valid', () => {
    expect(parseTimestamp('2024-02-29T12:00:00Z', 'ts').us).toBe(1_709_208_000_000_000);
    expect(parseTimestamp('2000-02-29T00:00:00Z', 'ts').us).toBe(951_782_400_000_000);
  });

  test('last second of a day, month and year boundaries', () => {
    expect(parseTimestamp('2021-12-31T23:59:59.999999Z', 'ts').us).toBe(1_640_995_199_999_999);
    expect(parseTimestamp('2021-04-30T23:59:59Z', 'ts').us).toBe(1_619_827_199_000_000);
  });

  test('instants before 1970 are negative and keep their fraction', () => {
    expect(parseTimestamp('1969-12-31T23:59:59.5Z', 'ts').us).toBe(-500_000);
    expect(parseTimestamp('1969-12-31T23:59:59.000001Z', 'ts').us).toBe(-999_999);
  });

  test('the supported year range is inclusive at both ends', () => {
    expect(MIN_YEAR).toBe(1900);
    expect(MAX_YEAR).toBe(2200);
    expect(parseTimestamp('1900-01-01T00:00:00Z', 'ts').us).toBe(-2_208_988_800_000_000);
    expect(parseTimestamp('2200-12-31T23:59:59.999999Z', 'ts').us).toBe(7_289_654_399_999_999);
  });
});

describe('parseTimestamp: rejected input', () => {
  test.each([
    ['2021-02-29T00:00:00Z', 'not a leap year'],
    ['1900-02-29T00:00:00Z', 'century, not a leap year'],
    ['2021-02-30T00:00:00Z', 'February 30'],
    ['2021-04-31T00:00:00Z', 'April 31'],
    ['2021-06-31T00:00:00Z', 'June 31'],
    ['2021-01-32T00:00:00Z', 'day 32'],
    ['2021-01-00T00:00:00Z', 'day 0'],
    ['2021-13-01T00:00:00Z', 'month 13'],
    ['2021-00-01T00:00:00Z', 'month 0'],
    ['2021-09-29T24:00:00Z', 'hour 24'],
    ['2021-09-29T23:60:00Z', 'minute 60'],
    ['2021-09-29T23:59:60Z', 'second 60'],
    ['2021-09-29T15:09:15+24:00', 'offset hour 24'],
    ['2021-09-29T15:09:15+01:60', 'offset minute 60'],
  ])('%s (%s)', (text) => {
    const error = validationError(() => parseTimestamp(text, 'readings[3].timestamp'), 'readings[3].timestamp');
    expect(error.message).toMatch(/impossible/);
  });

  test.each([
    ['2021-09-29T15:09:15', 'no zone'],
    ['2021-09-29T15:09:15.123', 'fraction, no zone'],
    ['2021-09-29T15:09:15+01', 'offset with hours only'],
    ['2021-09-29T15:09:15+1:00', 'one-digit offset hour'],
    ['2021-09-29T15:09:15 +01:00', 'space before the offset'],
    ['2021-09-29', 'date only'],
    ['2021-09-29T15:09Z', 'no seconds'],
    ['2021-09-29 15:09:15Z', 'space as separator'],
    ['2021-09-29T15:09:15.Z', 'empty fraction'],
    ['2021-9-29T15:09:15Z', 'one-digit month'],
    ['20210929T150915Z', 'basic format'],
    [' 2021-09-29T15:09:15Z', 'leading space'],
    ['2021-09-29T15:09:15Z ', 'trailing space'],
    ['2021-09-29T15:09:15Z\n', 'trailing newline'],
    ['yesterday', 'free form'],
    ['now', 'free form'],
    ['', 'empty'],
    ['1632928155', 'epoch digits as a string'],
    ['Wed, 29 Sep 2021 15:09:15 GMT', 'RFC 2822'],
    ['２０２１-09-29T15:09:15Z', 'full-width digits'],
  ])('%j (%s)', (text) => {
    validationError(() => parseTimestamp(text, 'timestamp'), 'timestamp');
  });

  test.each([
    [1_632_928_155],
    [null],
    [undefined],
    [true],
    [{}],
    [['2021-09-29T15:09:15Z']],
    [new Date(1_632_928_155_000)],
  ])('non-string %j', (value) => {
    const error = validationError(() => parseTimestamp(value, 'readings[0].ts'), 'readings[0].ts');
    expect(error.message).toMatch(/string/);
  });

  test.each([
    ['1899-12-31T23:59:59Z'],
    ['2201-01-01T00:00:00Z'],
    ['0000-01-01T00:00:00Z'],
    ['9999-12-31T23:59:59Z'],
  ])('year out of range: %s', (text) => {
    const error = validationError(() => parseTimestamp(text, 'ts'), 'ts');
    expect(error.message).toMatch(/range/);
  });

  test('a very long string is not echoed back whole', () => {
    const error = validationError(() => parseTimestamp('x'.repeat(10_000), 'ts'), 'ts');
    expect(error.message.length).toBeLessThan(300);
  });
});

describe('formatUtc', () => {
  test('whole seconds have no fraction', () => {
    expect(formatUtc(T0)).toBe('2021-09-29T15:09:15Z');
  });

  test('whole milliseconds have three digits', () => {
    expect(formatUtc(T0 + 123_000)).toBe('2021-09-29T15:09:15.123Z');
    expect(formatUtc(T0 + 100_000)).toBe('2021-09-29T15:09:15.100Z');
    expect(formatUtc(T0 + 1_000)).toBe('2021-09-29T15:09:15.001Z');
  });

  test('microseconds have six digits', () => {
    expect(formatUtc(T0 + 123_456)).toBe('2021-09-29T15:09:15.123456Z');
    expect(formatUtc(T0 + 1)).toBe('2021-09-29T15:09:15.000001Z');
    expect(formatUtc(T0 + 999_999)).toBe('2021-09-29T15:09:15.999999Z');
    expect(formatUtc(T0 + 120_400)).toBe('2021-09-29T15:09:15.120400Z');
  });

  test('before 1970', () => {
    expect(formatUtc(-500_000)).toBe('1969-12-31T23:59:59.500Z');
    expect(formatUtc(-1)).toBe('1969-12-31T23:59:59.999999Z');
    expect(formatUtc(-2_208_988_800_000_000)).toBe('1900-01-01T00:00:00Z');
  });

  test('round-trips through parseTimestamp', () => {
    for (const us of [0, T0, T0 + 7, T0 + 123_000, T0 + 654_321, -999_999, 7_289_654_399_999_999]) {
      expect(parseTimestamp(formatUtc(us), 'ts')).toEqual({ us, offsetMinutes: 0 });
    }
  });
});

describe('formatStrftimeZ', () => {
  test('the Bright Counter form in the offset it was sent with', () => {
    expect(formatStrftimeZ(T0, 60)).toBe('2021-09-29T16:09:15+0100');
  });

  test('UTC is +0000', () => {
    expect(formatStrftimeZ(T0, 0)).toBe('2021-09-29T15:09:15+0000');
  });

  test('negative offsets, including half hours, and crossing the date line', () => {
    expect(formatStrftimeZ(T0, -330)).toBe('2021-09-29T09:39:15-0530');
    expect(formatStrftimeZ(T0, -600)).toBe('2021-09-29T05:09:15-1000');
    expect(formatStrftimeZ(T0, -960)).toBe('2021-09-28T23:09:15-1600');
    expect(formatStrftimeZ(T0, 525)).toBe('2021-09-29T23:54:15+0845');
    expect(formatStrftimeZ(T0, 780)).toBe('2021-09-30T04:09:15+1300');
  });

  test('drops the fraction (whole seconds, rounding down)', () => {
    expect(formatStrftimeZ(T0 + 999_999, 60)).toBe('2021-09-29T16:09:15+0100');
    expect(formatStrftimeZ(-1, 0)).toBe('1969-12-31T23:59:59+0000');
  });

  test('echoes a parsed timestamp as it was sent', () => {
    for (const text of ['2021-09-29T16:09:15+0100', '2021-09-29T09:39:15-0530', '2024-02-29T00:00:00+0000']) {
      const { us, offsetMinutes } = parseTimestamp(text, 'ts');
      expect(formatStrftimeZ(us, offsetMinutes)).toBe(text);
    }
  });
});

describe('epochToMicros', () => {
  test('integer seconds, milliseconds and microseconds', () => {
    expect(epochToMicros(1_632_928_155, 's', 'ts')).toBe(T0);
    expect(epochToMicros(1_632_928_155_123, 'ms', 'ts')).toBe(T0 + 123_000);
    expect(epochToMicros(1_632_928_155_123_456, 'us', 'ts')).toBe(T0 + 123_456);
    expect(epochToMicros(0, 's', 'ts')).toBe(0);
    expect(epochToMicros(-1, 's', 'ts')).toBe(-1_000_000);
  });

  test('fractional seconds and milliseconds down to a microsecond', () => {
    expect(epochToMicros(1_632_928_155.5, 's', 'ts')).toBe(T0 + 500_000);
    expect(epochToMicros(1_632_928_155.123456, 's', 'ts')).toBe(T0 + 123_456);
    expect(epochToMicros(1_632_928_155.000001, 's', 'ts')).toBe(T0 + 1);
    expect(epochToMicros(1_632_928_155_123.456, 'ms', 'ts')).toBe(T0 + 123_456);
    expect(epochToMicros(1_632_928_155_000.5, 'ms', 'ts')).toBe(T0 + 500);
  });

  test('microsecond fractions whose product with 10^6 is not exact in binary are still accepted', () => {
    // 1.000001 * 1e6 === 1000000.9999999999 in doubles; the client meant 1000001 us.
    expect(epochToMicros(1.000001, 's', 'ts')).toBe(1_000_001);
    expect(epochToMicros(0.001001, 's', 'ts')).toBe(1_001);
    expect(epochToMicros(1_090_013_420.143989, 's', 'ts')).toBe(1_090_013_420_143_989);
    expect(epochToMicros(1_108_847_185.881847, 's', 'ts')).toBe(1_108_847_185_881_847);
    expect(epochToMicros(1.001, 'ms', 'ts')).toBe(1_001);
  });

  test('every microsecond-precise decimal in a sample is accepted exactly', () => {
    // Deterministic sample across 1970-2200: seconds and milliseconds written with up to 6/3 decimals.
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0);
    for (let i = 0; i < 20_000; i++) {
      const us = Math.floor((next() / 2 ** 32) * 7_000_000_000) * 1_000_000 + (next() % 1_000_000);
      expect(epochToMicros(Number((us / 1e6).toFixed(6)), 's', 'ts')).toBe(us);
      const msUs = us - (us % 1000);
      expect(epochToMicros(Number((msUs / 1e3).toFixed(3)), 'ms', 'ts')).toBe(msUs);
    }
  });

  test('finer than a microsecond is rejected', () => {
    validationError(() => epochToMicros(1_632_928_155_123_456.5, 'us', 'ts'), 'ts');
    validationError(() => epochToMicros(1_632_928_155_123.4565, 'ms', 'ts'), 'ts');
    validationError(() => epochToMicros(1.0000005, 's', 'ts'), 'ts');
    validationError(() => epochToMicros(0.5, 'us', 'ts'), 'ts');
  });

  test.each([['1632928155'], [null], [undefined], [Number.NaN], [Number.POSITIVE_INFINITY], [{}], [true]])(
    'non-numbers are rejected: %j',
    (value) => {
      const error = validationError(() => epochToMicros(value, 's', 'vital.ts'), 'vital.ts');
      expect(error.message).toMatch(/seconds/);
    },
  );

  test('the unit is named in the message', () => {
    expect(validationError(() => epochToMicros('x', 'ms', 'f'), 'f').message).toMatch(/milliseconds/);
    expect(validationError(() => epochToMicros('x', 'us', 'f'), 'f').message).toMatch(/microseconds/);
  });

  test('out of range (years 1900-2200) is rejected, the bounds are accepted', () => {
    const min = -2_208_988_800; // 1900-01-01T00:00:00Z
    const max = 7_289_654_399; // 2200-12-31T23:59:59Z
    expect(epochToMicros(min, 's', 'ts')).toBe(min * 1_000_000);
    expect(epochToMicros(max, 's', 'ts')).toBe(max * 1_000_000);
    expect(epochToMicros(max * 1_000_000 + 999_999, 'us', 'ts')).toBe(max * 1_000_000 + 999_999);
    validationError(() => epochToMicros(min - 1, 's', 'ts'), 'ts');
    validationError(() => epochToMicros(max + 1, 's', 'ts'), 'ts');
    validationError(() => epochToMicros(min * 1_000_000 - 1, 'us', 'ts'), 'ts');
    validationError(() => epochToMicros(1e20, 'ms', 'ts'), 'ts');
    expect(validationError(() => epochToMicros(-1e15, 's', 'ts'), 'ts').message).toMatch(/range/);
  });
});

describe('formatUtc agrees with Date.prototype.toISOString across the supported range', () => {
  test('10,000 instants from 1900 to 2200, with and without fractions, and month/leap-day edges', () => {
    const viaDate = (us: number) => {
      const ms = Math.floor(us / 1000);
      const micros = us - ms * 1000;
      const iso = new Date(ms).toISOString();
      if (micros !== 0) return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
      return iso.slice(20, 23) === '000' ? `${iso.slice(0, 19)}Z` : iso;
    };
    const lo = Date.UTC(1900, 0, 1) * 1000;
    const hi = Date.UTC(2200, 11, 31, 23, 59, 59) * 1000;
    let x = 12345;
    const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x / 2 ** 31);
    const samples = Array.from({ length: 10_000 }, (_, i) => {
      const us = Math.floor(lo + next() * (hi - lo));
      return i % 3 === 0 ? us - (us % 1_000_000) : i % 3 === 1 ? us - (us % 1000) : us;
    });
    samples.push(Date.UTC(2000, 1, 29) * 1000, Date.UTC(1900, 1, 28, 23, 59, 59) * 1000, Date.UTC(2100, 2, 1) * 1000 - 1, 0, -1);
    for (const us of samples) expect(formatUtc(us)).toBe(viaDate(us));
  });
});

describe('parseTimestamp accepts exactly what an independent RFC 3339 reference accepts', () => {
  test('20,000 generated strings, valid and subtly invalid, give the same instant or an error', () => {
    const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;
    const reference = (s: string): string => {
      const m = RFC3339.exec(s);
      if (m === null) return 'error';
      const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as number[];
      const leap = year! % 4 === 0 && (year! % 100 !== 0 || year! % 400 === 0);
      const dim = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month! - 1] ?? 0;
      if (year! < 1900 || year! > 2200 || day! < 1 || day! > dim || hour! > 23 || minute! > 59 || second! > 59) return 'error';
      let offset = 0;
      if (m[8] === undefined) {
        if (+m[10]! > 23 || +m[11]! > 59) return 'error';
        offset = (m[9] === '-' ? -1 : 1) * (+m[10]! * 60 + +m[11]!);
      }
      const micros = m[7] === undefined ? 0 : +(m[7] + '00000').slice(0, 6);
      return String((Date.UTC(year!, month! - 1, day!, hour!, minute!, second!) / 1000 - offset * 60) * 1e6 + micros);
    };
    let x = 7;
    const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x / 2 ** 31);
    const pick = (options: string[]) => options[Math.floor(next() * options.length)]!;
    const two = (max: number) => String(Math.floor(next() * max)).padStart(2, '0');
    for (let i = 0; i < 20_000; i++) {
      const s =
        `${1850 + Math.floor(next() * 400)}-${two(14)}-${two(33)}${pick(['T', 't', ' ', 'T'])}${two(26)}:${two(62)}:${two(62)}` +
        pick(['', '', '.', '.1', '.123', '.123456', '.1234567', '.123456789', '.1234567890', '.12a']) +
        pick(['Z', 'z', '+01:00', '-05:30', '+0100', '+1', '+24:00', '+01:60', '', ' Z', 'Zz', '+01:00x']);
      let got: string;
      try {
        got = String(parseTimestamp(s, 'ts').us);
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        got = 'error';
      }
      expect(got, s).toBe(reference(s));
    }
  });
});

describe('parseTimestamp agrees with a plain reference parser on valid and corrupted texts in any order', () => {
  // The reference: the RFC 3339 grammar as a regex, field ranges, Date.UTC. Independent of the
  // parser's fast path (and of what it remembers of the previous text).
  const GRAMMAR = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):?(\d{2}))$/;
  function reference(s: string): number | undefined {
    const m = GRAMMAR.exec(s);
    if (m === null) return undefined;
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    if (year < 1900 || year > 2200 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined;
    if (day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
    let offset = 0;
    if (m[8] !== undefined) {
      if (+m[9]! > 23 || +m[10]! > 59) return undefined;
      offset = (m[8] === '-' ? -1 : 1) * (+m[9]! * 60 + +m[10]!);
    }
    const micros = m[7] === undefined ? 0 : Number(m[7].padEnd(6, '0').slice(0, 6));
    return (Date.UTC(year, month - 1, day, hour, minute, second) / 1000 - offset * 60) * 1_000_000 + micros;
  }

  test('20,000 texts: runs within one hour, hour and day changes, and one-character corruptions', () => {
    let seed = 42;
    const random = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    const zones = ['Z', 'z', '+00:00', '-05:30', '+0100', '+23:59', '-0000'];
    const corruptions = '0123456789:-+.TtZz x';
    let instant = Date.UTC(1999, 11, 31, 22, 59, 0);
    for (let i = 0; i < 20_000; i++) {
      instant += random(10) === 0 ? random(3 * 86_400_000) : random(5000);
      const fraction = ['', '.1', '.123', '.123456', '.123456789'][random(5)]!;
      let text = `${new Date(instant).toISOString().slice(0, 19)}${fraction}${zones[random(zones.length)]}`;
      if (random(3) === 0) {
        const at = random(text.length);
        text = text.slice(0, at) + corruptions[random(corruptions.length)] + text.slice(at + 1);
      }
      const expected = reference(text);
      if (expected === undefined) expect(() => parseTimestamp(text, 'ts'), text).toThrow(ValidationError);
      else expect(parseTimestamp(text, 'ts').us, text).toBe(expected);
    }
  });
});
