import type pg from 'pg';
import { StorageUnavailableError } from '../../domain/errors.js';

/**
 * The schema, as numbered migrations. At open every node runs the ones its database lacks, in one
 * transaction holding a transaction-level advisory lock: nodes starting together queue on the
 * lock, and each finds the work done by the first. Transaction-level (not session-level), so it is
 * released at COMMIT even behind a transaction-pooling pgbouncer.
 */

/** The advisory lock key of Tally's migrations ("tally" in ASCII). */
export const MIGRATION_LOCK = 0x74_61_6c_6c_79;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'readings and device summaries',
    sql: `
      -- Device ids compare byte-wise (COLLATE "C"), as on SQLite: listing order, prefix ranges and
      -- the B-tree order agree, whatever the database's locale.
      CREATE TABLE readings (
        device_id text COLLATE "C" NOT NULL,
        ts_us     bigint NOT NULL,
        ts_text   text,
        count     integer,
        payload   text,
        PRIMARY KEY (device_id, ts_us)
      ) PARTITION BY RANGE (ts_us);
      -- Newest first across devices (records) and oldest first (retention).
      CREATE INDEX readings_ts ON readings (ts_us, device_id);
      -- A partition per week, created as readings arrive for it (partitions.ts).

      -- One row per device with readings, updated in the transaction of every insert.
      CREATE TABLE devices (
        key              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id        text COLLATE "C" NOT NULL UNIQUE,
        first_ts_us      bigint NOT NULL,
        latest_ts_us     bigint NOT NULL,
        latest_ts_text   text,
        latest_payload   text,
        reading_count    bigint NOT NULL,
        cumulative_count bigint NOT NULL
      );
      -- Keyset listings: each sort column with the key that breaks its ties.
      CREATE INDEX devices_latest_ts ON devices (latest_ts_us, key);
      CREATE INDEX devices_first_ts ON devices (first_ts_us, key);
      CREATE INDEX devices_reading_count ON devices (reading_count, key);
      CREATE INDEX devices_cumulative_count ON devices (cumulative_count, key);
    `,
  },
  {
    version: 2,
    name: 'api keys',
    sql: `
      -- Their SHA-256, never the key; shared by every node on the database. A name is unique
      -- among keys not revoked, so a revoked name can be issued again.
      CREATE TABLE api_keys (
        id            text PRIMARY KEY,
        name          text NOT NULL,
        scopes        text NOT NULL,
        device_prefix text COLLATE "C",
        hash          text NOT NULL,
        created_us    bigint NOT NULL,
        last_used_us  bigint,
        revoked_us    bigint
      );
      CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_us IS NULL;
    `,
  },
  {
    version: 3,
    name: 'pruned readings kept in device summaries',
    // Summaries stay all-time while retention deletes readings; what it deleted is kept, so an audit
    // can check reading_count and cumulative_count exactly. NULL: unknown (a device that may have
    // been pruned before); a device whose count equals its stored readings has lost none and starts
    // at 0, as every new device does.
    sql: `
      ALTER TABLE devices ADD COLUMN pruned_count bigint, ADD COLUMN pruned_sum bigint;
      UPDATE devices d SET pruned_count = 0, pruned_sum = 0
        WHERE reading_count = (SELECT count(*) FROM readings r WHERE r.device_id = d.device_id);
      ALTER TABLE devices ALTER COLUMN pruned_count SET DEFAULT 0, ALTER COLUMN pruned_sum SET DEFAULT 0;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** Brings the database up to SCHEMA_VERSION; returns the versions this call applied (none when another node did). */
export async function migrate(client: pg.ClientBase): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS tally_schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number | null }>('SELECT max(version) AS version FROM tally_schema_migrations');
    const current = rows[0]?.version ?? 0;
    if (current > SCHEMA_VERSION) {
      // As on SQLite: the store cannot be used by this Tally (the start stops with this message).
      throw new StorageUnavailableError(`database schema version ${current} is newer than this Tally (${SCHEMA_VERSION})`);
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO tally_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
