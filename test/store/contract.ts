/**
 * The TelemetryStore contract, run against every backend. It speaks only the TelemetryStore
 * interface and domain types, so a backend's test file is a call to `runStoreContract` with a
 * factory that opens a fresh, empty store.
 *
 * Opening a store is not free (SQLite starts a writer thread), so each group of tests shares one
 * store: groups that depend on the whole content (listings) get a store of their own, and tests
 * that only look at their own devices use device ids no other test uses.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { InvalidCursorError, StorageUnavailableError } from '../../src/domain/errors.js';
import { issueKey } from '../../src/domain/api-key.js';
import type { Reading } from '../../src/domain/reading.js';
import { formatUtc, parseTimestamp } from '../../src/domain/timestamp.js';
import type {
  AggregateBucket,
  DeviceListQuery,
  DeviceSort,
  DeviceSummary,
  SortOrder,
  TelemetryStore,
} from '../../src/store/types.js';

export interface OpenedStore {
  readonly store: TelemetryStore;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000_000;
/** 2024-01-01T00:00:00Z in microseconds (aligned to every bucket width used below). */
const BASE = Date.UTC(2024, 0, 1) * 1000;
const at = (minutes: number): number => BASE + minutes * MINUTE;

interface ReadingFields {
  count?: number | null;
  /** Any JSON value: a store keeps whatever payload text it is given. */
  payload?: unknown;
  /** Defaults to the UTC form of the instant; null as for a numeric epoch. */
  tsText?: string | null;
}

function reading(deviceId: string, tsUs: number, fields: ReadingFields = {}): Reading {
  return {
    deviceId,
    tsUs,
    tsText: fields.tsText === undefined ? formatUtc(tsUs) : fields.tsText,
    count: fields.count ?? null,
    payload: fields.payload == null ? null : JSON.stringify(fields.payload),
  };
}

/** A reading from an RFC 3339 timestamp, kept as sent (as the transports do). */
function fromText(deviceId: string, text: string, fields: Omit<ReadingFields, 'tsText'> = {}): Reading {
  return reading(deviceId, parseTimestamp(text, 'ts').us, { ...fields, tsText: text });
}

const flags = (stored: Uint8Array): number[] => Array.from(stored);
const ids = (items: readonly { deviceId: string }[]): string[] => items.map((i) => i.deviceId);
const times = (items: readonly Reading[]): number[] => items.map((r) => r.tsUs);
const key = (r: Reading): string => `${r.deviceId}@${r.tsUs}`;

let unique = 0;
/** A device id no other test in this run uses. */
const dev = (label: string): string => `${label}-${++unique}-${process.pid}`;

/** Registers beforeAll/afterAll for one store shared by the enclosing describe; returns an accessor. */
function sharedStore(open: () => Promise<OpenedStore>, seed?: (store: TelemetryStore) => Promise<void>): () => TelemetryStore {
  let opened: OpenedStore | undefined;
  beforeAll(async () => {
    opened = await open();
    if (seed !== undefined) await seed(opened.store);
  });
  afterAll(async () => {
    await opened?.cleanup();
  });
  return () => {
    if (opened === undefined) throw new Error('store not opened');
    return opened.store;
  };
}

export function runStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`TelemetryStore contract: ${name}`, () => {
    describe('one shared store, each test with devices of its own', () => {
      const store = sharedStore(open);

      describe('appendBatch, identity and summaries', () => {

        test('returns one flag per reading, in input order: 1 stored, 0 duplicate', async () => {
          const a = dev('a');
          const b = dev('b');
          const c = dev('c');
          const first = await store().appendBatch([reading(a, at(1)), reading(b, at(1)), reading(a, at(2))]);
          expect(first).toBeInstanceOf(Uint8Array);
          expect(flags(first)).toEqual([1, 1, 1]);
          const second = await store().appendBatch([
            reading(a, at(3)),
            reading(a, at(1)),
            reading(c, at(1)),
            reading(b, at(1)),
            reading(b, at(0)),
            reading(a, at(2)),
          ]);
          expect(flags(second)).toEqual([1, 0, 1, 0, 1, 0]);
          expect((await store().getDevice(a))?.readingCount).toBe(3);
          expect((await store().getDevice(b))?.readingCount).toBe(2);
          expect((await store().getDevice(c))?.readingCount).toBe(1);
        });

        test('an empty batch stores nothing and returns no flags', async () => {
          const stored = await store().appendBatch([]);
          expect(stored).toBeInstanceOf(Uint8Array);
          expect(stored.length).toBe(0);
        });

        test('the same instant on different devices is not a duplicate', async () => {
          const a = dev('same-ts-a');
          const b = dev('same-ts-b');
          expect(flags(await store().appendBatch([reading(a, at(7), { count: 1 }), reading(b, at(7), { count: 2 })]))).toEqual([1, 1]);
          expect((await store().getDevice(a))?.cumulativeCount).toBe(1);
          expect((await store().getDevice(b))?.cumulativeCount).toBe(2);
        });

        test('first write wins: a later duplicate with another count and payload changes nothing', async () => {
          const d = dev('fww');
          const original = fromText(d, '2021-09-29T16:09:15+01:00', { count: 5, payload: { v: 1 } });
          expect(flags(await store().appendBatch([original]))).toEqual([1]);
          const before = await store().getDevice(d);
          const again = fromText(d, '2021-09-29T16:09:15+01:00', { count: 9, payload: { v: 2 } });
          expect(flags(await store().appendBatch([again]))).toEqual([0]);
          expect(await store().getDevice(d)).toEqual(before);
          expect(before).toEqual({
            deviceId: d,
            firstTsUs: 1_632_928_155_000_000,
            latestTsUs: 1_632_928_155_000_000,
            latestTsText: '2021-09-29T16:09:15+01:00',
            latestPayload: '{"v":1}',
            readingCount: 1,
            cumulativeCount: 5,
          } satisfies DeviceSummary);
          const history = (await store().deviceReadings(d, { order: 'asc' })).items;
          expect(history).toHaveLength(1);
          expect(history[0]).toMatchObject({
            deviceId: d,
            tsUs: 1_632_928_155_000_000,
            tsText: '2021-09-29T16:09:15+01:00',
            count: 5,
            payload: '{"v":1}',
          });
        });

        test('the same instant written with another UTC offset is a duplicate', async () => {
          const d = dev('offset');
          expect(flags(await store().appendBatch([fromText(d, '2021-09-29T16:09:15+01:00', { count: 2 })]))).toEqual([1]);
          const stored = await store().appendBatch([
            fromText(d, '2021-09-29T15:09:15Z', { count: 3 }),
            fromText(d, '2021-09-29T09:39:15-0530', { count: 4 }),
          ]);
          expect(flags(stored)).toEqual([0, 0]);
          const summary = await store().getDevice(d);
          expect(summary?.readingCount).toBe(1);
          expect(summary?.cumulativeCount).toBe(2);
          expect(summary?.latestTsText).toBe('2021-09-29T16:09:15+01:00');
        });

        test('identity is at microsecond precision: readings 1 µs apart are distinct', async () => {
          const d = dev('micro');
          const stored = await store().appendBatch([
            fromText(d, '2021-09-29T15:09:15Z', { count: 1 }),
            fromText(d, '2021-09-29T15:09:15.000001Z', { count: 1 }),
            fromText(d, '2021-09-29T15:09:15.0000019Z', { count: 1 }),
            fromText(d, '2021-09-29T15:09:15.000002Z', { count: 1 }),
          ]);
          expect(flags(stored)).toEqual([1, 1, 0, 1]);
          expect(times((await store().deviceReadings(d, { order: 'asc' })).items)).toEqual([
            1_632_928_155_000_000, 1_632_928_155_000_001, 1_632_928_155_000_002,
          ]);
        });

        test('duplicates inside one batch: the first in batch order wins', async () => {
          const history = async (d: string) =>
            (await store().deviceReadings(d, { order: 'asc' })).items.map((r) => [r.tsUs, r.count, r.tsText, r.payload]);

          // Adjacent: one device's readings at one instant, one right after the other in the batch.
          const a = dev('inbatch-adjacent');
          const adjacent = await store().appendBatch([
            reading(a, at(5), { count: 1 }),
            reading(a, at(7), { count: 2, payload: { n: 'first' } }),
            reading(a, at(7), { count: 5, payload: { n: 'second' } }),
            reading(a, at(7), { count: 9, payload: { n: 'third' } }),
            reading(a, at(6), { count: 1 }),
          ]);
          expect(flags(adjacent)).toEqual([1, 1, 0, 0, 1]);
          expect(await store().getDevice(a)).toMatchObject({
            readingCount: 3,
            cumulativeCount: 4,
            latestTsUs: at(7),
            latestPayload: '{"n":"first"}',
          });
          expect(await history(a)).toEqual([
            [at(5), 1, formatUtc(at(5)), null],
            [at(6), 1, formatUtc(at(6)), null],
            [at(7), 2, formatUtc(at(7)), '{"n":"first"}'],
          ]);

          // Adjacent, the whole batch, the same instant written with two offsets: the first's text stays.
          const o = dev('inbatch-offsets');
          const offsets = await store().appendBatch([
            fromText(o, '2021-09-29T16:09:15+01:00', { count: 3, payload: { n: 'first' } }),
            fromText(o, '2021-09-29T15:09:15Z', { count: 4, payload: { n: 'second' } }),
          ]);
          expect(flags(offsets)).toEqual([1, 0]);
          expect(await store().getDevice(o)).toMatchObject({
            readingCount: 1,
            cumulativeCount: 3,
            latestTsText: '2021-09-29T16:09:15+01:00',
            latestPayload: '{"n":"first"}',
          });
          expect(await history(o)).toEqual([[1_632_928_155_000_000, 3, '2021-09-29T16:09:15+01:00', '{"n":"first"}']]);

          // Split: another device's readings, and another instant, between the duplicates.
          const s = dev('inbatch-split');
          const b = dev('inbatch-other');
          const split = await store().appendBatch([
            reading(s, at(7), { count: 2, payload: { n: 'first' } }),
            reading(b, at(7), { count: 1 }),
            reading(s, at(6), { count: 1 }),
            reading(s, at(7), { count: 5, payload: { n: 'second' } }),
            reading(b, at(7), { count: 100 }),
            reading(s, at(7), { count: 9, payload: { n: 'third' } }),
          ]);
          expect(flags(split)).toEqual([1, 1, 1, 0, 0, 0]);
          expect(await store().getDevice(s)).toMatchObject({
            readingCount: 2,
            cumulativeCount: 3,
            latestTsUs: at(7),
            latestPayload: '{"n":"first"}',
          });
          expect(await store().getDevice(b)).toMatchObject({ readingCount: 1, cumulativeCount: 1 });
          expect(await history(s)).toEqual([
            [at(6), 1, formatUtc(at(6)), null],
            [at(7), 2, formatUtc(at(7)), '{"n":"first"}'],
          ]);
          expect(await history(b)).toEqual([[at(7), 1, formatUtc(at(7)), null]]);
        });

        test('getDevice of an unknown device is undefined', async () => {
          expect(await store().getDevice(dev('never-written'))).toBeUndefined();
          expect(await store().getDevice('')).toBeUndefined();
        });

        test('a newer reading replaces the latest state', async () => {
          const d = dev('newer');
          await store().appendBatch([reading(d, at(10), { count: 1, payload: { temp: 1 } })]);
          await store().appendBatch([fromText(d, '2024-01-01T02:20:00.5+02:00', { count: 2, payload: { temp: 2 } })]);
          expect(await store().getDevice(d)).toEqual({
            deviceId: d,
            firstTsUs: at(10),
            latestTsUs: at(20) + 500_000,
            latestTsText: '2024-01-01T02:20:00.5+02:00',
            latestPayload: '{"temp":2}',
            readingCount: 2,
            cumulativeCount: 3,
          } satisfies DeviceSummary);
        });

        test('out of order: a late older reading counts but does not replace the latest', async () => {
          const d = dev('late');
          await store().appendBatch([reading(d, at(30), { count: 4, payload: { state: 'new' } })]);
          expect(flags(await store().appendBatch([reading(d, at(20), { count: 3, payload: { state: 'old' } })]))).toEqual([1]);
          expect(await store().getDevice(d)).toEqual({
            deviceId: d,
            firstTsUs: at(20),
            latestTsUs: at(30),
            latestTsText: formatUtc(at(30)),
            latestPayload: '{"state":"new"}',
            readingCount: 2,
            cumulativeCount: 7,
          } satisfies DeviceSummary);
          const history = (await store().deviceReadings(d, { order: 'asc' })).items;
          expect(history.map((r) => [r.tsUs, r.count, r.payload])).toEqual([
            [at(20), 3, '{"state":"old"}'],
            [at(30), 4, '{"state":"new"}'],
          ]);
        });

        test('out of order within one batch: the greatest ts is the latest, the smallest the first', async () => {
          const d = dev('batch-order');
          await store().appendBatch([
            reading(d, at(10), { count: 1, payload: { i: 0 } }),
            reading(d, at(9), { count: 1, payload: { i: 1 } }),
            reading(d, at(11), { count: 1, payload: { i: 2 }, tsText: '2024-01-01T01:11:00+01:00' }),
            reading(d, at(8), { count: 1, payload: { i: 3 } }),
          ]);
          await store().appendBatch([reading(d, at(10.5), { count: 1, payload: { i: 4 } }), reading(d, at(3), { count: 1 })]);
          expect(await store().getDevice(d)).toEqual({
            deviceId: d,
            firstTsUs: at(3),
            latestTsUs: at(11),
            latestTsText: '2024-01-01T01:11:00+01:00',
            latestPayload: '{"i":2}',
            readingCount: 6,
            cumulativeCount: 6,
          } satisfies DeviceSummary);
        });

        test('readings without a count add to readingCount but not to cumulativeCount', async () => {
          const d = dev('nocount');
          await store().appendBatch([reading(d, at(1)), reading(d, at(2), { count: 0 }), reading(d, at(3), { count: 6 })]);
          await store().appendBatch([reading(d, at(4))]);
          expect(await store().getDevice(d)).toMatchObject({ readingCount: 4, cumulativeCount: 6 });
          expect(((await store().deviceReadings(d, { order: 'asc' })).items).map((r) => r.count)).toEqual([null, 0, 6, null]);
        });

        test("latestTsText and latestPayload are the latest reading's, null when it had none", async () => {
          const d = dev('nulls');
          await store().appendBatch([reading(d, at(1), { payload: { p: 1 } })]);
          await store().appendBatch([reading(d, at(2), { tsText: null })]);
          expect(await store().getDevice(d)).toMatchObject({
            latestTsUs: at(2),
            latestTsText: null,
            latestPayload: null,
          });
          const history = (await store().deviceReadings(d, { order: 'desc' })).items;
          expect(history.map((r) => [r.tsText, r.payload])).toEqual([
            [null, null],
            [formatUtc(at(1)), '{"p":1}'],
          ]);
        });

        test('cumulative sums stay exact over a large batch with many devices', async () => {
          const devices = Array.from({ length: 40 }, (_, i) => dev(`bulk${i}`));
          const batch: Reading[] = [];
          const expected = new Map<string, { n: number; sum: number }>();
          for (let i = 0; i < 4000; i++) {
            const d = devices[(i * 7) % devices.length]!;
            const count = (i * 7919) % 100_000;
            batch.push(reading(d, at(1000) + i * 1_000_003, { count }));
            const e = expected.get(d) ?? { n: 0, sum: 0 };
            e.n++;
            e.sum += count;
            expected.set(d, e);
          }
          const stored = await store().appendBatch(batch);
          expect(stored.length).toBe(4000);
          expect(stored.every((f) => f === 1)).toBe(true);
          // Resending the whole batch stores nothing and changes no total.
          expect((await store().appendBatch(batch)).every((f) => f === 0)).toBe(true);
          for (const [d, e] of expected) {
            expect(await store().getDevice(d)).toMatchObject({ readingCount: e.n, cumulativeCount: e.sum });
          }
        });

        test('large counts sum exactly', async () => {
          const d = dev('big');
          const max = 2 ** 31 - 1;
          await store().appendBatch(Array.from({ length: 1000 }, (_, i) => reading(d, at(i), { count: max })));
          expect((await store().getDevice(d))?.cumulativeCount).toBe(1000 * max);
        });

        test('the extremes of the timestamp range round-trip exactly', async () => {
          const d = dev('extreme');
          const oldest = fromText(d, '1900-01-01T00:00:00Z');
          const newest = fromText(d, '2200-12-31T23:59:59.999999Z');
          expect(flags(await store().appendBatch([newest, oldest]))).toEqual([1, 1]);
          expect(flags(await store().appendBatch([fromText(d, '2200-12-31T17:59:59.999999-06:00')]))).toEqual([0]);
          expect(await store().getDevice(d)).toMatchObject({
            firstTsUs: -2_208_988_800_000_000,
            latestTsUs: 7_289_654_399_999_999,
            latestTsText: '2200-12-31T23:59:59.999999Z',
          });
          expect(times((await store().deviceReadings(d, { order: 'asc' })).items)).toEqual([-2_208_988_800_000_000, 7_289_654_399_999_999]);
        });

        test('device ids and payload text round-trip unchanged', async () => {
          const d = dev("Zähler 'Küche' \"7\" 😀 %_");
          const payload = { text: 'é€😀\\"\'', n: 1.5e-7, nested: { list: [1, 'two', null, true] } };
          await store().appendBatch([reading(d, at(1), { payload })]);
          const summary = await store().getDevice(d);
          expect(summary?.deviceId).toBe(d);
          expect(JSON.parse(summary!.latestPayload!)).toEqual(payload);
          const [r] = (await store().deviceReadings(d, { order: 'asc' })).items;
          expect(r?.deviceId).toBe(d);
          expect(r?.payload).toBe(JSON.stringify(payload));
        });

        test('readings after one with multi-byte text in the same batch keep their own text', async () => {
          // A backend that counts characters where it should count bytes (or the reverse) shifts
          // every later reading of the batch.
          const [a, b] = [dev('mb-ä'), dev('mb-plain')];
          const batch = [
            reading(a, at(1), { payload: { v: 'ascii' } }),
            reading(a, at(2), { payload: { v: 'ü€😀' }, tsText: '2024-01-01T01:02:00+01:00' }),
            reading(b, at(2), { payload: { v: 'after' } }),
            reading(a, at(3), { payload: null, count: 7 }),
            reading(b, at(3), { payload: { v: '😀😀' } }),
          ];
          await store().appendBatch(batch);
          for (const d of [a, b]) {
            const stored = (await store().deviceReadings(d, { order: 'asc' })).items;
            const sent = batch.filter((r) => r.deviceId === d);
            expect(stored.map((r) => [r.tsUs, r.count, r.tsText, r.payload])).toEqual(sent.map((r) => [r.tsUs, r.count, r.tsText, r.payload]));
          }
          expect(await store().getDevice(b)).toMatchObject({ latestPayload: '{"v":"😀😀"}' });
        });
      });

      describe('deviceReadings', () => {
        const H = dev('h');
        const OTHER = dev('other');
        beforeAll(async () => {
          const s = store();
          await s.appendBatch([
            // Arrival order differs from time order on purpose.
            ...[5, 3, 9, 0, 7].map((m) => reading(H, at(m), { count: m, payload: { m } })),
            ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => reading(OTHER, at(m), { count: 100 })),
          ]);
          await s.appendBatch([1, 2, 4, 6, 8].map((m) => reading(H, at(m), { count: m, payload: { m } })));
        });
        const minutes = (rs: readonly Reading[]) => rs.map((r) => (r.tsUs - BASE) / MINUTE);

        test('without bounds: every reading of the device, in the asked order', async () => {
          const asc = (await store().deviceReadings(H, { order: 'asc' })).items;
          expect(minutes(asc)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
          expect(asc.every((r) => r.deviceId === H)).toBe(true);
          expect(asc[3]).toMatchObject({
            deviceId: H,
            tsUs: at(3),
            tsText: formatUtc(at(3)),
            count: 3,
            payload: '{"m":3}',
          });
          expect(minutes((await store().deviceReadings(H, { order: 'desc' })).items)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        });

        test('from is inclusive, to is exclusive', async () => {
          expect(minutes((await store().deviceReadings(H, { fromUs: at(2), toUs: at(5), order: 'asc' })).items)).toEqual([2, 3, 4]);
          expect(minutes((await store().deviceReadings(H, { fromUs: at(2), toUs: at(5), order: 'desc' })).items)).toEqual([4, 3, 2]);
          expect(minutes((await store().deviceReadings(H, { fromUs: at(2) + 1, toUs: at(5) + 1, order: 'asc' })).items)).toEqual([3, 4, 5]);
          expect(minutes((await store().deviceReadings(H, { fromUs: at(7), order: 'asc' })).items)).toEqual([7, 8, 9]);
          expect(minutes((await store().deviceReadings(H, { toUs: at(2), order: 'asc' })).items)).toEqual([0, 1]);
          expect((await store().deviceReadings(H, { fromUs: at(4), toUs: at(4), order: 'asc' })).items).toEqual([]);
        });

        test('limit takes from the start of the asked order', async () => {
          expect(minutes((await store().deviceReadings(H, { order: 'asc', limit: 3 })).items)).toEqual([0, 1, 2]);
          expect(minutes((await store().deviceReadings(H, { order: 'desc', limit: 3 })).items)).toEqual([9, 8, 7]);
          expect(minutes((await store().deviceReadings(H, { fromUs: at(4), order: 'desc', limit: 2 })).items)).toEqual([9, 8]);
          expect(minutes((await store().deviceReadings(H, { toUs: at(4), order: 'desc', limit: 2 })).items)).toEqual([3, 2]);
          expect(minutes((await store().deviceReadings(H, { order: 'asc', limit: 100 })).items)).toHaveLength(10);
        });

        test('cursor continues after the last reading of a page, exclusive, in the asked order, within the range', async () => {
          const first = await store().deviceReadings(H, { fromUs: at(1), toUs: at(8), order: 'asc', limit: 4 });
          expect(minutes(first.items)).toEqual([1, 2, 3, 4]);
          expect(first.nextCursor).not.toBeNull();
          const second = await store().deviceReadings(H, { fromUs: at(1), toUs: at(8), order: 'asc', limit: 4, cursor: first.nextCursor! });
          expect(minutes(second.items)).toEqual([5, 6, 7]);
          expect(second.nextCursor).toBeNull();
          for (const order of ['asc', 'desc'] as const) {
            const walked: number[] = [];
            let cursor: string | undefined;
            for (let i = 0; i < 10; i++) {
              const page = await store().deviceReadings(H, { order, limit: 3, ...(cursor === undefined ? {} : { cursor }) });
              walked.push(...minutes(page.items));
              if (page.nextCursor === null) break;
              cursor = page.nextCursor;
            }
            expect(walked).toEqual(order === 'asc' ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
          }
        });

        test('a cursor of another order or of no listing is refused with InvalidCursorError', async () => {
          const asc = await store().deviceReadings(H, { order: 'asc', limit: 2 });
          await expect(store().deviceReadings(H, { order: 'desc', limit: 2, cursor: asc.nextCursor! })).rejects.toBeInstanceOf(InvalidCursorError);
          for (const cursor of ['', 'garbage', Buffer.from('[1]').toString('base64url'), Buffer.from('["history|asc","x"]').toString('base64url')]) {
            await expect(store().deviceReadings(H, { order: 'asc', cursor })).rejects.toBeInstanceOf(InvalidCursorError);
          }
        });

        test('an unknown device has no readings', async () => {
          expect((await store().deviceReadings('nobody', { order: 'asc' })).items).toEqual([]);
        });
      });

      describe('listDevices: prefixes, ties and arrivals', () => {
        // Every device here starts with a namespace of this run, so prefixes isolate them.
        const ns = `${dev('pfx')}/`;
        const n = (local: string) => ns + local;
        beforeAll(async () => {
          const names = ['room-1', 'room-2', 'roomba', 'hall-1', 'a%b', 'a_b', 'axb', 'Küche-1', 'Küche-2', 'Kuche-3'];
          await store().appendBatch(names.map((name, i) => reading(n(name), at(i), { count: 1 })));
          await store().appendBatch(Array.from({ length: 7 }, (_, i) => reading(n(`tie-${i + 1}`), at(100), { count: 3 })));
          await store().appendBatch(['arr-b', 'arr-d', 'arr-f'].map((name) => reading(n(name), at(200))));
        });

        async function pageIds(query: Omit<DeviceListQuery, 'cursor'>): Promise<string[]> {
          const out: string[] = [];
          let cursor: string | undefined;
          for (let i = 0; i < 1000; i++) {
            const page = await store().listDevices({ ...query, ...(cursor === undefined ? {} : { cursor }) });
            expect(page.items.length).toBeLessThanOrEqual(query.limit);
            out.push(...ids(page.items));
            if (page.nextCursor === null) return out;
            cursor = page.nextCursor;
          }
          throw new Error('listDevices did not reach the last page');
        }

        test('prefix selects devices whose id starts with it, taken literally', async () => {
          const q = async (prefix: string) =>
            (await pageIds({ sort: { by: 'deviceId' }, order: 'asc', limit: 2, prefix: n(prefix) })).map((id) => id.slice(ns.length));
          expect(await q('room-')).toEqual(['room-1', 'room-2']);
          expect(await q('room')).toEqual(['room-1', 'room-2', 'roomba']);
          expect(await q('a%')).toEqual(['a%b']);
          expect(await q('a_')).toEqual(['a_b']);
          expect(await q('Kü')).toEqual(['Küche-1', 'Küche-2']);
          expect(await q('nothing')).toEqual([]);
          expect(await q('room-1')).toEqual(['room-1']);
          expect(await q('')).toHaveLength(20);
        });

        test('an empty prefix is no prefix', async () => {
          const withEmpty = await pageIds({ sort: { by: 'deviceId' }, order: 'asc', limit: 500, prefix: '' });
          const without = await pageIds({ sort: { by: 'deviceId' }, order: 'asc', limit: 500 });
          expect(withEmpty).toEqual(without);
          expect(without).toContain(n('room-1'));
          expect(without).toContain(n('tie-7'));
        });

        test('equal sort values neither skip nor repeat across pages', async () => {
          const expected = [1, 2, 3, 4, 5, 6, 7].map((i) => n(`tie-${i}`));
          for (const sort of [{ by: 'readingCount' }, { by: 'latestTs' }, { by: 'payload', fields: ['missing'] }] as DeviceSort[]) {
            for (const order of ['asc', 'desc'] as const) {
              for (const limit of [1, 2, 3]) {
                const got = await pageIds({ sort, order, limit, prefix: n('tie-') });
                expect(got).toHaveLength(7);
                expect([...got].sort()).toEqual(expected);
              }
            }
          }
        });

        test('a cursor stays valid while new devices arrive', async () => {
          const query = { sort: { by: 'deviceId' }, order: 'asc', limit: 2, prefix: n('arr-') } as const;
          const first = await store().listDevices(query);
          expect(ids(first.items)).toEqual([n('arr-b'), n('arr-d')]);
          expect(first.nextCursor).not.toBeNull();
          // One device before the cursor, two after it.
          await store().appendBatch(['arr-a', 'arr-e', 'arr-g'].map((name) => reading(n(name), at(300))));
          const rest: string[] = [];
          let cursor = first.nextCursor;
          for (let i = 0; cursor !== null && i < 10; i++) {
            const page = await store().listDevices({ ...query, cursor });
            rest.push(...ids(page.items));
            cursor = page.nextCursor;
          }
          expect(rest).toEqual([n('arr-e'), n('arr-f'), n('arr-g')]);
        });

        test('a cursor the store did not issue is rejected as invalid input', async () => {
          for (const cursor of ['not a cursor', '%%%', Buffer.from('null').toString('base64url')]) {
            await expect(
              store().listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 2, cursor }),
            ).rejects.toBeInstanceOf(InvalidCursorError);
          }
        });
      });

      describe('aggregate', () => {
        const every5 = 5 * MINUTE;

        test('equals a brute-force computation: out-of-order batches, duplicates, buckets and ranges cut mid-chunk', async () => {
          const d = dev('agg-brute');
          let seed = 11;
          const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
          // 3,000 readings over ~2 days, sent in shuffled batches with resends: the first write of each instant counts.
          const kept = new Map<number, { count: number | null; t: number | null }>();
          const instants = Array.from({ length: 3000 }, (_, i) => at(i) + Math.floor(random() * 59) * 1_000_000);
          for (let round = 0; round < 12; round++) {
            const batch: Reading[] = [];
            for (let k = 0; k < 400; k++) {
              const ts = instants[Math.floor(random() * instants.length)]!;
              const count = random() < 0.1 ? null : Math.floor(random() * 50);
              const t = random() < 0.2 ? null : Math.round(random() * 400) / 10;
              batch.push(reading(d, ts, { count, payload: t === null ? { other: 1 } : { t } }));
            }
            for (const r of batch) {
              if (!kept.has(r.tsUs)) kept.set(r.tsUs, { count: r.count, t: r.payload === null ? null : ((JSON.parse(r.payload) as { t?: number }).t ?? null) });
            }
            await store().appendBatch(batch);
          }
          const brute = (q: { fromUs: number; toUs: number; everyUs: number }, pick: (v: { count: number | null; t: number | null }) => number | null) => {
            const buckets = new Map<number, number[]>();
            for (const [ts, v] of kept) {
              const value = pick(v);
              if (ts < q.fromUs || ts >= q.toUs || value === null) continue;
              const start = ts - (((ts % q.everyUs) + q.everyUs) % q.everyUs);
              buckets.set(start, [...(buckets.get(start) ?? []), value]);
            }
            return [...buckets.entries()]
              .sort((a, b) => a[0] - b[0])
              .map(([startUs, vs]) => {
                const sum = vs.reduce((x, y) => x + y, 0);
                return { startUs, count: vs.length, sum, min: Math.min(...vs), max: Math.max(...vs), avg: sum / vs.length };
              });
          };
          const queries = [
            { fromUs: at(0), toUs: at(3001), everyUs: 60 * MINUTE },
            { fromUs: at(0), toUs: at(3001), everyUs: 7 * MINUTE },
            { fromUs: at(17) + 30_000_000, toUs: at(2222) + 1, everyUs: 90 * MINUTE },
            { fromUs: at(-100), toUs: at(5000), everyUs: 24 * 60 * MINUTE },
            { fromUs: at(1500), toUs: at(1501), everyUs: MINUTE },
          ];
          for (const q of queries) {
            // Counts are integers, so their sums are exact; payload decimals are summed in another order.
            const close = (got: AggregateBucket[], want: AggregateBucket[]) => {
              expect(got.map((b) => [b.startUs, b.count, b.min, b.max])).toEqual(want.map((b) => [b.startUs, b.count, b.min, b.max]));
              got.forEach((b, i) => {
                expect(b.sum).toBeCloseTo(want[i]!.sum!, 9);
                expect(b.avg).toBeCloseTo(want[i]!.avg!, 9);
              });
            };
            const counts = await store().aggregate(d, { ...q, field: { kind: 'count' } });
            close(counts, brute(q, (v) => v.count));
            expect(counts.map((b) => b.sum)).toEqual(brute(q, (v) => v.count).map((b) => b.sum));
            close(await store().aggregate(d, { ...q, field: { kind: 'payload', name: 't' } }), brute(q, (v) => v.t));
          }
        });

        test('chunks grown by many small in-order appends aggregate exactly, whole and cut', async () => {
          const d = dev('agg-appends');
          let expectedSum = 0;
          let expectedCounted = 0;
          for (let b = 0; b < 150; b++) {
            const batch = Array.from({ length: 4 }, (_, k) => {
              const i = b * 4 + k;
              const count = i % 9 === 0 ? null : i % 13;
              if (count !== null) {
                expectedSum += count;
                expectedCounted++;
              }
              return reading(d, at(i / 6), { count }); // one every 10 s: 100 minutes in all
            });
            await store().appendBatch(batch);
          }
          const day = 24 * 60 * MINUTE;
          const [whole] = await store().aggregate(d, { fromUs: at(0) - day, toUs: at(0) + day, everyUs: day, field: { kind: 'count' } });
          expect(whole).toMatchObject({ count: expectedCounted, sum: expectedSum, min: 0, max: 12 });
          const tens = await store().aggregate(d, { fromUs: at(0), toUs: at(100), everyUs: 10 * MINUTE, field: { kind: 'count' } });
          expect(tens).toHaveLength(10);
          expect(tens.reduce((n, b) => n + b.count, 0)).toBe(expectedCounted);
          expect(tens.reduce((n, b) => n + b.sum!, 0)).toBe(expectedSum);
        });

        test('epoch-aligned buckets of count with count, sum, min, max and avg', async () => {
          const d = dev('agg');
          await store().appendBatch([
            ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => reading(d, at(m), { count: m + 1 })),
            reading(dev('agg-other'), at(1), { count: 1000 }),
          ]);
          expect(await store().aggregate(d, { fromUs: at(0), toUs: at(10), everyUs: every5, field: { kind: 'count' } })).toEqual([
            { startUs: at(0), count: 5, sum: 15, min: 1, max: 5, avg: 3 },
            { startUs: at(5), count: 5, sum: 40, min: 6, max: 10, avg: 8 },
          ]);
        });

        test('from is inclusive, to exclusive; buckets stay aligned to the epoch, not to from', async () => {
          const d = dev('agg-range');
          await store().appendBatch([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => reading(d, at(m), { count: m + 1 })));
          expect(await store().aggregate(d, { fromUs: at(2), toUs: at(7), everyUs: every5, field: { kind: 'count' } })).toEqual([
            { startUs: at(0), count: 3, sum: 12, min: 3, max: 5, avg: 4 },
            { startUs: at(5), count: 2, sum: 13, min: 6, max: 7, avg: 6.5 },
          ]);
        });

        test('empty buckets are omitted; readings without a count are absent', async () => {
          const d = dev('agg-gaps');
          await store().appendBatch([
            reading(d, at(0), { count: 2 }),
            reading(d, at(1)),
            reading(d, at(11)),
            reading(d, at(21), { count: 4 }),
          ]);
          expect(await store().aggregate(d, { fromUs: at(0), toUs: at(60), everyUs: every5, field: { kind: 'count' } })).toEqual([
            { startUs: at(0), count: 1, sum: 2, min: 2, max: 2, avg: 2 },
            { startUs: at(20), count: 1, sum: 4, min: 4, max: 4, avg: 4 },
          ]);
        });

        test('a numeric payload field; text, objects and missing values are absent', async () => {
          const d = dev('agg-payload');
          await store().appendBatch([
            reading(d, at(0), { payload: { temp: 20.5 } }),
            reading(d, at(1), { payload: { temp: 21.5 } }),
            reading(d, at(2), { payload: { temp: 'hot' } }),
            reading(d, at(3), { payload: { temp: { c: 30 } } }),
            reading(d, at(4), { payload: { other: 1 } }),
            reading(d, at(5)),
            reading(d, at(6), { payload: { temp: 'cold' } }),
            reading(d, at(10), { payload: { temp: -3 } }),
          ]);
          expect(
            await store().aggregate(d, { fromUs: at(0), toUs: at(15), everyUs: every5, field: { kind: 'payload', name: 'temp' } }),
          ).toEqual([
            { startUs: at(0), count: 2, sum: 42, min: 20.5, max: 21.5, avg: 21 },
            { startUs: at(10), count: 1, sum: -3, min: -3, max: -3, avg: -3 },
          ]);
        });

        test('only a JSON object has fields: a string, an array or a number as the payload counts as absent', async () => {
          const d = dev('agg-not-object');
          await store().appendBatch([
            reading(d, at(0), { payload: 'text' }),
            reading(d, at(1), { payload: [5, 6] }),
            reading(d, at(2), { payload: 7 }),
            reading(d, at(3), { payload: { length: 4, 0: 1 } }),
          ]);
          const q = { fromUs: at(0), toUs: at(5), everyUs: every5 } as const;
          expect(await store().aggregate(d, { ...q, field: { kind: 'payload', name: 'length' } })).toEqual([{ startUs: at(0), count: 1, sum: 4, min: 4, max: 4, avg: 4 }]);
          expect(await store().aggregate(d, { ...q, field: { kind: 'payload', name: '0' } })).toEqual([{ startUs: at(0), count: 1, sum: 1, min: 1, max: 1, avg: 1 }]);
        });

        test('a JSON boolean is not a number', async () => {
          const d = dev('agg-bool');
          await store().appendBatch([reading(d, at(0), { payload: { on: true } }), reading(d, at(1), { payload: { on: 2 } })]);
          expect(
            await store().aggregate(d, { fromUs: at(0), toUs: at(5), everyUs: every5, field: { kind: 'payload', name: 'on' } }),
          ).toEqual([{ startUs: at(0), count: 1, sum: 2, min: 2, max: 2, avg: 2 }]);
        });

        test('buckets before 1970 round down, not toward zero', async () => {
          const d = dev('agg-1969');
          await store().appendBatch([reading(d, -1, { count: 1 }), reading(d, -1_000_000, { count: 2 }), reading(d, 0, { count: 4 })]);
          expect(
            await store().aggregate(d, { fromUs: -10_000_000, toUs: 10_000_000, everyUs: 1_000_000, field: { kind: 'count' } }),
          ).toEqual([
            { startUs: -1_000_000, count: 2, sum: 3, min: 1, max: 2, avg: 1.5 },
            { startUs: 0, count: 1, sum: 4, min: 4, max: 4, avg: 4 },
          ]);
        });

        test('an unknown device has no buckets', async () => {
          expect(await store().aggregate('nobody', { fromUs: at(0), toUs: at(60), everyUs: every5, field: { kind: 'count' } })).toEqual([]);
        });
      });

      describe('deleteDevice', () => {

        test('removes the device, its summary and its readings, and nothing else', async () => {
          const gone = dev('del');
          const kept = dev('keep');
          await store().appendBatch([
            reading(gone, at(1), { count: 1 }),
            reading(gone, at(2), { count: 2 }),
            reading(kept, at(1), { count: 5 }),
          ]);
          const totalBefore = (await store().listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 1000, offset: 0, withTotal: true })).total!;
          const keptBefore = await store().getDevice(kept);
          expect(await store().deleteDevice(gone)).toBe(true);
          expect(await store().getDevice(gone)).toBeUndefined();
          expect((await store().deviceReadings(gone, { order: 'asc' })).items).toEqual([]);
          const after = await store().listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 1000, offset: 0, withTotal: true });
          expect(after.total).toBe(totalBefore - 1);
          expect(ids(after.items)).not.toContain(gone);
          expect((await store().listRecords({ limit: 1000 })).items.filter((r) => r.deviceId === gone)).toEqual([]);
          expect(await store().getDevice(kept)).toEqual(keptBefore);
          expect(times((await store().deviceReadings(kept, { order: 'asc' })).items)).toEqual([at(1)]);
        });

        test('an unknown device resolves false', async () => {
          expect(await store().deleteDevice(dev('never'))).toBe(false);
        });

        test('a deleted device starts afresh when written again', async () => {
          const d = dev('again');
          await store().appendBatch([reading(d, at(1), { count: 3 }), reading(d, at(2), { count: 3 })]);
          expect(await store().deleteDevice(d)).toBe(true);
          expect(flags(await store().appendBatch([reading(d, at(1), { count: 7 })]))).toEqual([1]);
          expect(await store().getDevice(d)).toMatchObject({ readingCount: 1, cumulativeCount: 7, firstTsUs: at(1), latestTsUs: at(1) });
          expect(await store().deleteDevice(d)).toBe(true);
          expect(await store().deleteDevice(d)).toBe(false);
        });
      });
    });

    describe('listDevices', () => {
      // Five devices whose every sort key differs, written in mixed batches and out of order.
      //          first latest readings cumulative  latest payload
      //   a      10    50     2        2           {temp: 20}            (older payload {temp: 99})
      //   b      20    30     3        30          {temp: 5}             (older payloads {temp: -1})
      //   c      5     5      1        7           {humidity: 40}
      //   d      40    43     4        0           {temp: 30, humidity: 10} (older {temp: 0})
      //   e      15    35     5        500         null                  (older payloads {temp: 1})
      const store = sharedStore(open, async (s) => {
        await s.appendBatch([
          reading('d', at(43), { payload: { temp: 30, humidity: 10 } }),
          reading('a', at(50), { count: 1, payload: { temp: 20 } }),
          reading('c', at(5), { count: 7, payload: { humidity: 40 } }),
          reading('e', at(35), { count: 100 }),
        ]);
        await s.appendBatch([
          reading('b', at(30), { count: 10, payload: { temp: 5 } }),
          reading('b', at(20), { count: 10, payload: { temp: -1 } }),
          reading('d', at(40), { payload: { temp: 0 } }),
          reading('d', at(41), { payload: { temp: 0 } }),
          reading('e', at(15), { count: 100, payload: { temp: 1 } }),
          reading('e', at(16), { count: 100, payload: { temp: 1 } }),
        ]);
        await s.appendBatch([
          reading('a', at(10), { count: 1, payload: { temp: 99 } }),
          reading('b', at(25), { count: 10, payload: { temp: -1 } }),
          reading('d', at(42), { payload: { temp: 0 } }),
          reading('e', at(17), { count: 100, payload: { temp: 1 } }),
          reading('e', at(18), { count: 100, payload: { temp: 1 } }),
        ]);
      });

      const all = (sort: DeviceSort, order: SortOrder) => store().listDevices({ sort, order, limit: 100, offset: 0, withTotal: true });

      test('total and full summaries', async () => {
        const page = await all({ by: 'deviceId' }, 'asc');
        expect(page.total).toBe(5);
        expect(page.items).toHaveLength(5);
        expect(page.items[0]).toEqual({
          deviceId: 'a',
          firstTsUs: at(10),
          latestTsUs: at(50),
          latestTsText: formatUtc(at(50)),
          latestPayload: '{"temp":20}',
          readingCount: 2,
          cumulativeCount: 2,
        } satisfies DeviceSummary);
        expect(page.items[4]).toEqual({
          deviceId: 'e',
          firstTsUs: at(15),
          latestTsUs: at(35),
          latestTsText: formatUtc(at(35)),
          latestPayload: null,
          readingCount: 5,
          cumulativeCount: 500,
        } satisfies DeviceSummary);
        expect(await store().getDevice('d')).toEqual(page.items[3]);
      });

      const fullyOrdered: Array<[string, DeviceSort, string[]]> = [
        ['deviceId', { by: 'deviceId' }, ['a', 'b', 'c', 'd', 'e']],
        ['latestTs', { by: 'latestTs' }, ['c', 'b', 'e', 'd', 'a']],
        ['firstTs', { by: 'firstTs' }, ['c', 'a', 'e', 'b', 'd']],
        ['readingCount', { by: 'readingCount' }, ['c', 'a', 'b', 'd', 'e']],
        ['cumulativeCount', { by: 'cumulativeCount' }, ['d', 'a', 'c', 'b', 'e']],
      ];

      test.each(fullyOrdered)('sort by %s, asc and desc', async (_name, sort, asc) => {
        const up = await all(sort, 'asc');
        expect(ids(up.items)).toEqual(asc);
        expect(up.total).toBe(5);
        expect(ids((await all(sort, 'desc')).items)).toEqual([...asc].reverse());
      });

      test('sort by a payload field of the latest payload; devices without it last in both orders', async () => {
        const sort: DeviceSort = { by: 'payload', fields: ['temp'] };
        const up = ids((await all(sort, 'asc')).items);
        expect(up.slice(0, 3)).toEqual(['b', 'a', 'd']);
        expect(up.slice(3).sort()).toEqual(['c', 'e']);
        const down = ids((await all(sort, 'desc')).items);
        expect(down.slice(0, 3)).toEqual(['d', 'a', 'b']);
        expect(down.slice(3).sort()).toEqual(['c', 'e']);
      });

      test('sort by the first present of several payload fields', async () => {
        const sort: DeviceSort = { by: 'payload', fields: ['humidity', 'temp'] };
        // a: temp 20, b: temp 5, c: humidity 40, d: humidity 10, e: none.
        expect(ids((await all(sort, 'asc')).items)).toEqual(['b', 'd', 'a', 'c', 'e']);
        expect(ids((await all(sort, 'desc')).items)).toEqual(['c', 'a', 'd', 'b', 'e']);
      });

      test('sort by a payload field only two devices have', async () => {
        const sort: DeviceSort = { by: 'payload', fields: ['humidity'] };
        const up = ids((await all(sort, 'asc')).items);
        expect(up.slice(0, 2)).toEqual(['d', 'c']);
        expect(up.slice(2).sort()).toEqual(['a', 'b', 'e']);
        const down = ids((await all(sort, 'desc')).items);
        expect(down.slice(0, 2)).toEqual(['c', 'd']);
        expect(down.slice(2).sort()).toEqual(['a', 'b', 'e']);
      });

      test('limit and offset', async () => {
        const q = (order: SortOrder, limit: number, offset: number, sort: DeviceSort = { by: 'deviceId' }) =>
          store().listDevices({ sort, order, limit, offset, withTotal: true });
        expect(await q('asc', 2, 1).then((p) => [p.total, ids(p.items)])).toEqual([5, ['b', 'c']]);
        expect(await q('desc', 2, 0).then((p) => [p.total, ids(p.items)])).toEqual([5, ['e', 'd']]);
        expect(await q('asc', 10, 4).then((p) => [p.total, ids(p.items)])).toEqual([5, ['e']]);
        expect(await q('asc', 10, 5).then((p) => [p.total, ids(p.items)])).toEqual([5, []]);
        expect(await q('desc', 3, 0, { by: 'readingCount' }).then((p) => ids(p.items))).toEqual(['e', 'd', 'b']);
        expect(await q('asc', 2, 2, { by: 'payload', fields: ['humidity', 'temp'] }).then((p) => ids(p.items))).toEqual([
          'a',
          'c',
        ]);
      });

      test('pages of limit 1 walk the whole order', async () => {
        const walked: string[] = [];
        for (let offset = 0; offset < 5; offset++) {
          const page = await store().listDevices({ sort: { by: 'latestTs' }, order: 'desc', limit: 1, offset, withTotal: true });
          expect(page.total).toBe(5);
          walked.push(...ids(page.items));
        }
        expect(walked).toEqual(['a', 'd', 'e', 'b', 'c']);
      });

      // listDevices over the same devices: keyset pages must give the same order as listDevices.
      async function pageAll(query: Omit<DeviceListQuery, 'cursor'>): Promise<string[]> {
        const out: string[] = [];
        let cursor: string | undefined;
        for (let i = 0; i < 50; i++) {
          const page = await store().listDevices({ ...query, ...(cursor === undefined ? {} : { cursor }) });
          expect(page.items.length).toBeLessThanOrEqual(query.limit);
          out.push(...ids(page.items));
          if (page.items.length < query.limit) expect(page.nextCursor).toBeNull();
          if (page.nextCursor === null) return out;
          cursor = page.nextCursor;
        }
        throw new Error('listDevices did not reach the last page');
      }

      test.each(fullyOrdered)('listDevices by %s gives the listDevices order at every page size', async (_n, sort, asc) => {
        for (const limit of [1, 2, 3, 5, 6]) {
          expect(await pageAll({ sort, order: 'asc', limit })).toEqual(asc);
          expect(await pageAll({ sort, order: 'desc', limit })).toEqual([...asc].reverse());
        }
      });

      test('listDevices by payload fields, devices without them last in both orders', async () => {
        for (const limit of [1, 2, 4]) {
          expect(await pageAll({ sort: { by: 'payload', fields: ['humidity', 'temp'] }, order: 'asc', limit })).toEqual([
            'b', 'd', 'a', 'c', 'e',
          ]);
          expect(await pageAll({ sort: { by: 'payload', fields: ['humidity', 'temp'] }, order: 'desc', limit })).toEqual([
            'c', 'a', 'd', 'b', 'e',
          ]);
          const up = await pageAll({ sort: { by: 'payload', fields: ['temp'] }, order: 'asc', limit });
          expect(up.slice(0, 3)).toEqual(['b', 'a', 'd']);
          expect(up.slice(3).sort()).toEqual(['c', 'e']);
          const down = await pageAll({ sort: { by: 'payload', fields: ['temp'] }, order: 'desc', limit });
          expect(down.slice(0, 3)).toEqual(['d', 'a', 'b']);
          expect(down.slice(3).sort()).toEqual(['c', 'e']);
        }
      });

      test('listDevices items are full summaries', async () => {
        const page = await store().listDevices({ sort: { by: 'cumulativeCount' }, order: 'desc', limit: 1 });
        expect(page.items).toEqual([await store().getDevice('e')]);
        expect(typeof page.nextCursor).toBe('string');
      });
    });

    describe('listRecords', () => {
      // 4 devices x 5 timestamps; timestamps shared across devices; written in three batches out of order.
      const devices = ['r1', 'r2', 'r3', 'r4'];
      const all: Reading[] = [];
      for (const d of devices) for (const m of [1, 2, 2.5, 3, 4]) all.push(reading(d, at(m), { count: 1 }));
      const store = sharedStore(open, async (s) => {
        const shuffled = all.map((_, i) => all[(i * 7) % all.length]!);
        await s.appendBatch(shuffled.slice(0, 7));
        await s.appendBatch(shuffled.slice(7, 13));
        await s.appendBatch(shuffled.slice(13));
      });

      const records = async (limit: number, cursor?: string) => store().listRecords({ limit, ...(cursor === undefined ? {} : { cursor }) });

      async function walk(limit: number): Promise<Reading[]> {
        const out: Reading[] = [];
        let page = await records(limit);
        for (let i = 0; i < 100; i++) {
          expect(page.items.length).toBeLessThanOrEqual(limit);
          out.push(...page.items);
          if (page.nextCursor === null) break;
          page = await records(limit, page.nextCursor);
        }
        return out;
      }

      test('newest timestamp first, whatever the arrival order', async () => {
        const everything = (await records(100)).items;
        expect(everything).toHaveLength(20);
        const ts = times(everything);
        expect(ts).toEqual([...ts].sort((x, y) => y - x));
        expect(new Set(everything.map(key))).toEqual(new Set(all.map(key)));
        expect(everything[0]).toMatchObject({ tsUs: at(4), count: 1, tsText: formatUtc(at(4)), payload: null });
        expect(everything.at(-1)).toMatchObject({ tsUs: at(1) });
        expect(times((await records(5)).items)).toEqual([at(4), at(4), at(4), at(4), at(3)]);
      });

      test('cursor pages over equal timestamps neither skip nor repeat', async () => {
        const reference = (await records(100)).items.map(key);
        for (const limit of [1, 2, 3, 4, 7, 20, 25]) {
          const walked = (await walk(limit)).map(key);
          expect(walked).toEqual(reference);
          expect(new Set(walked).size).toBe(20);
        }
      });

      test('a cursor stays valid while new readings arrive', async () => {
        const first = await records(6);
        const last = first.items[first.items.length - 1]!;
        // Arrivals both newer than, equal to and older than the cursor's timestamp.
        const late = [reading('r5', at(9)), reading('r5', last.tsUs), reading('r5', at(0))];
        await store().appendBatch(late);
        const seen = first.items.map(key);
        let cursor = first.nextCursor;
        for (let i = 0; cursor !== null; i++) {
          if (i === 50) throw new Error('listRecords pagination did not end');
          const page = await records(4, cursor);
          seen.push(...page.items.map(key));
          cursor = page.nextCursor;
        }
        expect(new Set(seen).size).toBe(seen.length);
        for (const r of all) expect(seen).toContain(key(r));
        expect(seen).toContain(key(late[2]!)); // older than the cursor: still ahead of it
        expect(seen).not.toContain(key(late[0]!)); // newer than the cursor: behind it
      });

      test('a cursor of another listing is refused with InvalidCursorError', async () => {
        const history = await store().deviceReadings('r1', { order: 'asc', limit: 1 });
        expect(history.nextCursor).not.toBeNull();
        await expect(records(2, history.nextCursor!)).rejects.toBeInstanceOf(InvalidCursorError);
      });

      test('with a prefix: only those devices, paged the same way; a cursor is bound to its prefix', async () => {
        const everything = (await records(100)).items;
        const r2 = (await store().listRecords({ limit: 100, prefix: 'r2' })).items;
        expect(r2.map(key)).toEqual(everything.filter((r) => r.deviceId.startsWith('r2')).map(key));
        const walked: string[] = [];
        let page = await store().listRecords({ limit: 2, prefix: 'r2' });
        for (let i = 0; i < 20; i++) {
          walked.push(...page.items.map(key));
          if (page.nextCursor === null) break;
          page = await store().listRecords({ limit: 2, prefix: 'r2', cursor: page.nextCursor });
        }
        expect(walked).toEqual(r2.map(key));
        expect((await store().listRecords({ limit: 10, prefix: 'zz' })).items).toEqual([]);
        const unprefixed = await records(2);
        await expect(store().listRecords({ limit: 2, prefix: 'r2', cursor: unprefixed.nextCursor! })).rejects.toBeInstanceOf(InvalidCursorError);
      });
    });

    describe('API keys', () => {
      const store = sharedStore(open);
      const created = Date.UTC(2026, 0, 1) * 1000;

      test('created, listed (revoked ones too), revoked by name; a name is unique among active keys', async () => {
        const name = dev('gateway');
        const first = issueKey(name, ['ingest', 'read'], 'meter-', created);
        expect(await store().writeKeys({ kind: 'create', record: first.record })).toBe(true);
        const listed = (await store().listKeys()).find((k) => k.id === first.record.id);
        expect(listed).toEqual(first.record);
        // The key itself is never stored: only its hash.
        expect(JSON.stringify(await store().listKeys())).not.toContain(first.key);

        const again = issueKey(name, ['read'], null, created + 1);
        expect(await store().writeKeys({ kind: 'create', record: again.record })).toBe(false);
        expect(await store().writeKeys({ kind: 'revoke', name, nowUs: created + 2 })).toBe(true);
        expect(await store().writeKeys({ kind: 'revoke', name, nowUs: created + 3 })).toBe(false);
        expect((await store().listKeys()).find((k) => k.id === first.record.id)?.revokedUs).toBe(created + 2);
        // Revoked, the name may be issued again.
        expect(await store().writeKeys({ kind: 'create', record: again.record })).toBe(true);
        const mine = (await store().listKeys()).filter((k) => k.name === name);
        expect(mine.map((k) => [k.scopes, k.devicePrefix, k.revokedUs === null])).toEqual([
          [['ingest', 'read'], 'meter-', false],
          [['read'], null, true],
        ]);
      });

      test('last-used times only move forward; unknown ids are ignored', async () => {
        const { record } = issueKey(dev('used'), ['admin'], null, created);
        await store().writeKeys({ kind: 'create', record });
        await store().writeKeys({ kind: 'touch', used: [[record.id, created + 100], ['000000000000', created]] });
        await store().writeKeys({ kind: 'touch', used: [[record.id, created + 50]] });
        expect((await store().listKeys()).find((k) => k.id === record.id)?.lastUsedUs).toBe(created + 100);
        expect(await store().writeKeys({ kind: 'revoke', name: dev('nobody'), nowUs: created })).toBe(false);
      });
    });

    describe('pruneBefore', () => {
      const store = sharedStore(open, async (s) => {
        await s.appendBatch(
          ['p1', 'p2'].flatMap((d) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => reading(d, at(m), { count: 1 }))),
        );
      });

      test('deletes at most `limit` readings before the bound, keeps the bound itself and all-time summaries', async () => {
        const summaries = [await store().getDevice('p1'), await store().getDevice('p2')];
        expect(await store().pruneBefore(at(3), 4)).toBe(4);
        expect(await store().pruneBefore(at(3), 4)).toBe(2);
        expect(await store().pruneBefore(at(3), 4)).toBe(0);
        for (const d of ['p1', 'p2']) {
          expect(times((await store().deviceReadings(d, { order: 'asc' })).items)).toEqual([3, 4, 5, 6, 7, 8, 9].map(at));
        }
        expect((await store().listRecords({ limit: 100 })).items).toHaveLength(14);
        expect([await store().getDevice('p1'), await store().getDevice('p2')]).toEqual(summaries);
        expect(summaries[0]).toMatchObject({ readingCount: 10, cumulativeCount: 10 });
      });

      test('nothing older than the bound: nothing deleted', async () => {
        expect(await store().pruneBefore(at(-100), 1000)).toBe(0);
        expect((await store().listRecords({ limit: 100 })).items).toHaveLength(14);
      });
    });

    describe('audit', () => {
      test('a store written every way (out of order, duplicates, pruned by row and by age, a device deleted) audits clean, counting every reading', async () => {
        const { store, cleanup } = await open();
        try {
          const weeksAgo = at(-3 * 7 * 24 * 60); // old enough for a whole partition of its own on PostgreSQL
          const payload = { t: 21.5 };
          await store.appendBatch([0, 1, 2, 3, 4, 5].map((m) => reading('a1', at(m), { count: m + 1, payload })));
          await store.appendBatch([5, 1, 3].map((m) => reading('a2', at(m), { count: 2 })));
          await store.appendBatch([0, 2, 4, 3, 5].map((m) => reading('a2', at(m), { count: m === 4 ? null : 1 }))); // 3 and 5 are duplicates
          await store.appendBatch([reading('a3', weeksAgo, { count: 4 }), reading('a3', weeksAgo + MINUTE, { count: 4 }), reading('a3', at(10), { count: 1 })]);
          await store.appendBatch([reading('a4', weeksAgo, { count: 9 }), reading('a5', at(1), { count: 1 })]);
          expect(await store.deleteDevice('a5')).toBe(true);
          expect(await store.pruneBefore(at(3), 1000)).toBe(3 + 3 + 2 + 1);
          const report = await store.audit!({ full: false });
          expect(report.mismatches).toEqual([]);
          expect(report).toMatchObject({ mismatchCount: 0, devices: 4, readings: 3 + 3 + 1, boundsOnly: 0 });
          expect(report.durationMs).toBeGreaterThanOrEqual(0);
          expect((await store.audit!({ full: true })).mismatchCount).toBe(0);
        } finally {
          await cleanup();
        }
      });
    });

    describe('lifecycle', () => {
      test('name and maxConcurrentWrites; close is idempotent; appendBatch after close rejects', async () => {
        const { store, cleanup } = await open();
        try {
          expect(typeof store.name).toBe('string');
          expect(store.name.length).toBeGreaterThan(0);
          expect(Number.isInteger(store.maxConcurrentWrites)).toBe(true);
          expect(store.maxConcurrentWrites).toBeGreaterThanOrEqual(1);
          expect(flags(await store.appendBatch([reading('x', at(1))]))).toEqual([1]);
          await Promise.all([store.close(), store.close()]);
          await expect(store.close()).resolves.toBeUndefined();
          await expect(store.appendBatch([reading('x', at(2))])).rejects.toBeInstanceOf(StorageUnavailableError);
        } finally {
          await cleanup();
        }
      });
    });
  });
}
