import { MessageChannel } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { formatUtcDigits } from '../../src/domain/timestamp.js';
import {
  canonicalUtcDigits,
  chunkHas,
  chunkInstants,
  chunkLine,
  decodeChunk,
  decodeChunkTail,
  encodeSealed,
  integerText,
  sealText,
  type ChunkReading,
} from '../../src/store/sqlite/chunk.js';
import { Codec } from '../../src/store/sqlite/codec.js';
import { toColumns, transferList, type ReadingColumns } from '../../src/store/sqlite/columns.js';

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

describe('toColumns buffers go to the writer thread whole', () => {
  const r = (tsUs: number, payload: string | null) => ({ deviceId: 'a', tsUs, count: 1, tsText: null, payload });

  test.each([
    ['a one-reading batch', [r(1, null)]],
    // ASCII payloads written in a third of their worst case: the text is copied to its exact size.
    ['a batch far under its worst case', [r(1, `{"v":"${'x'.repeat(40_000)}"}`), r(2, null)]],
  ])('%s is transferred, not cloned', async (_name, readings) => {
    const cols = toColumns(readings);
    const expected = Buffer.from(cols.text).toString('utf8');
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<ReadingColumns>((resolve) => port2.once('message', resolve));
    port1.postMessage(cols, transferList(cols));
    const got = await received;
    port1.close();
    // A transferred buffer is detached on the sending side; a cloned one (Buffer's shared pool,
    // which cannot be transferred) would still hold its bytes there.
    expect(cols.text.buffer.byteLength).toBe(0);
    expect(cols.tsUs.buffer.byteLength).toBe(0);
    expect(Buffer.from(got.text).toString('utf8')).toBe(expected);
    expect(got.text.buffer.byteLength).toBeLessThan(2 * got.text.byteLength + 64 * 1024);
  });
});

describe('timestamp texts in canonical UTC form', () => {
  const at = (text: string) => Date.parse(text) * 1000 + (text.length === 27 ? Number(text.slice(23, 26)) : 0);

  test('are stored as one digit and read back exactly as they were sent', () => {
    const texts = ['2024-01-01T00:00:00Z', '2024-01-01T00:00:00.000Z', '2024-02-29T23:59:59.999Z', '1900-01-01T00:00:00.000001Z', '2199-12-31T23:59:59.123456Z'];
    for (const text of texts) {
      const line = chunkLine(at(text), 7, text, null);
      expect(line.split('\t')[2]).toBe(String(text.length === 20 ? 0 : text.length === 24 ? 3 : 6));
      expect(decodeChunk(line)).toEqual([{ tsUs: at(text), count: 7, tsText: text, payload: null }]);
    }
  });

  test('other forms are kept as sent', () => {
    // lower-case t or z, an offset (even +00:00), 1, 2, 4, 5 or 9 fraction digits
    const texts = ['2024-01-01t00:00:00Z', '2024-01-01T00:00:00z', '2024-01-01T00:00:00+00:00', '2024-01-01T01:00:00+0100', '2024-01-01T00:00:00.5Z', '2024-01-01T00:00:00.12Z', '2024-01-01T00:00:00.1234Z', '2024-01-01T00:00:00.12345Z', '2024-01-01T00:00:00.123456789Z'];
    for (const text of texts) {
      const line = chunkLine(1, null, text, '{}');
      expect(line.split('\t')[2]).toBe(text);
      expect(decodeChunk(line)[0]!.tsText).toBe(text);
    }
  });
});

describe('toColumns writes the bytes chunkLine writes', () => {
  test('for random readings: negative and large instants, counts or none, texts of every form, payloads with any characters', () => {
    const texts = [null, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00.000001Z', '2024-01-01T02:00:00+02:00', '1969-12-31T23:59:59.5-00:30'];
    const payloads = [null, '{}', '{"v":"é"}', '{"v":"😀","w":[1,2,3]}', '{"a":"\\u0000"}'];
    const readings: Reading[] = Array.from({ length: 5000 }, (_, i) => ({
      deviceId: `d${i % 7}`,
      tsUs: i % 11 === 0 ? -Math.floor(Math.random() * 2e15) : Math.floor(Math.random() * 7.2e15),
      count: i % 5 === 0 ? null : i % 3 === 0 ? 2 ** 31 - 1 : Math.floor(Math.random() * 1e9),
      tsText: texts[i % texts.length]!,
      payload: payloads[i % payloads.length]!,
    }));
    readings.push({ deviceId: 'e', tsUs: 0, count: 0, tsText: null, payload: null }, { deviceId: 'e', tsUs: 1e8, count: 1e8, tsText: null, payload: null });
    const cols = toColumns(readings);
    expect(Buffer.from(cols.text).toString('utf8')).toBe(readings.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join(''));
    expect(cols.ends[readings.length - 1]).toBe(cols.text.byteLength);
  });
});

describe('corrupt chunk text', () => {
  test('is refused with an error, never read in a loop', () => {
    for (const text of ['1\t2\n', 'no tabs at all', '1\t2\t3', '\n\n', `${chunkLine(5, 1, null, null)}garbage\n`]) {
      expect(() => decodeChunk(text), JSON.stringify(text)).toThrow(/corrupt chunk text/);
    }
    expect(decodeChunk(chunkLine(5, 1, null, null) + chunkLine(6, null, null, '{}'))).toHaveLength(2);
  });
});

describe('sealed chunks', () => {
  const texts = [null, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00.000001Z', '2024-01-01T02:00:00+02:00', '1969-12-31T23:59:59.5-00:30'];
  const payloads = [null, '{}', '{"v":"é"}', '{"v":"😀","w":[1,2,3]}', '{"a":"\\u0000"}', '{"temp":21.5}'];
  /** Readings in timestamp order as a chunk holds them; tsText canonical ones made from their instant, as validation would. */
  function randomChunk(n: number, start: number, step: () => number): ChunkReading[] {
    const out: ChunkReading[] = [];
    for (let i = 0, ts = start; i < n; i++, ts += step()) {
      const text = texts[i % texts.length]!;
      const digits = text === null ? -2 : canonicalUtcDigits(text);
      out.push({
        tsUs: ts,
        count: i % 5 === 0 ? null : i % 7 === 0 ? 2 ** 31 - 1 : Math.floor(Math.random() * 1000),
        tsText: digits === -2 ? null : digits >= 0 ? formatUtcDigits(ts, digits) : text,
        payload: payloads[i % payloads.length]!,
      });
    }
    return out;
  }
  const textOf = (readings: ChunkReading[]) => readings.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join('');

  test.each([
    ['steady seconds', () => randomChunk(500, Date.UTC(2024, 0, 1) * 1000, () => 1_000_000)],
    ['irregular microseconds', () => randomChunk(300, 1, () => 1 + Math.floor(Math.random() * 1e9))],
    ['negative instants (before 1970) into positive ones', () => randomChunk(200, -2_208_988_800_000_000, () => Math.floor(Math.random() * 5e13) + 1)],
    ['one reading in 2199', () => randomChunk(1, 7_258_118_399_999_999, () => 1)],
    ['1900 to 2099 in one chunk', () => [...randomChunk(1, -2_208_988_800_000_000, () => 1), ...randomChunk(1, 4_102_444_799_000_000, () => 1)]],
  ])('%s: every codec gives back what the text form gives back, whole, by tail and by instant', (_name, make) => {
    const readings = make();
    const text = textOf(readings);
    for (const codec of [Codec.None, Codec.Deflate, Codec.Brotli]) {
      const blob = encodeSealed(readings, codec)!;
      expect(blob).toBeInstanceOf(Buffer);
      expect(sealText(text, codec)).toEqual(blob); // the writer's path: straight from the text form
      expect(decodeChunk(blob)).toEqual(decodeChunk(text));
      expect(decodeChunk(blob)).toEqual(readings);
      // Without the timestamp texts written out again from the instant (what an aggregate asks for).
      const bare = readings.map((r) => ({ ...r, tsText: r.tsText !== null && canonicalUtcDigits(r.tsText) >= 0 ? null : r.tsText }));
      expect(decodeChunk(blob, { timestampTexts: false })).toEqual(bare);
      expect(decodeChunk(text, { timestampTexts: false })).toEqual(bare);
      for (const from of [readings[0]!.tsUs, readings[readings.length >> 1]!.tsUs, readings.at(-1)!.tsUs, readings.at(-1)!.tsUs + 1, -Infinity]) {
        expect(decodeChunkTail(blob, from)).toEqual(decodeChunkTail(text, from));
      }
      expect(Array.from(chunkInstants(blob))).toEqual(Array.from(chunkInstants(text)));
      for (const r of readings.slice(0, 20)) {
        expect(chunkHas(blob, r.tsUs)).toBe(true);
        expect(chunkHas(blob, r.tsUs + 0.5)).toBe(chunkHas(text, r.tsUs + 0.5));
      }
    }
  });

  test('a steady series takes a small fraction of its text', () => {
    const readings = randomChunk(500, Date.UTC(2024, 0, 1) * 1000, () => 1_000_000).map((r, i) => ({ ...r, count: 1 + (i % 5), tsText: null, payload: `{"temp":${15 + (i % 100) / 10}}` }));
    expect(encodeSealed(readings)!.length).toBeLessThan(Buffer.byteLength(textOf(readings)) / 10);
  });

  test('what it could not give back exactly stays text: encodeSealed refuses it', () => {
    const r = (tsUs: number, count: number | null = 1): ChunkReading => ({ tsUs, count, tsText: null, payload: null });
    expect(encodeSealed([])).toBeUndefined();
    expect(encodeSealed([r(1), r(1)])).toBeUndefined(); // not strictly increasing
    expect(encodeSealed([r(2), r(1)])).toBeUndefined();
    expect(encodeSealed([r(1.5)])).toBeUndefined();
    expect(encodeSealed([r(1, 0.5)])).toBeUndefined();
    expect(encodeSealed([r(-(2 ** 52)), r(2 ** 52)])).toBeUndefined(); // a delta past 2^53
    expect(encodeSealed([r(-2_208_988_800_000_000), r(7_258_118_399_000_000)])).toBeUndefined(); // 1900 and 2199: the same
    expect(sealText(chunkLine(-2_208_988_800_000_000, 1, null, null) + chunkLine(7_258_118_399_000_000, 1, null, null))).toBeUndefined();
    expect(sealText('')).toBeUndefined();
    expect(() => sealText('1\t2\t\n')).toThrow(/corrupt chunk text/);
  });

  test('a corrupt sealed chunk is refused with an error', () => {
    const blob = encodeSealed([{ tsUs: 5, count: 1, tsText: null, payload: '{"a":1}' }, { tsUs: 6, count: null, tsText: null, payload: null }])!;
    const bad = [Buffer.from([9, 1, 2]), Buffer.concat([blob.subarray(0, 1), Buffer.from([7]), blob.subarray(2)]), blob.subarray(0, blob.length - 3), Buffer.from([1, 0, 2, 0, 5])];
    for (const b of bad) expect(() => decodeChunk(b), b.toString('hex')).toThrow(/corrupt chunk|unexpected end|invalid/i);
  });
});
