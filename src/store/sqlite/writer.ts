import Database from 'better-sqlite3';
import type { ReadingColumns } from './columns.js';
import type { SqliteStoreConfig } from './config.js';
import { migrate } from './schema.js';

/** Per-device change gathered over one batch, applied to `devices` once per device. */
interface SummaryDelta {
  readings: number;
  countSum: number;
  minTs: number;
  maxTs: number;
  maxTsText: string | null;
  maxPayload: string | null;
}

/** Device-id → key cache bound: beyond it the cache starts over (it is only a shortcut). */
const DEVICE_CACHE_LIMIT = 200_000;

/**
 * The single writer of a SQLite database. It runs on the writer thread; one `append` is one
 * transaction, committed (and, with synchronous=FULL, fsynced) before it returns.
 */
export class SqliteWriter {
  private readonly db: Database.Database;
  private readonly deviceKeys = new Map<string, number>();
  private readonly selectDevice: Database.Statement<[string], { key: number }>;
  private readonly insertDevice: Database.Statement<[string]>;
  private readonly insertReading: Database.Statement<[number, number, number | null, string | null, string | null]>;
  private readonly updateSummary: Database.Statement<unknown[]>;
  private readonly pruneStatement: Database.Statement<[number, number]>;

  constructor(config: SqliteStoreConfig) {
    this.db = new Database(config.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${config.synchronous}`);
    this.db.pragma(`cache_size = ${-config.cacheMiB * 1024}`);
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.selectDevice = this.db.prepare('SELECT key FROM devices WHERE device_id = ?');
    this.insertDevice = this.db.prepare('INSERT INTO devices (device_id) VALUES (?)');
    this.insertReading = this.db.prepare(
      // Only a duplicate (device, instant) is skipped; any other constraint failure aborts the batch.
      'INSERT INTO readings (device_key, ts_us, count, ts_text, payload) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_key, ts_us) DO NOTHING',
    );
    this.pruneStatement = this.db.prepare(
      'DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE ts_us < ? ORDER BY ts_us LIMIT ?)',
    );
    // Every expression on the right sees the row as it was before this UPDATE.
    this.updateSummary = this.db.prepare(`
      UPDATE devices SET
        reading_count    = reading_count + @readings,
        cumulative_count = cumulative_count + @countSum,
        first_ts_us      = min(coalesce(first_ts_us, @minTs), @minTs),
        latest_ts_text   = CASE WHEN latest_ts_us IS NULL OR @maxTs > latest_ts_us THEN @maxTsText ELSE latest_ts_text END,
        latest_payload   = CASE WHEN latest_ts_us IS NULL OR @maxTs > latest_ts_us THEN @maxPayload ELSE latest_payload END,
        latest_ts_us     = max(coalesce(latest_ts_us, @maxTs), @maxTs)
      WHERE key = @key`);
  }

  /** Inserts a batch in one transaction; returns 1 (stored) or 0 (duplicate) per reading. */
  append(cols: ReadingColumns): Uint8Array {
    const n = cols.deviceIds.length;
    const stored = new Uint8Array(n);
    try {
      this.db.transaction(() => this.appendInTransaction(cols, stored)).immediate();
    } catch (err) {
      // Keys handed out inside the rolled-back transaction no longer exist.
      this.deviceKeys.clear();
      throw err;
    }
    return stored;
  }

  private appendInTransaction(cols: ReadingColumns, stored: Uint8Array): void {
    const n = cols.deviceIds.length;
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = this.deviceKey(cols.deviceIds[i]!);

    // Insert in (device, ts) order: neighbouring index entries land on the same B-tree pages.
    // The sort is stable, so among equal keys the earlier reading is inserted first and wins.
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => keys[a]! - keys[b]! || cols.tsUs[a]! - cols.tsUs[b]! || a - b);

    const deltas = new Map<number, SummaryDelta>();
    for (const i of order) {
      const key = keys[i]!;
      const ts = cols.tsUs[i]!;
      const count = cols.counts[i]!;
      const payload = cols.payloads[i]!;
      const tsText = cols.tsTexts[i]!;
      const result = this.insertReading.run(key, ts, Number.isNaN(count) ? null : count, tsText, payload);
      if (result.changes === 0) continue;
      stored[i] = 1;
      const countValue = Number.isNaN(count) ? 0 : count;
      const delta = deltas.get(key);
      if (delta === undefined) {
        deltas.set(key, { readings: 1, countSum: countValue, minTs: ts, maxTs: ts, maxTsText: tsText, maxPayload: payload });
      } else {
        delta.readings++;
        delta.countSum += countValue;
        if (ts < delta.minTs) delta.minTs = ts;
        if (ts > delta.maxTs) {
          delta.maxTs = ts;
          delta.maxTsText = tsText;
          delta.maxPayload = payload;
        }
      }
    }
    for (const [key, d] of deltas) this.updateSummary.run({ key, ...d });
  }

  private deviceKey(deviceId: string): number {
    let key = this.deviceKeys.get(deviceId);
    if (key !== undefined) return key;
    key = this.selectDevice.get(deviceId)?.key;
    if (key === undefined) key = Number(this.insertDevice.run(deviceId).lastInsertRowid);
    if (this.deviceKeys.size >= DEVICE_CACHE_LIMIT) this.deviceKeys.clear();
    this.deviceKeys.set(deviceId, key);
    return key;
  }

  /** Removes a device and all its readings; returns whether it existed. */
  deleteDevice(deviceId: string): boolean {
    const row = this.selectDevice.get(deviceId);
    if (row === undefined) return false;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM readings WHERE device_key = ?').run(row.key);
      this.db.prepare('DELETE FROM devices WHERE key = ?').run(row.key);
    }).immediate();
    this.deviceKeys.delete(deviceId);
    return true;
  }

  /** Deletes up to `limit` of the oldest readings before `beforeUs`; one short transaction. */
  prune(beforeUs: number, limit: number): number {
    return this.pruneStatement.run(beforeUs, limit).changes;
  }

  close(): void {
    this.db.close();
  }
}
