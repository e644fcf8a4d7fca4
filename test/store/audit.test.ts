/**
 * What the SQLite audit finds beyond a wrong summary (test/app/audit-cli.test.ts): a damaged
 * B-tree page (quick_check), a journal entry that does not decode, chunks without a device, and
 * summaries from before pruned readings were kept (SQLite schema 6, PostgreSQL schema 1), checked as
 * bounds.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { auditDatabase, openForAudit } from '../../src/store/sqlite/audit.js';
import { PAGE_BYTES } from '../../src/store/sqlite/open.js';
import { SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { AuditReport } from '../../src/store/types.js';
import { postgresConfig } from '../../src/store/postgres/config.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { tempDir } from '../helpers.js';
import { createDatabase, describePg } from '../pg/database.js';

const BASE = Date.UTC(2024, 0, 1) * 1000;
const MINUTE = 60_000_000;
const reading = (deviceId: string, m: number, count = 1): Reading => ({ deviceId, tsUs: BASE + m * MINUTE, tsText: null, count, payload: null });

let dir: ReturnType<typeof tempDir>;
let file: string;
beforeEach(() => {
  dir = tempDir('tally-audit-');
  file = join(dir.dir, 'tally.db');
});
afterEach(() => dir.cleanup());

/** A closed store holding `readings` (compacted at close). */
async function storeWith(readings: Reading[], then?: (store: SqliteStore) => Promise<void>): Promise<void> {
  const store = await SqliteStore.open({ file, synchronous: 'FULL', cacheMiB: 8, compactRows: 100_000 });
  await store.appendBatch(readings);
  await then?.(store);
  await store.close();
}

function audit(full = false): AuditReport {
  const db = openForAudit(file);
  try {
    return auditDatabase(db, { full });
  } finally {
    db.close();
  }
}

function sql(text: string): void {
  const db = new Database(file);
  db.exec(text);
  db.close();
}

describe('the SQLite audit', () => {
  test('a damaged index page: quick_check says where, the summaries still check out', async () => {
    await storeWith(Array.from({ length: 2000 }, (_, i) => reading(`d${i % 50}`, i)));
    expect(audit().mismatchCount).toBe(0);
    const db = new Database(file);
    const root = db.prepare(`SELECT rootpage FROM sqlite_schema WHERE name = 'chunks_last'`).pluck().get() as number;
    db.close();
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(8, 0x41), 0, 8, (root - 1) * PAGE_BYTES); // the page header: no valid page type
    closeSync(fd);
    const report = audit();
    expect(report.storeCheck).toMatch(/^quick_check: \d+ problems?$/);
    expect(report.mismatches).toContainEqual({ deviceId: null, problem: `quick_check: Tree ${root} page ${root}: btreeInitPage() returns error code 11` });
    expect(report.mismatches.filter((m) => m.deviceId !== null)).toEqual([]);
    expect(report.readings).toBe(2000);
    // integrity_check stops at the damage (SQLITE_CORRUPT): reported as the store's own mismatch all the same.
    const full = audit(true);
    expect(full.storeCheck).toBe('integrity_check: failed');
    expect(full.mismatches).toEqual([{ deviceId: null, problem: 'integrity_check failed: database disk image is malformed' }]);
  });

  test('a journal entry that does not decode, and chunks of no device', async () => {
    await storeWith([reading('a', 1)]);
    sql(`INSERT INTO journal (seq, data, keys) VALUES (99, X'41', X'01000000');
         INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data) VALUES (999, 1, 1, 1, '1' || char(9, 9, 9, 10))`);
    const report = audit();
    expect(report.mismatches).toEqual([
      { deviceId: null, problem: '1 chunks belong to device key 999, which has no summary' },
      { deviceId: null, problem: 'journal entry 99 does not decode: corrupt chunk text: no reading at offset 0' },
    ]);
  });

  test('a chunk whose row disagrees with its text: count, span and statistics each reported', async () => {
    await storeWith([reading('a', 1, 2), reading('a', 2, 3), reading('b', 1)]);
    sql(`UPDATE chunks SET n = 5, last_ts_us = last_ts_us + 1, count_sum = 1 WHERE device_key = (SELECT key FROM devices WHERE device_id = 'a')`);
    const problems = audit().mismatches.map((m) => `${m.deviceId}: ${m.problem.replace(/chunk -?\d+/, 'chunk N')}`);
    expect(problems).toEqual([
      'a: chunk N holds 2 readings, its row says 5',
      `a: chunk N spans ${BASE + MINUTE}..${BASE + 2 * MINUTE}, its row says ${BASE + MINUTE}..${BASE + 2 * MINUTE + 1}`,
      "a: chunk N's count statistics (counted, sum, min, max) disagree with its readings",
    ]);
  });

  test('a store from schema 7 (pruned readings not kept): pruned devices are checked as bounds, the others exactly', async () => {
    await storeWith([reading('kept', 2), reading('kept', 3), reading('pruned', 1), reading('pruned', 5)], async (store) => {
      expect(await store.pruneBefore(BASE + 2 * MINUTE, 10)).toBe(1);
    });
    // Back to how schema 7 kept summaries: no pruned_* columns.
    sql(`ALTER TABLE devices DROP COLUMN pruned_count; ALTER TABLE devices DROP COLUMN pruned_sum; PRAGMA user_version = 7;`);
    await storeWith([]); // opening migrates to 8
    let report = audit();
    expect(report).toMatchObject({ mismatchCount: 0, devices: 2, readings: 3, boundsOnly: 1 });
    // As bounds: a count below what is stored is still found.
    sql(`UPDATE devices SET reading_count = 0 WHERE device_id = 'pruned'`);
    report = audit();
    expect(report.mismatches).toEqual([{ deviceId: 'pruned', problem: 'reading_count is 0, its stored readings number 1' }]);
  });

  test('refuses a file of another schema version, naming the way out', async () => {
    await storeWith([reading('a', 1)]);
    sql('PRAGMA user_version = 7');
    expect(() => openForAudit(file)).toThrow(`has schema version 7, this Tally audits version ${SCHEMA_VERSION}: run \`tally migrate\``);
  });
});

describePg('the PostgreSQL audit', () => {
  test('a database from schema 2 (pruned readings not kept): pruned devices are checked as bounds, the others exactly', async () => {
    const db = await createDatabase();
    try {
      const open = () => PostgresStore.open(postgresConfig(db.url, { poolSize: 2 }));
      let store = await open();
      await store.appendBatch([reading('kept', 2), reading('kept', 3), reading('pruned', 1), reading('pruned', 5)]);
      expect(await store.pruneBefore(BASE + 2 * MINUTE, 10)).toBe(1);
      await store.close();
      // Back to schema 2: no pruned_* columns, version 3 not applied.
      await db.query('ALTER TABLE devices DROP COLUMN pruned_count, DROP COLUMN pruned_sum');
      await db.query('DELETE FROM tally_schema_migrations WHERE version > 2');
      store = await open(); // migrates to 3
      try {
        expect(await store.audit!({ full: false })).toMatchObject({ mismatchCount: 0, devices: 2, readings: 3, boundsOnly: 1 });
        await db.query(`UPDATE devices SET cumulative_count = 0 WHERE device_id = 'pruned'`);
        expect((await store.audit!({ full: false })).mismatches).toEqual([
          { deviceId: 'pruned', problem: "cumulative_count is 0, its stored readings' counts add up to 1" },
        ]);
      } finally {
        await store.close();
      }
    } finally {
      await db.drop();
    }
  });
});
