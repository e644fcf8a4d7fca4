import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { describe, expect, test } from 'vitest';
import { InvalidCursorError, StorageUnavailableError } from '../../src/domain/errors.js';
import type { Reading } from '../../src/domain/reading.js';
import { postgresConfig } from '../../src/store/postgres/config.js';
import { storageError } from '../../src/store/postgres/errors.js';
import { withClient } from '../../src/store/postgres/client.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from '../../src/store/postgres/migrations.js';
import { PARTITION_US, partitionName, weekOf } from '../../src/store/postgres/partitions.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import type { DeviceListQuery } from '../../src/store/types.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { runStoreContract } from './contract.js';

// One describePg around everything: without TALLY_TEST_PG_URL the file is one skipped line.
describePg('PostgreSQL store', () => {
  runStoreContract('postgres', async () => {
    const db = await createDatabase();
    const store = await PostgresStore.open(postgresConfig(db.url, { poolSize: 4 }));
    return {
      store,
      cleanup: async () => {
        await store.close();
        await db.drop();
      },
    };
  });
  specifics();
});

/** What the contract does not cover: migrations, contention, outages, partitions, typed cursors. */
function specifics(): void {

  const BASE = Date.UTC(2024, 0, 1) * 1000;
  const reading = (deviceId: string, tsUs: number, count: number | null = 1, payload: string | null = null): Reading => ({
    deviceId,
    tsUs,
    tsText: null,
    count,
    payload,
  });

  /** A store on a fresh database, with the database at hand for checks behind the store's back. */
  async function withStore(body: (store: PostgresStore, db: TestDatabase) => Promise<void>, poolSize = 4): Promise<void> {
    const db = await createDatabase();
    const store = await PostgresStore.open(postgresConfig(db.url, { poolSize }));
    try {
      await body(store, db);
    } finally {
      await store.close();
      await db.drop();
    }
  }

  describe('PostgresStore specifics', () => {
    test('a backend terminated while its connection is checked out for a transaction fails that transaction, and nothing else', async () => {
      const db = await createDatabase();
      const pool = new pg.Pool({ connectionString: db.url, max: 2 });
      pool.on('error', () => undefined);
      // Without a listener on the checked-out client, the socket's end after the FATAL message is an
      // 'error' event nobody hears: an uncaught exception, i.e. a crashed node (seen under
      // pg_terminate_backend in the outage test, whose only checked-out connections create partitions).
      const uncaught: unknown[] = [];
      const record = (err: unknown) => uncaught.push(err);
      process.on('uncaughtException', record);
      try {
        const outcome = await withClient(pool, async (client) => {
          await client.query('BEGIN');
          const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          const sleeping = client.query('SELECT pg_sleep(10)').then(
            () => new Error('the statement was not cancelled'),
            (err: unknown) => err,
          );
          await sleep(100);
          await db.query('SELECT pg_terminate_backend($1)', [pid]);
          throw await sleeping;
        }).then(
          () => 'committed',
          (err: unknown) => err,
        );
        expect(outcome).toBeInstanceOf(Error);
        await sleep(200); // the socket's end, after the FATAL message
        expect(uncaught).toEqual([]);
        // The pool carries on with a fresh connection.
        expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
      } finally {
        process.off('uncaughtException', record);
        await pool.end();
        await db.drop();
      }
    });

    test('nodes starting together run the migrations once', async () => {
      const db = await createDatabase();
      try {
        const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStore.open(postgresConfig(db.url, { poolSize: 2 }))));
        await Promise.all(stores.map((s) => s.close()));
        const rows = await db.query<{ version: number }>('SELECT version FROM tally_schema_migrations ORDER BY version');
        expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
        expect(rows.at(-1)?.version).toBe(SCHEMA_VERSION);
        // Reopening finds nothing to do.
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try {
          expect(await migrate(client)).toEqual([]);
        } finally {
          await client.end();
        }
      } finally {
        await db.drop();
      }
    });

    test('a database migrated by a newer Tally is refused', async () => {
      const db = await createDatabase();
      try {
        await (await PostgresStore.open(postgresConfig(db.url))).close();
        await db.query('INSERT INTO tally_schema_migrations (version, name) VALUES ($1, $2)', [SCHEMA_VERSION + 1, 'future']);
        const refusal = await PostgresStore.open(postgresConfig(db.url)).catch((e: unknown) => e);
        expect((refusal as Error).message).toMatch(/newer than this Tally/);
        expect(refusal).toBeInstanceOf(StorageUnavailableError); // as the SQLite store refuses one
      } finally {
        await db.drop();
      }
    });

    test('errors leave the backend as Tally errors or plain errors, never as pg types', async () => {
      expect(storageError(new pg.DatabaseError('syntax error', 1, 'error'), 'x')).not.toBeInstanceOf(pg.DatabaseError);
      const bug = Object.assign(new pg.DatabaseError('division by zero', 1, 'error'), { code: '22012' });
      expect(storageError(bug, 'reading')).toMatchObject({ message: 'PostgreSQL failed (reading): division by zero [SQLSTATE 22012]' });
      expect(storageError(bug, 'reading')).not.toBeInstanceOf(StorageUnavailableError);
      const killed = Object.assign(new pg.DatabaseError('terminating connection due to administrator command', 1, 'error'), { code: '57P01' });
      expect(storageError(killed, 'appending')).toBeInstanceOf(StorageUnavailableError);
      expect(storageError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x')).toBeInstanceOf(StorageUnavailableError);
      expect(storageError(new Error('Connection terminated unexpectedly'), 'x')).toBeInstanceOf(StorageUnavailableError);
    });

    test('an unreachable server is StorageUnavailableError, within the connection timeout', async () => {
      const started = Date.now();
      await expect(PostgresStore.open(postgresConfig('postgres://postgres@127.0.0.1:1/none', { connectionTimeoutMillis: 2000 }))).rejects.toBeInstanceOf(
        StorageUnavailableError,
      );
      expect(Date.now() - started).toBeLessThan(5000);
    });

    test('statement_timeout is set: a statement stuck behind a lock is cancelled and answered StorageUnavailableError', async () => {
      await withStore(async (_store, db) => {
        const store = await PostgresStore.open(postgresConfig(db.url, { statementTimeoutMillis: 300 }));
        const locker = new pg.Client({ connectionString: db.url });
        await locker.connect();
        try {
          await locker.query('BEGIN');
          await locker.query('LOCK TABLE devices IN ACCESS EXCLUSIVE MODE');
          const started = Date.now();
          const error = await store.getDevice('stuck').catch((e: unknown) => e);
          expect(error).toBeInstanceOf(StorageUnavailableError);
          expect((error as Error).message).toMatch(/statement timeout/);
          expect(Date.now() - started).toBeLessThan(5000);
          await locker.query('ROLLBACK');
          expect(await store.getDevice('stuck')).toBeUndefined();
        } finally {
          await locker.end();
          await store.close();
        }
      });
    });

    test('payloads jsonb refuses (\\u0000, lone surrogates) still aggregate and sort by their numeric fields, and round-trip unchanged', async () => {
      await withStore(async (store) => {
        const odd = [
          JSON.stringify({ note: 'nul\u0000here', temp: 5 }),
          JSON.stringify({ note: '\ud800 lone', temp: 7, also: '\\u0000 is text' }),
          JSON.stringify({ note: 'plain', temp: 9 }),
        ];
        await store.appendBatch(odd.map((payload, i) => reading(`odd-${i}`, BASE + i, 1, payload)));
        await store.appendBatch(odd.map((payload, i) => reading('odd-agg', BASE + i, 1, payload)));
        expect(await store.aggregate('odd-agg', { fromUs: BASE, toUs: BASE + 10, everyUs: 1_000_000, field: { kind: 'payload', name: 'temp' } })).toEqual([
          { startUs: BASE, count: 3, sum: 21, min: 5, max: 9, avg: 7 },
        ]);
        const page = await store.listDevices({ sort: { by: 'payload', fields: ['temp'] }, order: 'desc', limit: 10, prefix: 'odd-' });
        // odd-agg's latest is the plain one (9): a tie with odd-2, broken by key, later first in desc.
        expect(page.items.map((d) => d.deviceId)).toEqual(['odd-agg', 'odd-2', 'odd-1', 'odd-0']);
        expect((await store.deviceReadings('odd-agg', { order: 'asc' })).items.map((r) => r.payload)).toEqual(odd);
      });
    });

    test('a batch with one device many times and one (device, ts) many times: stored once, flagged in batch order', async () => {
      await withStore(async (store, db) => {
        const batch = [
          reading('twice', BASE + 2, 5, '{"v":"first"}'),
          reading('other', BASE + 2, 1),
          reading('twice', BASE + 1, 2),
          reading('twice', BASE + 2, 7, '{"v":"second"}'),
          reading('twice', BASE + 3, 1, '{"v":"latest"}'),
          reading('twice', BASE + 2, 9),
        ];
        expect(Array.from(await store.appendBatch(batch))).toEqual([1, 1, 1, 0, 1, 0]);
        expect(await store.getDevice('twice')).toEqual({
          deviceId: 'twice',
          firstTsUs: BASE + 1,
          latestTsUs: BASE + 3,
          latestTsText: null,
          latestPayload: '{"v":"latest"}',
          readingCount: 3,
          cumulativeCount: 8,
        });
        const rows = await db.query<{ ts_us: string; count: number; payload: string | null }>(
          `SELECT ts_us::text, count, payload FROM readings WHERE device_id = 'twice' ORDER BY ts_us`,
        );
        expect(rows).toEqual([
          { ts_us: String(BASE + 1), count: 2, payload: null },
          { ts_us: String(BASE + 2), count: 5, payload: '{"v":"first"}' },
          { ts_us: String(BASE + 3), count: 1, payload: '{"v":"latest"}' },
        ]);
      });
    });

    test('two writers send the same batches in opposite device orders at once: no error, every reading stored once', async () => {
      const db = await createDatabase();
      const [a, b] = await Promise.all([0, 1].map(() => PostgresStore.open(postgresConfig(db.url, { poolSize: 3 }))));
      try {
        const devices = Array.from({ length: 1000 }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
        const rounds = 30;
        const batchOf = (k: number) => devices.map((d, i) => reading(d, BASE + k * 1_000_000 + (i % 3), (i % 7) + 1, `{"k":${k}}`));
        const storedBy = new Map<number, Uint8Array[]>();
        // Each writer has two batches in flight at a time, in its own device order.
        const writer = async (store: PostgresStore, reversed: boolean, lane: number) => {
          for (let k = lane; k < rounds; k += 2) {
            const batch = batchOf(k);
            if (reversed) batch.reverse();
            const flags = await store.appendBatch(batch);
            if (reversed) flags.reverse();
            storedBy.set(k, [...(storedBy.get(k) ?? []), flags]);
          }
        };
        await Promise.all([writer(a!, false, 0), writer(a!, false, 1), writer(b!, true, 0), writer(b!, true, 1)]);
        for (let k = 0; k < rounds; k++) {
          const [x, y] = storedBy.get(k)!;
          // Exactly one of the two stored each reading.
          expect(x!.every((f, i) => f + y![i]! === 1)).toBe(true);
        }
        const perDevice = (i: number) => ({ readingCount: rounds, cumulativeCount: rounds * ((i % 7) + 1) });
        for (const i of [0, 1, 499, 998, 999]) expect(await a!.getDevice(devices[i]!)).toMatchObject(perDevice(i));
        const [totals] = await db.query<{ n: string; s: string; c: string }>(
          'SELECT (SELECT count(*) FROM readings)::text AS n, (SELECT sum(cumulative_count) FROM devices)::text AS s, (SELECT sum(reading_count) FROM devices)::text AS c',
        );
        const expectedSum = devices.reduce((sum, _d, i) => sum + rounds * ((i % 7) + 1), 0);
        expect(totals).toEqual({ n: String(rounds * 1000), s: String(expectedSum), c: String(rounds * 1000) });
      } finally {
        await Promise.all([a!.close(), b!.close()]);
        await db.drop();
      }
    });

    test('connections killed mid-load: writes fail with StorageUnavailableError or succeed; acknowledged readings are all there, once', async () => {
      await withStore(async (store, db) => {
        const acknowledged: Reading[] = [];
        const failures: unknown[] = [];
        let next = 0;
        let stop = false;
        const load = async () => {
          while (!stop) {
            const batch = Array.from({ length: 200 }, () => {
              const n = next++;
              return reading(`kill-${n % 50}`, BASE + n, 1);
            });
            try {
              const flags = await store.appendBatch(batch);
              expect(Array.from(flags).every((f) => f === 1)).toBe(true);
              acknowledged.push(...batch);
            } catch (err) {
              failures.push(err);
            }
          }
        };
        const loads = Array.from({ length: 4 }, load);
        await db.killConnections(15, 50);
        await sleep(150);
        stop = true;
        await Promise.all(loads);
        for (const err of failures) expect(err).toBeInstanceOf(StorageUnavailableError);
        expect(failures.length, 'the kills hit batches in flight').toBeGreaterThan(0);
        expect(acknowledged.length).toBeGreaterThan(0);
        // The store carries on with fresh connections.
        expect(Array.from(await store.appendBatch([reading('after', BASE, 1)]))).toEqual([1]);
        const [row] = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM readings WHERE device_id LIKE $1', ['kill-%']);
        // Every acknowledged reading is stored (and the primary key keeps each once); a failed batch
        // may have committed before its answer was lost, so the table can hold more than was acknowledged.
        expect(Number(row!.n)).toBeGreaterThanOrEqual(acknowledged.length);
        const present = await db.query<{ k: string }>(`SELECT device_id || '@' || ts_us AS k FROM readings WHERE device_id LIKE 'kill-%'`);
        const keys = new Set(present.map((r) => r.k));
        expect(acknowledged.filter((r) => !keys.has(`${r.deviceId}@${r.tsUs}`))).toEqual([]);
        // Summaries committed with their readings: they count exactly what is stored.
        const summed = await db.query<{ c: string }>(`SELECT sum(reading_count)::text AS c FROM devices WHERE device_id LIKE 'kill-%'`);
        expect(summed[0]!.c).toBe(row!.n);
      });
    });
  });

  describe('PostgreSQL time partitions', () => {
    const WEEK = PARTITION_US;
    const weeks = async (db: TestDatabase) =>
      (
        await db.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass ORDER BY 1`,
        )
      ).map((r) => r.name);

    test('a partition per week, created as its first reading arrives, before 1970 too', async () => {
      await withStore(async (store, db) => {
        expect(await weeks(db)).toEqual([]);
        const w = weekOf(BASE);
        await store.appendBatch([reading('p', BASE), reading('p', BASE + 1), reading('p', -1), reading('p', BASE + 2 * WEEK)]);
        expect(await weeks(db)).toEqual([partitionName(-1), partitionName(w), partitionName(w + 2)].sort());
        expect(partitionName(-1)).toBe('readings_wm1');
        expect((await store.deviceReadings('p', { order: 'asc' })).items.map((r) => r.tsUs)).toEqual([-1, BASE, BASE + 1, BASE + 2 * WEEK]);
      });
    });

    test('two nodes opening the same new weeks at once: no error, every reading stored once', async () => {
      const db = await createDatabase();
      const [a, b] = await Promise.all([0, 1].map(() => PostgresStore.open(postgresConfig(db.url, { poolSize: 3 }))));
      try {
        const batch = Array.from({ length: 30 }, (_, i) => reading(`w-${i % 3}`, BASE + i * WEEK, 1));
        const [fa, fb] = await Promise.all([a!.appendBatch(batch), b!.appendBatch([...batch].reverse())]);
        fb!.reverse();
        expect(Array.from(fa!).map((f, i) => f + fb![i]!)).toEqual(batch.map(() => 1));
        expect(await weeks(db)).toHaveLength(30);
      } finally {
        await Promise.all([a!.close(), b!.close()]);
        await db.drop();
      }
    });

    test('pruneBefore drops whole old weeks that fit in the limit, deletes rows of the rest; another node writes to a dropped week again', async () => {
      const db = await createDatabase();
      const [a, b] = await Promise.all([0, 1].map(() => PostgresStore.open(postgresConfig(db.url, { poolSize: 2 }))));
      try {
        const start = weekOf(BASE) * WEEK;
        const old = [0, 1, 2].map((i) => reading('prune', start - 3 * WEEK + i)); // a whole week of 3
        const older = [0, 1, 2, 3, 4].map((i) => reading('prune', start - 2 * WEEK + i)); // a whole week of 5
        const recent = [0, 1, 2, 3].map((i) => reading('prune', start + i)); // the bound's own week
        await b!.appendBatch([...old, ...older, ...recent]);
        expect(await weeks(db)).toHaveLength(3);
        // 3 + 5 fit in 9: both weeks dropped; then one row of the bound's week.
        expect(await a!.pruneBefore(start + 2, 9)).toBe(9);
        expect(await weeks(db)).toEqual([partitionName(weekOf(start))]);
        expect((await a!.deviceReadings('prune', { order: 'asc' })).items.map((r) => r.tsUs)).toEqual([start + 1, start + 2, start + 3]);
        // A week of more than the limit is not dropped: its rows go a limit at a time.
        await b!.appendBatch([0, 1, 2, 3].map((i) => reading('prune', start - WEEK + i)));
        expect(await a!.pruneBefore(start, 3)).toBe(3);
        expect(await a!.pruneBefore(start, 3)).toBe(1);
        expect(await a!.pruneBefore(start, 3)).toBe(0);
        // Both nodes sweeping at once (every node runs retention): each week goes once, no error.
        await b!.appendBatch([0, 1].flatMap((i) => [reading('prune-both', start - 5 * WEEK + i), reading('prune-both', start - 4 * WEEK + i)]));
        const swept = await Promise.all([a!.pruneBefore(start, 100), b!.pruneBefore(start, 100)]);
        expect(swept[0]! + swept[1]!).toBe(4);
        // The week emptied row by row above goes too, now that it is wholly before the bound.
        expect(await weeks(db)).toEqual([partitionName(weekOf(start))]);
        // Node b still believes in the weeks a dropped: its write finds out and recreates one.
        expect(Array.from(await b!.appendBatch([reading('prune', start - 3 * WEEK)]))).toEqual([1]);
        expect(await a!.getDevice('prune')).toMatchObject({ readingCount: 17 });
        expect(await a!.getDevice('prune-both')).toMatchObject({ readingCount: 4 });
      } finally {
        await Promise.all([a!.close(), b!.close()]);
        await db.drop();
      }
    });
  });

  describe('PostgreSQL cursors', () => {
    test('a forged device-listing position of the wrong type is an InvalidCursorError, not a database error', async () => {
      await withStore(async (store) => {
        await store.appendBatch([reading('c1', BASE), reading('c2', BASE + 1)]);
        const forge = (listing: string, ...position: unknown[]) => Buffer.from(JSON.stringify([listing, ...position])).toString('base64url');
        const cases: Array<[DeviceListQuery['sort'], string]> = [
          [{ by: 'latestTs' }, forge('devices|latestTs|asc|', 'soon', 1)],
          [{ by: 'readingCount' }, forge('devices|readingCount|asc|', 1.5, 1)],
          [{ by: 'deviceId' }, forge('devices|deviceId|asc|', 7, 1)],
          [{ by: 'payload', fields: ['temp'] }, forge('devices|payload.temp|asc|', 'hot', 1)],
        ];
        for (const [sort, cursor] of cases) {
          await expect(store.listDevices({ sort, order: 'asc', limit: 1, cursor })).rejects.toBeInstanceOf(InvalidCursorError);
        }
        // The real ones still work.
        const first = await store.listDevices({ sort: { by: 'latestTs' }, order: 'asc', limit: 1 });
        expect((await store.listDevices({ sort: { by: 'latestTs' }, order: 'asc', limit: 1, cursor: first.nextCursor! })).items.map((d) => d.deviceId)).toEqual(['c2']);
      });
    });
  });
}
