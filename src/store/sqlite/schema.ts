import type Database from 'better-sqlite3';

/**
 * Versioned migrations, applied in order; PRAGMA user_version records how many have run.
 *
 * Layout: `readings` is a rowid table whose uniqueness of (device, ts) lives in a compact index over
 * integer device keys; a time index serves newest-first listings and retention. `devices` holds each
 * device's summary, updated in the same transaction as the inserts, so latest/cumulative queries are
 * single lookups.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE devices (
    key              INTEGER PRIMARY KEY,
    device_id        TEXT    NOT NULL UNIQUE,
    first_ts_us      INTEGER,
    latest_ts_us     INTEGER,
    latest_ts_text   TEXT,
    latest_payload   TEXT,
    reading_count    INTEGER NOT NULL DEFAULT 0,
    cumulative_count INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX devices_latest_ts ON devices (latest_ts_us);
  CREATE TABLE readings (
    seq        INTEGER PRIMARY KEY,
    device_key INTEGER NOT NULL,
    ts_us      INTEGER NOT NULL,
    count      INTEGER,
    ts_text    TEXT,
    payload    TEXT
  );
  CREATE UNIQUE INDEX readings_device_ts ON readings (device_key, ts_us);
  CREATE INDEX readings_ts ON readings (ts_us);
  `,
  // The inbox: new readings append here, keyed time-first, so an ingest commit dirties a handful of
  // pages however many devices it touches. The writer merges it into `readings` in large sorted
  // batches, where the cost of the device-ordered index is shared by many rows. Readers see both.
  // `(ts_us, device_key)` identifies a reading as well as `(device_key, ts_us)`: it orders listings
  // across both tables.
  `
  CREATE TABLE inbox (
    seq        INTEGER PRIMARY KEY,
    device_key INTEGER NOT NULL,
    ts_us      INTEGER NOT NULL,
    count      INTEGER,
    ts_text    TEXT,
    payload    TEXT
  );
  CREATE UNIQUE INDEX inbox_ts_device ON inbox (ts_us, device_key);
  DROP INDEX readings_ts;
  CREATE INDEX readings_ts_device ON readings (ts_us, device_key);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database up to the current schema; a no-op when it is already there. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this Tally (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
