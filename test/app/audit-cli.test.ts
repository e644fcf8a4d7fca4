/**
 * `tally audit` as an operator runs it: a separate process, beside a Tally that is serving the same
 * store (its writer thread holding the SQLite file), on a real file and a real PostgreSQL database.
 * Summaries and chunks are corrupted on purpose with plain SQL; the report must name the device and
 * the exit code must say so.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postReadings, type Harness } from '../http/client.js';
import { startTally } from '../helpers.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { runCli as cli } from '../cli.js';

/** Three devices, one of them written out of order, and a duplicate: 8 readings stored. */
async function write(t: Harness): Promise<void> {
  const r = (device: string, minute: number, count: number | null, payload?: unknown) => ({
    device_id: device,
    ts: new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString(),
    count,
    ...(payload === undefined ? {} : { payload }),
  });
  await postReadings(t, [r('d1', 0, 1), r('d1', 1, 2, { t: 20.5 }), r('d1', 2, 3, { t: 21 })]);
  await postReadings(t, [r('d2', 5, 1), r('d2', 3, 1), r('d2', 4, null)]);
  await postReadings(t, [r('d2', 3, 9), r('d3', 0, 7), r('d3', 1, 7)]); // d2 at minute 3 again: a duplicate
  // A read makes the server compact what it acknowledged, so the audit from outside sees it in chunks.
  expect((await t.tally.store.getDevice('d2'))?.readingCount).toBe(3);
}

describe('tally audit on SQLite, while Tally serves the file', () => {
  let t: Harness;
  let env: Record<string, string>;
  let file: string;

  beforeAll(async () => {
    t = await startTally({ TALLY_STORE: '' });
    file = join(t.dir, 'tally.db');
    env = { TALLY_STORE: `sqlite:${file}` };
    await write(t);
  });
  afterAll(() => t?.stop());

  test('a clean store: a summary line, exit 0', async () => {
    const run = await cli(['audit'], env);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^tally audit: 3 devices, 8 readings checked in \d+\.\d\d s; quick_check: ok; no mismatches\n$/);
    expect(run.code).toBe(0);
    const full = await cli(['audit', '--full', '--json'], env);
    expect(full.code).toBe(0);
    expect(JSON.parse(full.stdout)).toMatchObject({ devices: 3, readings: 8, mismatchCount: 0, mismatches: [], storeCheck: 'integrity_check: ok' });
  });

  test('a summary row and a chunk corrupted on purpose: each reported with its device, exit 1', async () => {
    const db = new Database(file);
    db.pragma('busy_timeout = 5000');
    db.prepare(`UPDATE devices SET reading_count = reading_count + 1, latest_ts_us = latest_ts_us - 1 WHERE device_id = 'd2'`).run();
    db.prepare(`UPDATE chunks SET data = substr(data, 1, 12) WHERE device_key = (SELECT key FROM devices WHERE device_id = 'd3')`).run();
    db.close();
    const run = await cli(['audit'], env);
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('mismatch device "d2"'))).toEqual([
      'mismatch device "d2": reading_count is 4, its stored readings number 3',
      'mismatch device "d2": latest_ts is 2025-01-01T00:04:59.999999Z, its newest stored reading is at 2025-01-01T00:05:00Z',
    ]);
    expect(lines.filter((l) => l.startsWith('mismatch device "d3"'))[0]).toMatch(/^mismatch device "d3": chunk -?\d+ does not decode: corrupt chunk text/);
    expect(run.stdout).not.toContain('"d1"');
    expect(lines.at(-1)).toMatch(/^tally audit: 3 devices, 6 readings checked in .* s; quick_check: ok; \d+ mismatches$/);
    // The server goes on serving: the audit wrote nothing and held nothing.
    expect((await postReadings(t, [{ device_id: 'd1', ts: '2025-01-01T01:00:00Z', count: 1 }])).status).toBe(200);
  });

  test('a file that is not there: a one-line error, exit 1, nothing created', async () => {
    const missing = join(t.dir, 'none.db');
    const run = await cli(['audit'], { TALLY_STORE: `sqlite:${missing}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`tally audit: ${missing} does not exist: no store to audit\n`);
    expect(existsSync(missing)).toBe(false);
  });
});

describePg('tally audit on PostgreSQL, while Tally serves the database', () => {
  let t: Harness;
  let db: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createDatabase();
    env = { TALLY_STORE: db.url };
    t = await startTally(env);
    await write(t);
  });
  afterAll(async () => {
    await t?.stop();
    await db?.drop();
  });

  test('clean: exit 0; amcheck is named whether or not it is installed', async () => {
    const run = await cli(['audit'], env);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^tally audit: 3 devices, 8 readings checked in .* s; amcheck not installed: index structure not checked .*; no mismatches\n$/);
    expect(run.code).toBe(0);
    await db.query('CREATE EXTENSION amcheck');
    const full = await cli(['audit', '--full'], env);
    expect(full.stdout).toMatch(/amcheck bt_index_check with heapallindexed on \d+ indexes: ok; no mismatches\n$/);
    expect(full.code).toBe(0);
  });

  test('a summary row corrupted and one deleted: each reported with its device, exit 1', async () => {
    await db.query(`UPDATE devices SET cumulative_count = cumulative_count + 5, first_ts_us = first_ts_us + 1 WHERE device_id = 'd1'`);
    await db.query(`DELETE FROM devices WHERE device_id = 'd3'`);
    const run = await cli(['audit'], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`mismatch device "d1": cumulative_count is 11, its stored readings' counts add up to 6\n`);
    expect(run.stdout).toContain(`mismatch device "d1": first_ts is 2025-01-01T00:00:00.000001Z, its earliest stored reading is at 2025-01-01T00:00:00Z\n`);
    expect(run.stdout).toContain(`mismatch device "d3": 2 readings are stored for it, and it has no summary\n`);
    expect(run.stdout).not.toContain('"d2"');
    expect(run.stdout).toMatch(/tally audit: 2 devices, 6 readings checked .*; 3 mismatches\n$/);
  });

  test('tally backup and restore on PostgreSQL say to use pg_dump / pg_restore, exit 2', async () => {
    const backup = await cli(['backup', '/tmp/never-written.db'], env);
    expect(backup.code).toBe(2);
    expect(backup.stderr).toContain('pg_dump --format=custom --file=tally.dump');
    const restore = await cli(['restore', '/tmp/never-written.db'], env);
    expect(restore.code).toBe(2);
    expect(restore.stderr).toContain('pg_restore');
  });
});
