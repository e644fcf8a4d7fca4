/**
 * The audit and backups the server runs on its own (TALLY_AUDIT_EVERY, TALLY_BACKUP_*): they run,
 * their results reach GET /metrics and the log, a corrupted summary is reported, ingest goes on
 * meanwhile, and the backup directory keeps exactly TALLY_BACKUP_KEEP checked backups.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { verifyDatabase } from '../../src/store/sqlite/backup.js';
import { postReadings, type Harness } from '../http/client.js';
import { startTally, tempDir } from '../helpers.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { scrape, valueOf, type Sample } from './exposition.js';

/** Scrapes until `ready` holds (or fails after `ms`); returns that scrape. */
async function scrapeUntil(t: Harness, ready: (samples: Sample[]) => boolean, ms = 30_000): Promise<Sample[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const { samples } = await scrape(t.tally);
    if (ready(samples)) return samples;
    if (Date.now() > deadline) throw new Error(`metrics not as expected within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const runs = (samples: Sample[], name: string, result: string) => valueOf(samples, name, { result });

/** 3 devices, 10 readings. */
async function write(t: Harness): Promise<void> {
  const readings = Array.from({ length: 10 }, (_, i) => ({ device_id: `m-${i % 3}`, ts: new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString(), count: 2 }));
  expect((await postReadings(t, readings)).json.accepted).toBe(10);
}

describe('TALLY_AUDIT_EVERY on SQLite', () => {
  let t: Harness;
  const lines: Array<Record<string, any>> = [];

  beforeAll(async () => {
    t = await startTally({ TALLY_STORE: '', TALLY_AUDIT_EVERY: '300ms', TALLY_LOG_LEVEL: 'info' }, { logStream: { write: (l) => lines.push(JSON.parse(l)) } });
    await write(t);
  });
  afterAll(() => t?.stop());

  test('a clean audit: its figures on /metrics and an info line', async () => {
    const before = Date.now() / 1000;
    const samples = await scrapeUntil(t, (s) => runs(s, 'tally_audit_runs_total', 'clean') >= 1 && valueOf(s, 'tally_audit_readings_checked') === 10);
    expect(valueOf(samples, 'tally_audit_mismatches')).toBe(0);
    expect(valueOf(samples, 'tally_audit_devices_checked')).toBe(3);
    expect(valueOf(samples, 'tally_audit_last_run_timestamp_seconds')).toBeGreaterThan(before - 1);
    expect(valueOf(samples, 'tally_audit_duration_seconds')).toBeGreaterThan(0);
    expect(runs(samples, 'tally_audit_runs_total', 'failed')).toBe(0);
    const line = lines.find((l) => l.audit !== undefined && l.level === 30);
    expect(line?.msg).toMatch(/^audit: 3 devices, 10 readings checked in .* s; quick_check: ok; no mismatches$/);
  });

  test('a summary corrupted on purpose: the next audit counts it, and an error line names the device; ingest goes on', async () => {
    const db = new Database(join(t.dir, 'tally.db'));
    db.pragma('busy_timeout = 5000');
    db.prepare(`UPDATE devices SET cumulative_count = cumulative_count + 1 WHERE device_id = 'm-1'`).run();
    db.close();
    // Writes keep being acknowledged while audits run every 300 ms.
    for (let i = 0; i < 20; i++) {
      expect((await postReadings(t, [{ device_id: 'w', ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), count: 1 }])).status).toBe(200);
    }
    const samples = await scrapeUntil(t, (s) => runs(s, 'tally_audit_runs_total', 'mismatches') >= 1);
    expect(valueOf(samples, 'tally_audit_mismatches')).toBe(1);
    const line = lines.find((l) => l.level === 50 && l.audit !== undefined);
    expect(line?.audit.mismatches).toEqual([{ deviceId: 'm-1', problem: "cumulative_count is 7, its stored readings' counts add up to 6" }]);
    expect(line?.msg).toMatch(/^audit: .*; 1 mismatch; run tally audit for the full list$/);
  });
});

describePg('TALLY_AUDIT_EVERY on PostgreSQL', () => {
  let db: TestDatabase;
  let t: Harness;
  beforeAll(async () => {
    db = await createDatabase();
    t = await startTally({ TALLY_STORE: db.url, TALLY_AUDIT_EVERY: '300ms' });
    await write(t);
  });
  afterAll(async () => {
    await t?.stop();
    await db?.drop();
  });

  test('runs and reports through /metrics', async () => {
    await scrapeUntil(t, (s) => runs(s, 'tally_audit_runs_total', 'clean') >= 1 && valueOf(s, 'tally_audit_readings_checked') === 10);
    await db.query(`UPDATE devices SET reading_count = 1 WHERE device_id = 'm-2'`);
    const samples = await scrapeUntil(t, (s) => runs(s, 'tally_audit_runs_total', 'mismatches') >= 1);
    expect(valueOf(samples, 'tally_audit_mismatches')).toBe(1);
  });

  test('TALLY_BACKUP_EVERY is refused on PostgreSQL, pointing to pg_dump', () => {
    expect(() => loadConfig({ TALLY_STORE: db.url, TALLY_BACKUP_EVERY: '6h' })).toThrow(/TALLY_BACKUP_EVERY backs up SQLite stores; for PostgreSQL use pg_dump/);
  });
});

describe('TALLY_BACKUP_EVERY with TALLY_BACKUP_KEEP', () => {
  let t: Harness;
  let backups: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    backups = tempDir('tally-scheduled-');
    t = await startTally({ TALLY_STORE: '', TALLY_BACKUP_EVERY: '100ms', TALLY_BACKUP_KEEP: '2', TALLY_BACKUP_DIR: backups.dir });
    await write(t);
  });
  afterAll(async () => {
    await t?.stop();
    backups?.cleanup();
  });

  test('keeps exactly the newest N checked backups, and reports them on /metrics', async () => {
    const samples = await scrapeUntil(t, (s) => runs(s, 'tally_backup_runs_total', 'ok') >= 4);
    expect(runs(samples, 'tally_backup_runs_total', 'failed')).toBe(0);
    expect(valueOf(samples, 'tally_backup_size_bytes')).toBeGreaterThan(0);
    expect(valueOf(samples, 'tally_backup_last_success_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    await t.tally.maintenance!.backup(); // one more, waited for, so no backup is under way below
    const files = readdirSync(backups.dir).sort();
    expect(files).toHaveLength(2);
    for (const f of files) {
      expect(f).toMatch(/^tally-\d{8}T\d{9}Z\.db$/);
      verifyDatabase(join(backups.dir, f));
    }
    const newest = new Database(join(backups.dir, files[1]!), { readonly: true });
    expect(newest.prepare('SELECT sum(reading_count) FROM devices').pluck().get()).toBe(10);
    newest.close();
  });

  test('TALLY_BACKUP_DIR defaults to backups/ beside the store file', () => {
    const config = loadConfig({ TALLY_DATA_DIR: '/srv/tally', TALLY_BACKUP_EVERY: '6h' });
    expect(config.backups).toEqual({ everyMs: 6 * 3_600_000, label: '6h', dir: '/srv/tally/backups', keep: 7 });
  });
});
