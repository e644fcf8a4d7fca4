import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION as PG_SCHEMA_VERSION } from '../../src/store/postgres/migrations.js';
import { SCHEMA_VERSION as SQLITE_SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';
import { tempDir } from '../helpers.js';
import { createDatabase, describePg } from '../pg/database.js';

const CLI = fileURLToPath(new URL('../../src/app/cli.ts', import.meta.url));

function migrate(store: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, 'migrate'], {
    env: { PATH: process.env.PATH ?? '', TALLY_STORE: store },
    encoding: 'utf8',
    timeout: 20_000,
  });
}

describe('tally migrate', () => {
  test('on SQLite: creates and migrates the file, then exits 0', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'new', 'tally.db');
      const run = migrate(`sqlite:${file}`);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(/schema up to date.*"backend":"sqlite"/);
      expect(existsSync(file)).toBe(true);
      const db = new Database(file, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
      db.close();
    } finally {
      cleanup();
    }
  });

  test('an unreachable PostgreSQL: a one-line message and exit 1', () => {
    const run = migrate('postgres://postgres@127.0.0.1:1/none?connect_timeout_ms=2000');
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^tally: PostgreSQL is unavailable \(migrating the schema\): .*\n$/);
  });
});

describePg('tally migrate on PostgreSQL', () => {
  test('migrates a fresh database and records the version; a second run is a no-op', async () => {
    const db = await createDatabase();
    try {
      for (let i = 0; i < 2; i++) {
        const run = migrate(db.url);
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        expect(run.stdout).toMatch(/schema up to date.*"backend":"postgres"/);
      }
      expect(await db.query('SELECT version FROM tally_schema_migrations ORDER BY version')).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
      expect(MIGRATIONS.at(-1)!.version).toBe(PG_SCHEMA_VERSION);
      expect(await db.query(`SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('readings', 'devices')`)).toEqual([{ n: 2 }]);
    } finally {
      await db.drop();
    }
  });
});
