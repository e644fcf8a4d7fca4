import { describe, expect, test } from 'vitest';
import { parseBody, parseLine, timestampMicros } from '../../src/ingest/line-protocol.js';

/** The line-protocol parser, with the escaping cases of the InfluxDB documentation. */

const fields = (line: string) => Object.fromEntries([...parseLine(line, 1).fields].map(([k, v]) => [k, v.value]));
const tags = (line: string) => Object.fromEntries(parseLine(line, 1).tags);

describe('parseLine', () => {
  test('measurement, tags, fields of every type, and a timestamp', () => {
    const p = parseLine('weather,location=us-midwest,season=summer temperature=82,humidity=71i,count=3u,ok=true,note="hot" 1465839830100400200', 7);
    expect(p.line).toBe(7);
    expect(p.measurement).toBe('weather');
    expect(Object.fromEntries(p.tags)).toEqual({ location: 'us-midwest', season: 'summer' });
    expect([...p.fields].map(([k, v]) => [k, v.kind, v.value])).toEqual([
      ['temperature', 'float', 82],
      ['humidity', 'integer', 71],
      ['count', 'integer', 3],
      ['ok', 'boolean', true],
      ['note', 'string', 'hot'],
    ]);
    expect(p.timestamp).toBe('1465839830100400200');
    expect(parseLine('m v=1', 1).timestamp).toBeNull();
  });

  test('escaped commas, spaces and equals signs in measurement, tag keys and values, and field keys', () => {
    const p = parseLine('my\\ weather\\,x,loc\\ ation=us\\,mid\\ west,a\\=b=c\\=d temp\\ f=1', 1);
    expect(p.measurement).toBe('my weather,x');
    expect(Object.fromEntries(p.tags)).toEqual({ 'loc ation': 'us,mid west', 'a=b': 'c=d' });
    expect(fields('my\\ weather\\,x,loc\\ ation=us\\,mid\\ west,a\\=b=c\\=d temp\\ f=1')).toEqual({ 'temp f': 1 });
  });

  test('string fields keep commas, spaces and equals signs; \\" and \\\\ are unescaped', () => {
    expect(fields('m s="a, b = c",t="say \\"hi\\"",u="back\\\\slash" 1')).toEqual({ s: 'a, b = c', t: 'say "hi"', u: 'back\\slash' });
  });

  test('every spelling of the booleans; floats with exponents and signs', () => {
    expect(fields('m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE')).toEqual({
      a: true, b: true, c: true, d: true, e: true, f: false, g: false, h: false, i: false, j: false,
    });
    expect(fields('m a=-1.5,b=1e3,c=+2,d=.5,e=-12i')).toEqual({ a: -1.5, b: 1000, c: 2, d: 0.5, e: -12 });
  });

  test.each([
    ['', 'no measurement'],
    ['m', 'no fields'],
    ['m,t v=1', 'tag "t" has no value'],
    ['m v=', 'field "v" has no value'],
    ['m v=hot', 'invalid value'],
    ['m v="open', 'not closed'],
    ['m v=1 12x', 'not an integer'],
    ['m v=1u2', 'invalid value'],
  ])('%j is refused: %s', (line, message) => {
    expect(() => parseLine(line, 1)).toThrow(message);
  });
});

describe('parseBody', () => {
  test('bad lines are reported by line number while good ones are kept; blank lines and comments skipped', () => {
    const { points, errors } = parseBody('# comment\nm v=1 1\n\nm v=oops 2\r\nm,t=a v=3 3\nbroken\n');
    expect(points.map((p) => [p.line, p.timestamp])).toEqual([
      [2, '1'],
      [5, '3'],
    ]);
    expect(errors.map((e) => e.line)).toEqual([4, 6]);
  });
});

describe('timestampMicros', () => {
  test('each precision to microseconds; nanoseconds past 2^53 truncated exactly', () => {
    expect(timestampMicros('1700000000', 's')).toBe(1_700_000_000_000_000);
    expect(timestampMicros('1700000000123', 'ms')).toBe(1_700_000_000_123_000);
    expect(timestampMicros('1700000000123456', 'us')).toBe(1_700_000_000_123_456);
    expect(timestampMicros('1700000000123456789', 'ns')).toBe(1_700_000_000_123_456);
    expect(timestampMicros('999', 'ns')).toBe(0);
    expect(timestampMicros('-1500', 'ns')).toBe(-2);
  });
});
