import type Database from 'better-sqlite3';
import { sealOldChunks, textChunksBelowZero } from './seal-chunks.js';

/**
 * The schema, versioned by PRAGMA user_version. Layout: `journal` holds committed readings not yet
 * compacted, one row per commit; `chunks` holds the rest, one row per device per run of readings
 * (chunk.ts reads their forms); `devices` holds each device's summary, updated in the same
 * transaction that moves its readings into chunks, so latest/cumulative queries are single lookups.
 *
 * Versions 1-4 were pre-release layouts that no released Tally wrote; the first released layout is
 * version 5, created at once. Each later change appends a migration to LATER.
 */
const BASELINE_VERSION = 5;

const BASELINE = `
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
  -- A device's readings in timestamp order (chunk.ts); chunks of one device may overlap in time
  -- when readings arrived out of order.
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
  -- A commit as the writer thread received it: \`data\` the UTF-8 chunk lines of its readings, \`keys\`
  -- each reading's device key (32-bit, platform byte order; 0 for a duplicate left out).
  CREATE TABLE journal (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    keys BLOB NOT NULL
  );
  -- A compaction round in progress: its last journal seq, and the greatest device key it has done.
  CREATE TABLE compaction (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    through  INTEGER NOT NULL,
    done_key INTEGER NOT NULL
  );
`;

/**
 * Migrations after the baseline, in order: LATER[0] takes version 5 to 6, and so on. SQL, or a
 * function for what SQL cannot do; each runs in the transaction that sets its version.
 */
const LATER: ReadonlyArray<string | ((db: Database.Database) => void)> = [
  // 6: each chunk keeps the count, sum, min and max of its readings' counts, so an aggregate of
  // `count` over whole chunks reads four numbers instead of decoding every reading. Chunks written
  // before keep NULL (unknown) and are decoded as before.
  `
  ALTER TABLE chunks ADD COLUMN counted INTEGER;
  ALTER TABLE chunks ADD COLUMN count_sum INTEGER;
  ALTER TABLE chunks ADD COLUMN count_min INTEGER;
  ALTER TABLE chunks ADD COLUMN count_max INTEGER;
  `,
  // 7: API keys (their SHA-256, never the key), shared by every process on the file. A name is
  // unique among keys not revoked, so a revoked name can be issued again.
  `
  CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    device_prefix TEXT,
    hash          TEXT NOT NULL,
    created_us    INTEGER NOT NULL,
    last_used_us  INTEGER,
    revoked_us    INTEGER
  );
  CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_us IS NULL;
  `,
  // 8: each summary keeps the readings retention deleted (and the sum of their counts), so an audit
  // can check reading_count and cumulative_count exactly although they stay all-time. NULL: unknown,
  // for a device that may have been pruned before; a device whose count equals its stored readings
  // has lost none (or its summary was already wrong, which the audit then shows) and starts at 0.
  // New devices start at 0 (DeviceDirectory inserts them so).
  `
  ALTER TABLE devices ADD COLUMN pruned_count INTEGER;
  ALTER TABLE devices ADD COLUMN pruned_sum INTEGER;
  UPDATE devices SET pruned_count = 0, pruned_sum = 0
    WHERE reading_count = (SELECT coalesce(sum(n), 0) FROM chunks WHERE device_key = devices.key);
  `,
  // 9: chunks are sealed (chunk-sealed.ts: columns, compressed): every text chunk but each
  // device's newest, which keeps taking appends as text, is re-encoded now. Readers read both forms.
  sealOldChunks,
  // 10: text chunks are sealed later than they are written, found as the rows below id 0 that are
  // not a device's newest (seal-chunks.ts): each device's newest text chunk left by 9 moves there.
  textChunksBelowZero,
];

export const SCHEMA_VERSION = BASELINE_VERSION + LATER.length;

/** Brings the database up to the current schema (or to `target`, for tests); a no-op when it is already there. */
export function migrate(db: Database.Database, target = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`database schema version ${current} is newer than this Tally (${SCHEMA_VERSION})`);
  }
  if (current > 0 && current < BASELINE_VERSION) {
    throw new Error(`database schema version ${current} is a pre-release layout this Tally does not read; start a new data file`);
  }
  if (current === 0) {
    db.transaction(() => {
      db.exec(BASELINE);
      db.pragma(`user_version = ${BASELINE_VERSION}`);
    }).immediate();
  }
  for (let version = Math.max(current, BASELINE_VERSION); version < target; version++) {
    db.transaction(() => {
      const migration = LATER[version - BASELINE_VERSION]!;
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
