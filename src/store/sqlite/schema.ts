import type Database from 'better-sqlite3';

/**
 * Versioned migrations, applied in order; PRAGMA user_version records how many have run.
 *
 * Layout (as of the last migration): `journal` holds committed readings not yet compacted, one row
 * per commit; `chunks` holds the rest, one row per device per run of readings; `devices` holds each
 * device's summary, updated in the same transaction that moves its readings into chunks, so
 * latest/cumulative queries are single lookups. The first two migrations are the earlier
 * row-per-reading layout, kept so an older file upgrades.
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
  // Chunks and the journal. A commit writes one journal row holding all its readings (one B-tree
  // append however many devices it spans); compaction later moves them into `chunks`, one row per
  // device per run of readings (see chunk.ts for the text form), so a per-device query reads a few
  // rows and the per-row cost of a B-tree insert is paid per chunk, not per reading. A chunk's
  // readings are in timestamp order; chunks of one device may overlap in time when readings
  // arrived out of order. Existing readings move into chunks of at most 512.
  `
  CREATE TABLE chunks (
    id          INTEGER PRIMARY KEY,
    device_key  INTEGER NOT NULL,
    first_ts_us INTEGER NOT NULL,
    last_ts_us  INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    data        TEXT    NOT NULL
  );
  CREATE INDEX chunks_device_first ON chunks (device_key, first_ts_us);
  CREATE INDEX chunks_device_last ON chunks (device_key, last_ts_us);
  CREATE INDEX chunks_first ON chunks (first_ts_us);
  CREATE INDEX chunks_last ON chunks (last_ts_us);
  CREATE TABLE journal (
    seq  INTEGER PRIMARY KEY,
    data TEXT NOT NULL
  );
  -- A compaction round in progress: its last journal seq, and the greatest device key it has done.
  CREATE TABLE compaction (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    through  INTEGER NOT NULL,
    done_key INTEGER NOT NULL
  );
  INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data)
  SELECT device_key, min(ts_us), max(ts_us), count(*), group_concat(line, '' ORDER BY ts_us)
  FROM (
    SELECT device_key, ts_us,
           (row_number() OVER (PARTITION BY device_key ORDER BY ts_us) - 1) / 512 AS part,
           ts_us || char(9) || coalesce(count, '') || char(9) || coalesce(ts_text, '') || char(9) || coalesce(payload, '') || char(10) AS line
    FROM (SELECT device_key, ts_us, count, ts_text, payload FROM readings
          UNION ALL SELECT device_key, ts_us, count, ts_text, payload FROM inbox)
  )
  GROUP BY device_key, part;
  DROP TABLE inbox;
  DROP TABLE readings;
  `,
  // The journal keeps a batch as the writer thread received it: `data` the UTF-8 chunk lines of all
  // its readings, `keys` each reading's device key (32-bit, platform byte order; 0 for a duplicate
  // left out), so a commit copies bytes instead of building a text per batch. Rows written before
  // this migration have no keys and their lines led by the device key; replay reads both.
  `
  ALTER TABLE journal ADD COLUMN keys BLOB;
  `,
  // No table changes: from here chunk and journal text may hold a canonical UTC timestamp text as
  // one digit (chunk.ts), which a Tally of an earlier version would return as the text itself.
  // The version number makes such a Tally refuse the file instead.
  `
  SELECT 1;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database up to the current schema (or to `target`, for tests); a no-op when it is already there. */
export function migrate(db: Database.Database, target = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this Tally (${MIGRATIONS.length})`);
  }
  for (let version = current; version < target; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
