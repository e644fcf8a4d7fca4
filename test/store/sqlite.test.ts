import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import { StorageUnavailableError } from '../../src/domain/errors.js';
import type { Reading } from '../../src/domain/reading.js';
import { migrate, SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { DeviceListQuery } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';
import { runStoreContract, type OpenedStore } from './contract.js';

function openFile(file: string, mergeRows = 50_000): Promise<SqliteStore> {
  return SqliteStore.open({ file, synchronous: 'FULL', cacheMiB: 8, mergeRows });
}

async function openTemp(mergeRows?: number): Promise<OpenedStore> {
  const { dir, cleanup } = tempDir('tally-store-');
  const store = await openFile(join(dir, 'tally.db'), mergeRows);
  return {
    store,
    cleanup: async () => {
      await store.close();
      cleanup();
    },
  };
}

// Readings live in the inbox until a merge moves them to the device-ordered table: the contract
// must hold with everything in the inbox, with everything merged after each batch, and in between.
runStoreContract('sqlite (readings left in the inbox)', () => openTemp(Number.MAX_SAFE_INTEGER));
runStoreContract('sqlite (inbox merged after every batch)', () => openTemp(1));
runStoreContract('sqlite (merged every 3 readings)', () => openTemp(3));

const BASE = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;
const reading = (deviceId: string, s: number, count: number | null = 1, payload: string | null = null): Reading => ({
  deviceId,
  tsUs: BASE + s * SECOND,
  tsText: null,
  count,
  payload,
});
const ALL: DeviceListQuery = { sort: { by: 'deviceId' }, order: 'asc', limit: 1000, offset: 0 };

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
      const records = await first.listRecords(100);
      await first.close();

      const second = await openFile(file);
      try {
        expect(await second.listDevices(ALL)).toEqual(summaries);
        expect(await second.listRecords(100)).toEqual(records);
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

  test('a second store on the same file sees the same summaries and later commits', async () => {
    await withFile(async (file) => {
      const one = await openFile(file);
      const two = await openFile(file);
      try {
        await one.appendBatch([reading('x', 1, 3), reading('y', 1, 4), reading('x', 2, 5)]);
        expect(await two.listDevices(ALL)).toEqual(await one.listDevices(ALL));
        expect(await two.getDevice('x')).toMatchObject({ readingCount: 2, cumulativeCount: 8 });
        await one.appendBatch([reading('x', 3, 1)]);
        expect((await two.getDevice('x'))?.cumulativeCount).toBe(9);
        // Either writer sees the other's readings as duplicates.
        expect(Array.from(await two.appendBatch([reading('x', 3, 100), reading('z', 1, 7)]))).toEqual([0, 1]);
        expect(await one.getDevice('z')).toMatchObject({ readingCount: 1, cumulativeCount: 7 });
        expect((await one.getDevice('x'))?.cumulativeCount).toBe(9);
      } finally {
        await one.close();
        await two.close();
      }
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
        expect.arrayContaining(['devices', 'readings', 'readings_device_ts', 'readings_ts_device', 'inbox', 'inbox_ts_device']),
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
        expect(after.prepare('SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM inbox) AS n').get()).toEqual({ n: 1 });
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
      // One writer: the pipeline sends one batch at a time.
      expect(store.maxConcurrentWrites).toBe(1);
      await store.appendBatch([reading('old', 1, 1)]);
      // A device id of null breaks the NOT NULL constraint mid-transaction (after 'fresh' got a key).
      const broken = [reading('fresh', 1, 5), reading('old', 2, 5), { ...reading('x', 1), deviceId: null as unknown as string }];
      await expect(store.appendBatch(broken)).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(await store.getDevice('fresh')).toBeUndefined();
      expect(await store.getDevice('old')).toMatchObject({ readingCount: 1, cumulativeCount: 1 });
      expect((await store.listDevices(ALL)).total).toBe(1);
      expect(await store.listRecords(10)).toHaveLength(1);
      // The device key handed out inside the rolled-back transaction must not be reused.
      expect(Array.from(await store.appendBatch([reading('fresh', 1, 5), reading('old', 2, 5)]))).toEqual([1, 1]);
      expect(await store.getDevice('fresh')).toMatchObject({ readingCount: 1, cumulativeCount: 5 });
      expect(await store.deviceReadings('fresh', { order: 'asc' })).toHaveLength(1);
      expect(await store.getDevice('old')).toMatchObject({ readingCount: 2, cumulativeCount: 6 });
    } finally {
      await cleanup();
    }
  });
});
