/**
 * `tally backup` and `tally restore` as an operator runs them: the backup from a separate process
 * while a Tally serves the file and writes keep flowing, the restore into a fresh data directory,
 * a Tally started on it, and the audit run on what it holds.
 */
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postReadings, type Harness } from '../http/client.js';
import { startTally, tempDir } from '../helpers.js';
import { runCli as cli } from '../cli.js';

const DEVICES = 20;
const WRITERS = 4;
const PER_REQUEST = 50;

/** Writers posting batches until told to stop; every acknowledged reading is kept with when its answer came. */
function writeUntilStopped(t: Harness) {
  const acked: Array<{ key: string; at: number }> = [];
  let stop = false;
  let sent = 0;
  const writer = async (w: number) => {
    for (let round = 0; !stop; round++) {
      const readings = Array.from({ length: PER_REQUEST }, (_, i) => {
        const n = sent++;
        return { device_id: `dev-${(w * 7 + i) % DEVICES}`, ts: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(), count: (n % 5) + 1 };
      });
      const answer = await postReadings(t, readings);
      expect(answer.status).toBe(200);
      expect(answer.json.accepted).toBe(PER_REQUEST);
      const at = performance.now();
      for (const r of readings) acked.push({ key: `${r.device_id}@${Date.parse(r.ts)}`, at });
    }
  };
  const running = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  return {
    acked,
    stop: async () => {
      stop = true;
      await running;
    },
  };
}

/** Every stored reading of the restored store, as device@ms keys. */
async function storedKeys(t: Harness): Promise<Set<string>> {
  const keys = new Set<string>();
  for (let d = 0; d < DEVICES; d++) {
    const id = `dev-${d}`;
    for (const r of (await t.tally.store.deviceReadings(id, { order: 'asc' })).items) keys.add(`${id}@${r.tsUs / 1000}`);
  }
  return keys;
}

describe('tally backup while writes flow, then tally restore into a fresh data directory', () => {
  let source: Harness;
  let backups: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    source = await startTally({ TALLY_STORE: '' });
    backups = tempDir('tally-backups-');
  });
  afterAll(async () => {
    await source?.stop();
    backups?.cleanup();
  });

  test('every reading acknowledged before the backup began is restored, and the restored store audits clean', async () => {
    const env = { TALLY_STORE: `sqlite:${join(source.dir, 'tally.db')}` };
    const file = join(backups.dir, 'tally-backup.db');
    const writes = writeUntilStopped(source);
    while (writes.acked.length < 2_000) await new Promise((r) => setTimeout(r, 10));
    const began = performance.now();
    const before = writes.acked.map((a) => a.key);
    const run = await cli(['backup', file], env);
    const ended = performance.now();
    await writes.stop();
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^tally backup: .*tally-backup\.db written and checked \(quick_check ok\), \d+ bytes in .* s\n$/);
    expect(run.code).toBe(0);
    // Writes were acknowledged while the backup ran: it did not stop ingest.
    expect(writes.acked.filter((a) => a.at > began && a.at < ended).length).toBeGreaterThan(0);

    const fresh = tempDir('tally-restored-');
    try {
      const restore = await cli(['restore', file], { TALLY_DATA_DIR: fresh.dir });
      expect(restore.stderr).toBe('');
      expect(restore.code).toBe(0);
      const restored = await startTally({ TALLY_STORE: '', TALLY_DATA_DIR: fresh.dir });
      try {
        const keys = await storedKeys(restored);
        expect(before.filter((k) => !keys.has(k))).toEqual([]);
        // Nothing that was never acknowledged (every write here was).
        const ackedAll = new Set(writes.acked.map((a) => a.key));
        expect([...keys].filter((k) => !ackedAll.has(k))).toEqual([]);
        const report = await restored.tally.store.audit!({ full: true });
        expect(report.mismatches).toEqual([]);
        expect(report).toMatchObject({ devices: DEVICES, readings: keys.size, storeCheck: 'integrity_check: ok' });
        // Each summary agrees with the readings it lists (what the audit checked, seen through the API).
        const summary = await restored.tally.store.getDevice('dev-3');
        expect(summary?.readingCount).toBe([...keys].filter((k) => k.startsWith('dev-3@')).length);
      } finally {
        await restored.stop();
      }
    } finally {
      fresh.cleanup();
    }
  });

  test('backup refuses an existing file unless --force', async () => {
    const env = { TALLY_STORE: `sqlite:${join(source.dir, 'tally.db')}` };
    const file = join(backups.dir, 'existing.db');
    writeFileSync(file, 'keep me');
    const refused = await cli(['backup', file], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`tally backup: ${file} exists; pass --force to replace it\n`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
    const forced = await cli(['backup', file, '--force'], env);
    expect(forced.code).toBe(0);
    expect(statSync(file).size).toBeGreaterThan(4096);
  });

  test('restore refuses a store a Tally is running on, an existing store without --force, and a file that is not a good backup', async () => {
    const good = join(backups.dir, 'good.db');
    expect((await cli(['backup', good], { TALLY_STORE: `sqlite:${join(source.dir, 'tally.db')}` })).code).toBe(0);

    const running = await cli(['restore', good, '--force'], { TALLY_DATA_DIR: source.dir });
    expect(running.code).toBe(1);
    expect(running.stderr).toMatch(/is in use by a running Tally: stop it before restoring\n$/);

    const target = tempDir('tally-target-');
    try {
      const env = { TALLY_DATA_DIR: target.dir };
      const notTally = join(backups.dir, 'not-tally.db');
      writeFileSync(notTally, 'not a database at all, just text that is long enough to look like a file'.repeat(100));
      const bad = await cli(['restore', notTally], env);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^tally restore: .*not-tally\.db is not a readable SQLite database: file is not a database\n$/);
      const truncated = join(backups.dir, 'truncated.db');
      copyFileSync(good, truncated);
      writeFileSync(truncated, readFileSync(good).subarray(0, statSync(good).size / 2));
      const cut = await cli(['restore', truncated], env);
      expect(cut.code).toBe(1);
      expect(existsSync(join(target.dir, 'tally.db'))).toBe(false);

      // A stopped Tally's store with readings the backup does not have: kept without --force, replaced with it.
      const old = await startTally({ TALLY_STORE: '', TALLY_DATA_DIR: target.dir });
      await postReadings(old, [{ device_id: 'only-in-old', ts: '2030-01-01T00:00:00Z', count: 1 }]);
      await old.stop();
      const exists = await cli(['restore', good], env);
      expect(exists.code).toBe(1);
      expect(exists.stderr).toMatch(/tally\.db exists; pass --force to replace the database with the backup\n$/);
      // A WAL left beside the old store (a crash) would be replayed into the restored file: it must go.
      writeFileSync(join(target.dir, 'tally.db-wal'), 'stale');
      const forced = await cli(['restore', good, '--force'], env);
      expect(forced.code).toBe(0);
      expect(existsSync(join(target.dir, 'tally.db-wal'))).toBe(false);
      const back = await startTally({ TALLY_STORE: '', TALLY_DATA_DIR: target.dir });
      try {
        expect(await back.tally.store.getDevice('only-in-old')).toBeUndefined();
        expect((await back.tally.store.getDevice('dev-0'))?.readingCount).toBeGreaterThan(0);
      } finally {
        await back.stop();
      }
    } finally {
      target.cleanup();
    }
  });
});
