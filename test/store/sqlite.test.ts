import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import { StorageUnavailableError } from '../../src/domain/errors.js';
import type { Reading } from '../../src/domain/reading.js';
import { migrate, SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';
import { toColumns } from '../../src/store/sqlite/columns.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { SqliteWriter } from '../../src/store/sqlite/writer.js';
import type { DeviceListQuery } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';
import { runStoreContract, type OpenedStore } from './contract.js';

function openFile(file: string, compactRows = 50_000, directRunReadings?: number, sealBacklogBytes?: number): Promise<SqliteStore> {
  return SqliteStore.open({ file, synchronous: 'FULL', cacheMiB: 8, compactRows, directRunReadings, sealBacklogBytes });
}

async function openTemp(compactRows?: number, directRunReadings?: number, sealBacklogBytes?: number): Promise<OpenedStore> {
  const { dir, cleanup } = tempDir('tally-store-');
  const store = await openFile(join(dir, 'tally.db'), compactRows, directRunReadings, sealBacklogBytes);
  return {
    store,
    cleanup: async () => {
      await store.close();
      cleanup();
    },
  };
}

// Readings wait in the journal until compaction moves them into chunks: the contract must hold
// when only readers (and idleness) trigger compaction, when every batch is compacted at once, and
// with small compaction steps that leave many small chunks behind.
runStoreContract('sqlite (compacted when read)', () => openTemp(Number.MAX_SAFE_INTEGER));
runStoreContract('sqlite (compacted after every batch)', () => openTemp(1));
// Text chunks sealed after every commit here, as under a sustained load, instead of when idle.
runStoreContract('sqlite (compacted every 3 readings, sealed after every commit)', () => openTemp(3, undefined, 0));
// And when every in-order run of a device, however short, goes straight into chunks at commit,
// alongside readings that wait in the journal.
runStoreContract('sqlite (in-order runs written directly)', () => openTemp(Number.MAX_SAFE_INTEGER, 1));
runStoreContract('sqlite (runs of 2+ written directly, compacted every 3)', () => openTemp(3, 2));

const BASE = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;
const reading = (deviceId: string, s: number, count: number | null = 1, payload: string | null = null): Reading => ({
  deviceId,
  tsUs: BASE + s * SECOND,
  tsText: null,
  count,
  payload,
});
const ALL: DeviceListQuery = { sort: { by: 'deviceId' }, order: 'asc', limit: 1000, offset: 0, withTotal: true };

/** Runs `body` with a temp directory holding `tally.db`, removing it afterwards. */
async function withFile(body: (file: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('tally-sqlite-');
  try {
    await body(join(dir, 'tally.db'));
  } finally {
    cleanup();
  }
}

describe('SqliteStore specifics', () => {
  test('data survives close and reopen; identity and summaries carry on from the file', async () => {
    await withFile(async (file) => {
      const first = await openFile(file);
      const batch = [reading('a', 1, 2, '{"v":1}'), reading('a', 3, 4, '{"v":3}'), reading('b', 2, 5)];
      expect(Array.from(await first.appendBatch(batch))).toEqual([1, 1, 1]);
      const summaries = await first.listDevices(ALL);
      const records = await first.listRecords({ limit: 100 });
      await first.close();

      const second = await openFile(file);
      try {
        expect(await second.listDevices(ALL)).toEqual(summaries);
        expect(await second.listRecords({ limit: 100 })).toEqual(records);
        expect(summaries.items[0]).toMatchObject({ deviceId: 'a', readingCount: 2, cumulativeCount: 6, latestPayload: '{"v":3}' });
        // The unique index came back with the file: the same readings are duplicates now.
        expect(Array.from(await second.appendBatch(batch))).toEqual([0, 0, 0]);
        // An existing device keeps its summary: a late older reading adds without replacing the latest.
        expect(Array.from(await second.appendBatch([reading('a', 0, 10, '{"v":0}')]))).toEqual([1]);
        expect(await second.getDevice('a')).toMatchObject({
          firstTsUs: BASE,
          latestTsUs: BASE + 3 * SECOND,
          latestPayload: '{"v":3}',
          readingCount: 3,
          cumulativeCount: 16,
        });
      } finally {
        await second.close();
      }
    });
  });

  test('one writer per data file: a second store on it is refused until the first closes', async () => {
    await withFile(async (file) => {
      const one = await openFile(file);
      await one.appendBatch([reading('x', 1, 3), reading('y', 1, 4), reading('x', 2, 5)]);
      const error = await openFile(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect((error as Error).message).toMatch(/in use by another Tally/);
      await one.close();
      const two = await openFile(file);
      try {
        expect(await two.getDevice('x')).toMatchObject({ readingCount: 2, cumulativeCount: 8 });
        expect(Array.from(await two.appendBatch([reading('x', 2, 100), reading('z', 1, 7)]))).toEqual([0, 1]);
      } finally {
        await two.close();
      }
    });
  });

  test('readings acknowledged but not yet compacted are in the journal: a reopen replays them once', async () => {
    await withFile(async (file) => {
      // The writer on its own, closed as a crash would leave it: what it held in memory is gone,
      // the journal rows are not.
      const writer = new SqliteWriter({ file, synchronous: 'FULL', cacheMiB: 8, compactRows: Number.MAX_SAFE_INTEGER });
      writer.append(toColumns([reading('j', 2, 2, '{"v":2}'), reading('j', 1, 1)]));
      // A duplicate in the middle: the journal row holds the other two readings only.
      expect(Array.from(writer.append(toColumns([reading('j', 3, 3), reading('j', 2, 99), reading('k', 1, 10)])).stored)).toEqual([1, 0, 1]);
      writer.close({ compact: false });
      const raw = new Database(file, { readonly: true });
      expect(raw.prepare('SELECT count(*) FROM journal').pluck().get()).toBe(2);
      expect(raw.prepare('SELECT count(*) FROM chunks').pluck().get()).toBe(0);
      raw.close();

      const store = await openFile(file);
      try {
        expect(await store.getDevice('j')).toMatchObject({ readingCount: 3, cumulativeCount: 6, latestTsUs: BASE + 3 * SECOND, latestPayload: null });
        expect(((await store.deviceReadings('j', { order: 'asc' })).items).map((r) => [r.count, r.payload])).toEqual([
          [1, null],
          [2, '{"v":2}'],
          [3, null],
        ]);
        expect(Array.from(await store.appendBatch([reading('j', 2, 50), reading('k', 1, 50), reading('k', 2, 1)]))).toEqual([0, 0, 1]);
        expect(await store.getDevice('k')).toMatchObject({ readingCount: 2, cumulativeCount: 11 });
      } finally {
        await store.close();
      }
      const after = new Database(file, { readonly: true });
      try {
        expect(after.prepare('SELECT count(*) FROM journal').pluck().get()).toBe(0);
        expect(after.prepare('SELECT sum(n) FROM chunks').pluck().get()).toBe(5);
      } finally {
        after.close();
      }
    });
  });

  test('a long in-order run goes straight into chunks at commit: nothing of it in the journal, nothing doubled on reopen', async () => {
    await withFile(async (file) => {
      const writer = new SqliteWriter({ file, synchronous: 'FULL', cacheMiB: 8, compactRows: Number.MAX_SAFE_INTEGER, directRunReadings: 3 });
      const run = (from: number) => [0, 1, 2, 3].map((k) => reading('d', from + k, 1 + k));
      // d's run of 4 is direct; e's single reading and d's out-of-order run wait in the journal.
      expect(Array.from(writer.append(toColumns([...run(10), reading('e', 1, 7)])).stored)).toEqual([1, 1, 1, 1, 1]);
      expect(Array.from(writer.append(toColumns([reading('d', 5, 100), reading('d', 4, 100), reading('d', 3, 100)])).stored)).toEqual([1, 1, 1]);
      // Resent, the direct run is all duplicates; after e's reading, a newer run of d goes direct again.
      expect(Array.from(writer.append(toColumns([...run(10), reading('e', 2, 1), ...run(20)])).stored)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1]);
      writer.close({ compact: false });
      const raw = new Database(file, { readonly: true });
      expect(raw.prepare('SELECT count(*) FROM journal').pluck().get()).toBe(3);
      expect(raw.prepare("SELECT sum(n) FROM chunks JOIN devices ON key = device_key WHERE device_id = 'd'").pluck().get()).toBe(8);
      raw.close();

      const store = await openFile(file);
      try {
        expect(await store.getDevice('d')).toMatchObject({ readingCount: 11, cumulativeCount: 2 * 10 + 300, latestTsUs: BASE + 23 * SECOND });
        expect(await store.getDevice('e')).toMatchObject({ readingCount: 2, cumulativeCount: 8 });
        expect(((await store.deviceReadings('d', { order: 'asc' })).items).map((r) => r.tsUs)).toEqual(
          [3, 4, 5, 10, 11, 12, 13, 20, 21, 22, 23].map((s) => BASE + s * SECOND),
        );
        expect(Array.from(await store.appendBatch([...run(20), reading('d', 4, 1)]))).toEqual([0, 0, 0, 0, 0]);
      } finally {
        await store.close();
      }
    });
  });

  test('a resent batch is checked against large chunks through their instants: duplicates refused, new instants between them stored', async () => {
    await withFile(async (file) => {
      const store = await openFile(file);
      try {
        const batch = Array.from({ length: 600 }, (_, k) => reading('big', 2 * k, 1));
        expect(Array.from(await store.appendBatch(batch)).every((f) => f === 1)).toBe(true);
        // Resent whole (every lookup in the same chunks), with new odd seconds between them.
        const again = [...batch.slice(0, 300), ...Array.from({ length: 50 }, (_, k) => reading('big', 2 * k + 1, 10)), ...batch.slice(300)];
        const flags = Array.from(await store.appendBatch(again));
        expect(flags.slice(0, 300).every((f) => f === 0)).toBe(true);
        expect(flags.slice(300, 350).every((f) => f === 1)).toBe(true);
        expect(flags.slice(350).every((f) => f === 0)).toBe(true);
        expect(await store.getDevice('big')).toMatchObject({ readingCount: 650, cumulativeCount: 600 + 500 });
      } finally {
        await store.close();
      }
    });
  });

  test('newest-first listing over many overlapping chunks: every reading once, in order, whatever the page size', async () => {
    // Small compaction steps and out-of-order batches leave many short chunks whose time ranges
    // overlap, across devices and within one device: the merge must still place every reading.
    const { store, cleanup } = await openTemp(3);
    try {
      let seed = 7;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const all = new Map<string, Reading>();
      for (let d = 0; d < 40; d++) {
        for (let k = 0; k < 30; k++) {
          const r = reading(`ov-${d}`, Math.floor(random() * 200), 1 + (k % 5));
          all.set(`${r.deviceId}@${r.tsUs}`, r);
        }
      }
      const readings = [...all.values()].sort(() => random() - 0.5);
      for (let i = 0; i < readings.length; i += 97) await store.appendBatch(readings.slice(i, i + 97));
      const walks: string[][] = [];
      for (const limit of [1, 7, 50, 5000]) {
        const seen: string[] = [];
        let page = await store.listRecords({ limit });
        let previous = Infinity;
        for (let i = 0; ; i++) {
          expect(i).toBeLessThan(all.size + 1);
          expect(page.items.length).toBeLessThanOrEqual(limit);
          for (const r of page.items) {
            expect(r.tsUs).toBeLessThanOrEqual(previous);
            previous = r.tsUs;
            seen.push(`${r.deviceId}@${r.tsUs}`);
          }
          if (page.nextCursor === null) break;
          page = await store.listRecords({ limit, cursor: page.nextCursor });
        }
        expect(seen).toHaveLength(all.size);
        expect(new Set(seen)).toEqual(new Set(all.keys()));
        walks.push(seen);
      }
      for (const walk of walks) expect(walk).toEqual(walks[walks.length - 1]);
    } finally {
      await cleanup();
    }
  });

  test('read-your-writes under concurrent writes: once appendBatch resolves, every read sees the batch', async () => {
    // A threshold never reached: only readers (and idleness) make the writer compact.
    const { store, cleanup } = await openTemp(Number.MAX_SAFE_INTEGER);
    try {
      const checks = Array.from({ length: 60 }, async (_, i) => {
        const device = `ryw-${i % 6}`;
        await store.appendBatch([reading(device, i, i + 1), reading('ryw-shared', i, 1)]);
        const [summary, history, records] = await Promise.all([
          store.getDevice(device),
          store.deviceReadings(device, { order: 'desc', limit: 1000 }),
          store.listRecords({ limit: 1000 }),
        ]);
        expect(summary).toBeDefined();
        expect(history.items.map((r) => r.tsUs)).toContain(BASE + i * SECOND);
        expect(records.items.some((r) => r.deviceId === device && r.tsUs === BASE + i * SECOND)).toBe(true);
      });
      await Promise.all(checks);
      expect(await store.getDevice('ryw-shared')).toMatchObject({ readingCount: 60, cumulativeCount: 60 });
    } finally {
      await cleanup();
    }
  });

  test('if the writer thread dies, the next write starts a new one: committed readings kept once, none lost', async () => {
    await withFile(async (file) => {
      const store = await openFile(file, Number.MAX_SAFE_INTEGER);
      try {
        expect(Array.from(await store.appendBatch([reading('w', 1, 1), reading('w', 2, 2)]))).toEqual([1, 1]);
        expect(await store.getDevice('w')).toMatchObject({ readingCount: 2, cumulativeCount: 3 });
        expect(Array.from(await store.appendBatch([reading('w', 3, 4)]))).toEqual([1]);
        // The thread goes away with a reading in the journal only (never compacted).
        await (store as unknown as { writer: { writer: Worker } }).writer.writer.terminate();
        expect(Array.from(await store.appendBatch([reading('w', 3, 100), reading('w', 4, 8)]))).toEqual([0, 1]);
        expect(await store.getDevice('w')).toMatchObject({ readingCount: 4, cumulativeCount: 15 });
        expect(((await store.deviceReadings('w', { order: 'asc' })).items).map((r) => r.count)).toEqual([1, 2, 4, 8]);
      } finally {
        await store.close();
      }
    });
  });

  test('a compaction round cut short by a crash resumes where it stopped: every reading counted once', async () => {
    await withFile(async (file) => {
      const devices = Array.from({ length: 600 }, (_, i) => `round-${i}`);
      const writer = new SqliteWriter({ file, synchronous: 'FULL', cacheMiB: 8, compactRows: 1 });
      writer.append(toColumns(devices.map((d, i) => reading(d, 1, i + 1))));
      writer.append(toColumns(devices.map((d) => reading(d, 2, 1))));
      // 600 devices make a round of three slices: do one, leave two, then "crash" after a new batch.
      expect(writer.compactStep()).toBeGreaterThan(0);
      expect(writer.compacting).toBe(true);
      writer.append(toColumns([reading('round-0', 3, 1000), reading('late', 1, 5)]));
      writer.close({ compact: false });

      const store = await openFile(file);
      try {
        const all = await store.listDevices({ ...ALL, limit: 1000 });
        expect(all.total).toBe(601);
        const byId = new Map(all.items.map((d) => [d.deviceId, d]));
        devices.forEach((d, i) => {
          const readings = i === 0 ? 3 : 2;
          const sum = i + 1 + 1 + (i === 0 ? 1000 : 0);
          expect(byId.get(d)).toMatchObject({ readingCount: readings, cumulativeCount: sum });
        });
        expect(((await store.deviceReadings('round-599', { order: 'asc' })).items).map((r) => r.count)).toEqual([600, 1]);
        expect(byId.get('late')).toMatchObject({ readingCount: 1, cumulativeCount: 5 });
        expect(Array.from(await store.appendBatch([reading('round-300', 1, 9), reading('round-300', 2, 9)]))).toEqual([0, 0]);
      } finally {
        await store.close();
      }
    });
  });

  test('a clean close leaves no write-ahead log behind: everything is in the data file', async () => {
    await withFile(async (file) => {
      const store = await openFile(file);
      await store.appendBatch(Array.from({ length: 2000 }, (_, i) => reading(`wal-${i % 20}`, i, 1)));
      expect(await store.getDevice('wal-3')).toMatchObject({ readingCount: 100 });
      await store.close();
      expect(existsSync(`${file}-wal`)).toBe(false);
    });
  });

  test('a version 5 file (chunks without count stats) upgrades: its chunks are decoded, new ones summarised, aggregates exact', async () => {
    await withFile(async (file) => {
      const old = new Database(file);
      migrate(old, 5);
      const line = (s: number, count: number | null) => `${BASE + s * SECOND}\t${count ?? ''}\t\t\n`;
      old.exec(`INSERT INTO devices (key, device_id, first_ts_us, latest_ts_us, reading_count, cumulative_count)
                VALUES (1, 'v5', ${BASE + SECOND}, ${BASE + 3 * SECOND}, 3, 7)`);
      old.prepare('INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data) VALUES (1, ?, ?, 3, ?)').run(
        BASE + SECOND,
        BASE + 3 * SECOND,
        line(1, 2) + line(2, null) + line(3, 5),
      );
      old.close();
      const store = await openFile(file);
      try {
        const hour = 3600 * SECOND;
        const q = { fromUs: BASE, toUs: BASE + hour, everyUs: hour, field: { kind: 'count' } as const };
        expect(await store.aggregate('v5', q)).toEqual([{ startUs: BASE, count: 2, sum: 7, min: 2, max: 5, avg: 3.5 }]);
        // Appended to the old chunk (its stats stay unknown) and in new chunks (summarised).
        await store.appendBatch([reading('v5', 4, 10), reading('v5', 5, 1)]);
        await store.appendBatch(Array.from({ length: 300 }, (_, i) => reading('v5', 100 + i, 1)));
        expect(await store.aggregate('v5', q)).toEqual([{ startUs: BASE, count: 304, sum: 318, min: 1, max: 10, avg: 318 / 304 }]);
        expect(await store.getDevice('v5')).toMatchObject({ readingCount: 305, cumulativeCount: 318 });
      } finally {
        await store.close();
      }
      const after = new Database(file, { readonly: true });
      expect(after.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(after.prepare('SELECT count(*) AS n FROM chunks WHERE counted IS NULL').get()).toEqual({ n: 1 });
      after.close();
    });
  });

  test('a version 7 file (text chunks, before pruned counts) upgrades: old chunks are sealed, the newest stays text, reads, duplicates and summaries unchanged', async () => {
    await withFile(async (file) => {
      const old = new Database(file);
      migrate(old, 7);
      const line = (s: number, count: number | null, payload: string | null = null) => `${BASE + s * SECOND}\t${count ?? ''}\t3\t${payload ?? ''}\n`;
      const chunk = old.prepare(
        `INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data, counted, count_sum, count_min, count_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      // Device 1: three chunks, the middle one written out of order (it overlaps the first); device 2: one.
      chunk.run(1, BASE + SECOND, BASE + 9 * SECOND, 3, line(1, 2, '{"temp":20.5}') + line(5, null, '{"temp":21}') + line(9, 4), 2, 6, 2, 4);
      chunk.run(1, BASE + 3 * SECOND, BASE + 4 * SECOND, 2, line(3, 1) + line(4, 1, '{"temp":19}'), 2, 2, 1, 1);
      chunk.run(1, BASE + 10 * SECOND, BASE + 11 * SECOND, 2, line(10, 10) + line(11, 1), 2, 11, 1, 10);
      chunk.run(2, BASE + SECOND, BASE + SECOND, 1, line(1, 7), 1, 7, 7, 7);
      old.exec(`INSERT INTO devices (key, device_id, first_ts_us, latest_ts_us, latest_ts_text, reading_count, cumulative_count)
                VALUES (1, 'v7', ${BASE + SECOND}, ${BASE + 11 * SECOND}, '2024-01-01T00:00:11.000Z', 7, 19),
                       (2, 'w', ${BASE + SECOND}, ${BASE + SECOND}, '2024-01-01T00:00:01.000Z', 1, 7)`);
      // Text chunks end below id 0, where the sealer finds them (migration 10).
      const readBack = (db: Database.Database) => db.prepare('SELECT device_key, first_ts_us, typeof(data) AS form, id < 0 AS below FROM chunks ORDER BY device_key, first_ts_us').all();
      old.close();

      const store = await openFile(file);
      try {
        const raw = new Database(file, { readonly: true });
        expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
        // Sealed by the migration: every chunk but each device's newest.
        expect(readBack(raw)).toEqual([
          { device_key: 1, first_ts_us: BASE + SECOND, form: 'blob', below: 0 },
          { device_key: 1, first_ts_us: BASE + 3 * SECOND, form: 'blob', below: 0 },
          { device_key: 1, first_ts_us: BASE + 10 * SECOND, form: 'text', below: 1 },
          { device_key: 2, first_ts_us: BASE + SECOND, form: 'text', below: 1 },
        ]);
        raw.close();
        const items = (await store.deviceReadings('v7', { order: 'asc' })).items;
        expect(items.map((r) => [r.tsUs, r.count, r.tsText, r.payload])).toEqual(
          [[1, 2, '{"temp":20.5}'], [3, 1, null], [4, 1, '{"temp":19}'], [5, null, '{"temp":21}'], [9, 4, null], [10, 10, null], [11, 1, null]].map(
            ([s, count, payload]) => [BASE + (s as number) * SECOND, count, `2024-01-01T00:00:${String(s).padStart(2, '0')}.000Z`, payload],
          ),
        );
        const hour = 3600 * SECOND;
        const q = { fromUs: BASE, toUs: BASE + hour, everyUs: hour } as const;
        expect(await store.aggregate('v7', { ...q, field: { kind: 'count' } })).toEqual([{ startUs: BASE, count: 6, sum: 19, min: 1, max: 10, avg: 19 / 6 }]);
        expect(await store.aggregate('v7', { ...q, field: { kind: 'payload', name: 'temp' } })).toEqual([{ startUs: BASE, count: 3, sum: 60.5, min: 19, max: 21, avg: 60.5 / 3 }]);
        expect((await store.listRecords({ limit: 3 })).items.map((r) => [r.deviceId, r.tsUs])).toEqual([
          ['v7', BASE + 11 * SECOND],
          ['v7', BASE + 10 * SECOND],
          ['v7', BASE + 9 * SECOND],
        ]);
        // Duplicates are found in sealed chunks; a new instant between them and a newer one are stored.
        expect(Array.from(await store.appendBatch([reading('v7', 5), reading('v7', 3), reading('v7', 2, 5), reading('v7', 12, 3)]))).toEqual([0, 0, 1, 1]);
        expect(await store.getDevice('v7')).toMatchObject({ readingCount: 9, cumulativeCount: 27, latestTsUs: BASE + 12 * SECOND });
        expect(await store.aggregate('v7', { ...q, field: { kind: 'count' } })).toEqual([{ startUs: BASE, count: 8, sum: 27, min: 1, max: 10, avg: 27 / 8 }]);
      } finally {
        await store.close();
      }
    });
  });

  test('after a load every chunk but each device\'s newest is sealed, at a few bytes per reading, and reads are what was written', async () => {
    await withFile(async (file) => {
      const store = await openFile(file, 2_000);
      const payload = (i: number) => JSON.stringify({ temp: 15 + (i % 100) / 10 });
      try {
        for (let b = 0; b < 20; b++) {
          await store.appendBatch(Array.from({ length: 1_000 }, (_, k) => reading('big', b * 1_000 + k, 1 + (k % 5), payload(b * 1_000 + k))));
          await store.appendBatch(Array.from({ length: 500 }, (_, k) => reading(`f${k % 50}`, b * 10 + Math.floor(k / 50), 1 + (k % 3))));
        }
        const all = (await store.deviceReadings('big', { order: 'asc' })).items;
        expect(all.map((r) => [r.tsUs, r.count, r.payload])).toEqual(Array.from({ length: 20_000 }, (_, i) => [BASE + i * SECOND, 1 + (i % 5), payload(i)]));
        expect((await store.deviceReadings('f7', { order: 'desc', limit: 5 })).items.map((r) => r.tsUs)).toEqual([199, 198, 197, 196, 195].map((s) => BASE + s * SECOND));
      } finally {
        await store.close();
      }
      const raw = new Database(file, { readonly: true });
      try {
        const forms = raw
          .prepare(
            `SELECT typeof(data) AS form, count(*) AS chunks, sum(n) AS readings, sum(length(data)) AS bytes,
               sum(id = (SELECT id FROM chunks n WHERE n.device_key = c.device_key ORDER BY last_ts_us DESC LIMIT 1)) AS newest
             FROM chunks c GROUP BY form ORDER BY form`,
          )
          .all() as Array<{ form: string; chunks: number; readings: number; bytes: number; newest: number }>;
        const blob = forms.find((f) => f.form === 'blob')!;
        const text = forms.find((f) => f.form === 'text') ?? { chunks: 0, readings: 0, bytes: 0, newest: 0 };
        expect(forms.length).toBe(text.chunks === 0 ? 1 : 2);
        expect(text.newest).toBe(text.chunks); // text: only a device's newest chunk, while it has room for appends
        expect(text.bytes).toBeLessThanOrEqual(51 * 3500);
        expect(blob.readings + text.readings).toBe(30_000);
        expect(blob.bytes / blob.readings).toBeLessThan(3); // the text form: ~35 bytes a reading of big, ~22 of the fleet
      } finally {
        raw.close();
      }
    });
  });

  test('a file created before auto_vacuum was set keeps its free pages and still closes; a new file gives them back', async () => {
    for (const old of [true, false]) {
      await withFile(async (file) => {
        if (old) {
          const db = new Database(file); // auto_vacuum NONE, as every file before this version
          db.pragma('page_size = 16384');
          migrate(db, 8);
          db.close();
        }
        const store = await openFile(file, Number.MAX_SAFE_INTEGER);
        // 100,000 readings in the journal (2.6 MB), compacted at close: the journal's pages are freed.
        for (let b = 0; b < 10; b++) await store.appendBatch(Array.from({ length: 10_000 }, (_, k) => reading(`d${k % 1000}`, b * 10 + Math.floor(k / 1000), 1, '{"v":1}')));
        await store.close();
        const after = new Database(file, { readonly: true });
        try {
          expect(after.pragma('auto_vacuum', { simple: true })).toBe(old ? 0 : 2);
          const free = after.pragma('freelist_count', { simple: true }) as number;
          if (old) expect(free).toBeGreaterThan(64);
          else expect(free).toBeLessThanOrEqual(64);
          expect(after.prepare('SELECT sum(n) FROM chunks').pluck().get()).toBe(100_000);
        } finally {
          after.close();
        }
      });
    }
  }, 60_000);

  test('a file of a pre-release layout (schema versions 1-4) is refused with a clear message, and left as it was', async () => {
    await withFile(async (file) => {
      const db = new Database(file);
      db.pragma('user_version = 3');
      db.exec('CREATE TABLE readings (seq INTEGER PRIMARY KEY)');
      db.close();
      const error = await openFile(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect((error as Error).message).toMatch(/pre-release layout/);
      const after = new Database(file, { readonly: true });
      expect(after.pragma('user_version', { simple: true })).toBe(3);
      after.close();
    });
  });

  test('migrations are idempotent: migrating twice, then opening (a third run) keeps schema and data', async () => {
    await withFile(async (file) => {
      const inspect = (db: Database.Database) => ({
        version: db.pragma('user_version', { simple: true }),
        objects: db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all(),
      });
      const db = new Database(file);
      migrate(db);
      const once = inspect(db);
      expect(once.version).toBe(SCHEMA_VERSION);
      expect(once.objects.map((o) => (o as { name: string }).name)).toEqual(
        expect.arrayContaining(['devices', 'chunks', 'chunks_device_first', 'chunks_device_last', 'chunks_first', 'chunks_last', 'journal']),
      );
      migrate(db);
      expect(inspect(db)).toEqual(once);
      db.close();

      const store = await openFile(file);
      try {
        expect(Array.from(await store.appendBatch([reading('m', 1, 1)]))).toEqual([1]);
        expect(Array.from(await store.appendBatch([reading('m', 1, 1)]))).toEqual([0]);
      } finally {
        await store.close();
      }
      const after = new Database(file, { readonly: true });
      try {
        expect(inspect(after)).toEqual(once);
        expect(after.prepare('SELECT (SELECT coalesce(sum(n), 0) FROM chunks) + (SELECT count(*) FROM journal) AS n').get()).toEqual({ n: 1 });
      } finally {
        after.close();
      }
    });
  });

  test('a database from a newer Tally is refused with StorageUnavailableError', async () => {
    await withFile(async (file) => {
      const db = new Database(file);
      db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      const error = await openFile(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect((error as Error).message).toMatch(/newer/);
    });
  });

  test('batches in flight together are written in the order they were sent: the earlier one wins', async () => {
    const { store, cleanup } = await openTemp();
    try {
      const first = store.appendBatch([reading('race', 1, 1), reading('race', 2, 1)]);
      const second = store.appendBatch([reading('race', 2, 7), reading('race', 3, 7)]);
      expect(Array.from(await first)).toEqual([1, 1]);
      expect(Array.from(await second)).toEqual([0, 1]);
      expect((await store.getDevice('race'))?.cumulativeCount).toBe(9);
    } finally {
      await cleanup();
    }
  });

  test('a failing batch commits nothing, and the store keeps working afterwards', async () => {
    const { store, cleanup } = await openTemp();
    try {
      expect(store.name).toBe('sqlite');
      // One writer thread, fed two batches at a time so it never waits for the next.
      expect(store.maxConcurrentWrites).toBe(2);
      await store.appendBatch([reading('old', 1, 1)]);
      // A device id of null breaks the NOT NULL constraint mid-transaction (after 'fresh' got a key).
      const broken = [reading('fresh', 1, 5), reading('old', 2, 5), { ...reading('x', 1), deviceId: null as unknown as string }];
      await expect(store.appendBatch(broken)).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(await store.getDevice('fresh')).toBeUndefined();
      expect(await store.getDevice('old')).toMatchObject({ readingCount: 1, cumulativeCount: 1 });
      expect((await store.listDevices(ALL)).total).toBe(1);
      expect((await store.listRecords({ limit: 10 })).items).toHaveLength(1);
      // The device key handed out inside the rolled-back transaction must not be reused.
      expect(Array.from(await store.appendBatch([reading('fresh', 1, 5), reading('old', 2, 5)]))).toEqual([1, 1]);
      expect(await store.getDevice('fresh')).toMatchObject({ readingCount: 1, cumulativeCount: 5 });
      expect((await store.deviceReadings('fresh', { order: 'asc' })).items).toHaveLength(1);
      expect(await store.getDevice('old')).toMatchObject({ readingCount: 2, cumulativeCount: 6 });
    } finally {
      await cleanup();
    }
  });
});
