import { describe, expect, test } from 'vitest';
import { chunkLine, decodeChunk, integerText } from '../../src/store/sqlite/chunk.js';
import { toColumns } from '../../src/store/sqlite/columns.js';

describe('integerText', () => {
  test('writes what String writes, for every kind of integer a timestamp can be', () => {
    const samples = [0, 1, -1, 99_999_999, 100_000_000, 100_000_001, 199_999_999, 1_000_000_000_000_000, 1_632_928_155_000_000];
    samples.push(7_289_654_399_999_999, -2_208_988_800_000_000, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, 1.5, -0.5);
    // Low halves with leading zeros, and random values across the whole range.
    for (let high = 1; high < 1e8; high *= 7) for (const low of [0, 1, 10, 9_999_999, 10_000_000, 99_999_999]) samples.push(high * 1e8 + low);
    for (let i = 0; i < 10_000; i++) samples.push(Math.floor((Math.random() * 2 - 0.5) * 9e15));
    for (const n of samples) expect(integerText(n)).toBe(String(n));
  });
});

describe('toColumns', () => {
  test('byte offsets of every line, ASCII or not, and one device per run', () => {
    const r = (deviceId: string, tsUs: number, payload: string | null) => ({ deviceId, tsUs, count: 1, tsText: null, payload });
    const readings = [r('a', 1e15, '{"v":"😀"}'), r('a', 1e15 + 1, null), r('b', 5, '{"v":"é"}'), r('a', 7, '"x"')];
    const cols = toColumns(readings);
    expect(cols.devices).toEqual(['a', 'b', 'a']);
    expect(Array.from(cols.runEnds)).toEqual([2, 3, 4]);
    const text = Buffer.from(cols.text);
    let start = 0;
    readings.forEach((reading, i) => {
      const line = text.toString('utf8', start, cols.ends[i]);
      expect(line).toBe(chunkLine(reading.tsUs, 1, null, reading.payload));
      expect(decodeChunk(line)).toEqual([{ tsUs: reading.tsUs, count: 1, tsText: null, payload: reading.payload }]);
      start = cols.ends[i]!;
    });
    expect(start).toBe(text.length);
  });
});
