import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { LIMITS } from '../../domain/reading.js';
import { AuditTally, RecomputedSummary, storedSummary, type AuditedRow } from '../audit.js';
import type { AuditOptions, AuditReport } from '../types.js';
import { decodeChunk, type ChunkData, type ChunkReading } from './chunk.js';
import { countStats } from './count-stats.js';
import { BUSY_TIMEOUT_MS } from './open.js';
import { SCHEMA_VERSION } from './schema.js';

/**
 * The SQLite audit: every device summary against its chunks, every chunk and journal entry decoded
 * and checked against its row, then SQLite's own quick_check (or integrity_check).
 *
 * Devices are read in key order, DEVICES_PER_SNAPSHOT to a read transaction, and a device's chunks
 * one at a time: memory stays bounded by one page of summaries and one chunk whatever the store
 * holds, and no snapshot lives long enough to keep the WAL from being checkpointed for the whole
 * run. A summary and its chunks change in one transaction (compaction, direct writes, pruning), so
 * one snapshot sees them agree; readings still in the journal are in neither yet.
 */

/** Devices checked per read transaction. */
const DEVICES_PER_SNAPSHOT = 256;
/** Lines of SQLite's own check kept at most. */
const STORE_CHECK_LINES = 100;

interface SummaryRow extends AuditedRow {
  key: number;
}

interface ChunkRow {
  id: number;
  first_ts_us: number;
  last_ts_us: number;
  n: number;
  data: unknown;
  counted: number | null;
  count_sum: number | null;
  count_min: number | null;
  count_max: number | null;
}

/** A connection for auditing a file another process may be writing: it must exist, and nothing is written through it. */
export function openForAudit(file: string): Database.Database {
  if (!existsSync(file)) throw new Error(`${file} does not exist: no store to audit`);
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('query_only = true');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== SCHEMA_VERSION) {
      throw new Error(`${file} has schema version ${version}, this Tally audits version ${SCHEMA_VERSION}: run \`tally migrate\` (or start Tally on it) first`);
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** What is wrong with one reading of a chunk, given the one before it. */
function readingProblem(r: ChunkReading, previousTs: number): string | undefined {
  if (!Number.isSafeInteger(r.tsUs)) return `a reading's timestamp is not a whole number of microseconds`;
  if (r.tsUs <= previousTs) return `its readings are not in increasing timestamp order at ${r.tsUs}`;
  if (r.count !== null && !(Number.isInteger(r.count) && r.count >= 0 && r.count <= LIMITS.maxCount)) return `the reading at ${r.tsUs} has an invalid count`;
  if (r.payload !== null) {
    try {
      JSON.parse(r.payload);
    } catch {
      return `the reading at ${r.tsUs} has a payload that is not JSON`;
    }
  }
  return undefined;
}

/** Checks one chunk against its row and adds its readings to the device's figures; returns its problems. */
function checkChunk(c: ChunkRow, into: RecomputedSummary): string[] {
  const name = `chunk ${c.id}`;
  // Text (a device's newest chunk) or a sealed blob: decodeChunk reads both and throws on anything else.
  if (typeof c.data !== 'string' && !(c.data instanceof Uint8Array)) return [`${name} holds ${c.data === null ? 'NULL' : typeof c.data}, not a chunk`];
  let readings: ChunkReading[];
  try {
    readings = decodeChunk(c.data as ChunkData);
  } catch (err) {
    return [`${name} does not decode: ${(err as Error).message}`];
  }
  const problems: string[] = [];
  let previous = -Infinity;
  for (const r of readings) {
    const problem = readingProblem(r, previous);
    if (problem !== undefined) {
      problems.push(`${name}: ${problem}`);
      break;
    }
    previous = r.tsUs;
  }
  if (readings.length !== c.n) problems.push(`${name} holds ${readings.length} readings, its row says ${c.n}`);
  if (readings.length > 0 && (readings[0]!.tsUs !== c.first_ts_us || readings.at(-1)!.tsUs !== c.last_ts_us)) {
    problems.push(`${name} spans ${readings[0]!.tsUs}..${readings.at(-1)!.tsUs}, its row says ${c.first_ts_us}..${c.last_ts_us}`);
  }
  if (c.counted !== null) {
    const s = countStats(Float64Array.from(readings, (r) => r.count ?? NaN), 0, readings.length);
    if (s.counted !== c.counted || s.sum !== c.count_sum || s.min !== c.count_min || s.max !== c.count_max) {
      problems.push(`${name}'s count statistics (counted, sum, min, max) disagree with its readings`);
    }
  }
  for (const r of readings) into.add(r.tsUs, r.count, r.tsText, r.payload);
  return problems;
}

/** Runs the audit on `db` (synchronously: call it on a thread of its own, or from the CLI). */
export function auditDatabase(db: Database.Database, options: AuditOptions): AuditReport {
  const tally = new AuditTally();
  const page = db.prepare(
    `SELECT key, device_id, first_ts_us, latest_ts_us, latest_ts_text, latest_payload, reading_count, cumulative_count, pruned_count, pruned_sum
     FROM devices WHERE key > ? ORDER BY key LIMIT ${DEVICES_PER_SNAPSHOT}`,
  );
  const chunksOf = db.prepare(
    `SELECT id, first_ts_us, last_ts_us, n, data, counted, count_sum, count_min, count_max FROM chunks WHERE device_key = ? ORDER BY first_ts_us, id`,
  );
  const checkPage = db
    .transaction((after: number): number | undefined => {
      const rows = page.all(after) as SummaryRow[];
      for (const row of rows) {
        const recomputed = new RecomputedSummary();
        for (const chunk of chunksOf.iterate(row.key) as Iterable<ChunkRow>) {
          for (const problem of checkChunk(chunk, recomputed)) tally.mismatch(row.device_id, problem);
        }
        tally.device(
          storedSummary(row),
          recomputed,
        );
      }
      return rows.length === DEVICES_PER_SNAPSHOT ? rows.at(-1)!.key : undefined;
    })
    .deferred;
  let after: number | undefined = 0;
  try {
    while (after !== undefined) after = checkPage(after);
    checkOrphans(db, tally);
    checkJournal(db, tally);
  } catch (err) {
    // A store too damaged to read on: say where, then let SQLite's own check say more.
    tally.mismatch(null, `reading the store failed after device key ${after}: ${(err as Error).message}`);
  }
  return tally.report(storeCheck(db, options, tally));
}

/** Chunks whose device has no summary row. */
function checkOrphans(db: Database.Database, tally: AuditTally): void {
  const orphans = db
    .prepare('SELECT device_key AS key, count(*) AS n FROM chunks WHERE device_key NOT IN (SELECT key FROM devices) GROUP BY device_key LIMIT 100')
    .all() as Array<{ key: number; n: number }>;
  for (const { key, n } of orphans) tally.mismatch(null, `${n} chunks belong to device key ${key}, which has no summary`);
}

/** Journal entries (committed, not yet compacted) decode, and name a device key for each of their readings. */
function checkJournal(db: Database.Database, tally: AuditTally): void {
  const entries = db.prepare('SELECT seq, data, keys FROM journal ORDER BY seq').iterate() as Iterable<{ seq: number; data: unknown; keys: unknown }>;
  for (const { seq, data, keys } of entries) {
    if (!Buffer.isBuffer(data) || !Buffer.isBuffer(keys)) {
      tally.mismatch(null, `journal entry ${seq} is not the blobs Tally writes`);
      continue;
    }
    try {
      const n = decodeChunk(data.toString('utf8')).length;
      if (keys.length !== n * 4) tally.mismatch(null, `journal entry ${seq} holds ${n} readings and ${keys.length / 4} device keys`);
    } catch (err) {
      tally.mismatch(null, `journal entry ${seq} does not decode: ${(err as Error).message}`);
    }
  }
}

/** SQLite's own check of the file's structure; every line it reports is a mismatch. */
function storeCheck(db: Database.Database, options: AuditOptions, tally: AuditTally): string {
  const pragma = options.full ? 'integrity_check' : 'quick_check';
  try {
    // A row may hold several problems, one a line, under a `*** in database main ***` heading.
    const lines = (db.prepare(`PRAGMA ${pragma}(${STORE_CHECK_LINES})`).pluck().all() as string[])
      .flatMap((row) => row.split('\n'))
      .filter((line) => line !== '' && !line.startsWith('***'));
    if (lines.length === 1 && lines[0] === 'ok') return `${pragma}: ok`;
    for (const line of lines) tally.mismatch(null, `${pragma}: ${line}`);
    return `${pragma}: ${lines.length} problem${lines.length === 1 ? '' : 's'}`;
  } catch (err) {
    tally.mismatch(null, `${pragma} failed: ${(err as Error).message}`);
    return `${pragma}: failed`;
  }
}
