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

/** What the writer remembers of a device between batches. */
interface DeviceState {
  readonly key: number;
  /** Greatest timestamp stored for the device (null before its first reading). */
  latestTs: number | null;
}

/** Device cache bound: beyond it the cache starts over (it is only a shortcut). */
const DEVICE_CACHE_LIMIT = 200_000;

/**
 * The single writer of a SQLite database. It runs on the writer thread; one `append` is one
 * transaction, committed (and, with synchronous=FULL, fsynced) before it returns.
 *
 * New readings go to the time-ordered `inbox`, so a commit touches few pages however many devices
 * it spans; once `mergeRows` have gathered, `mergeInbox` moves them to `readings` in one sorted pass.
 * A reading is a duplicate if it is in either table: the inbox's unique index catches the first
 * case, and a point lookup in `readings` the second, made only when the reading is not newer than
 * everything the device has stored (the in-order case needs no lookup at all).
 */
export class SqliteWriter {
  private readonly db: Database.Database;
  private readonly devices = new Map<string, DeviceState>();
  private inboxRows: number;
  private readonly selectDevice: Database.Statement<[string], { key: number; latest_ts_us: number | null }>;
  private readonly insertDevice: Database.Statement<[string]>;
  private readonly storedInReadings: Database.Statement<[number, number]>;
  private readonly insertInbox: Database.Statement<[number, number, number | null, string | null, string | null]>;
  private readonly updateSummary: Database.Statement<unknown[]>;
  private readonly moveInbox: Database.Statement<[number]>;
  private readonly clearInbox: Database.Statement<[number]>;
  private readonly mergeBoundary: Database.Statement<[number]>;
  private readonly pruneReadings: Database.Statement<[number, number]>;
  private readonly pruneInbox: Database.Statement<[number, number]>;

  constructor(private readonly config: SqliteStoreConfig) {
    this.db = new Database(config.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${config.synchronous}`);
    this.db.pragma(`cache_size = ${-config.cacheMiB * 1024}`);
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.selectDevice = this.db.prepare('SELECT key, latest_ts_us FROM devices WHERE device_id = ?');
    this.insertDevice = this.db.prepare('INSERT INTO devices (device_id) VALUES (?)');
    this.storedInReadings = this.db.prepare('SELECT 1 FROM readings WHERE device_key = ? AND ts_us = ?').pluck();
    this.insertInbox = this.db.prepare(
      // Only a duplicate (instant, device) is skipped; any other constraint failure aborts the batch.
      'INSERT INTO inbox (device_key, ts_us, count, ts_text, payload) VALUES (?, ?, ?, ?, ?) ON CONFLICT (ts_us, device_key) DO NOTHING',
    );
    // Every expression on the right sees the row as it was before this UPDATE.
    // Positional parameters bind faster than named ones; this runs once per device per batch.
    this.updateSummary = this.db.prepare(`
      UPDATE devices SET
        reading_count    = reading_count + ?,
        cumulative_count = cumulative_count + ?,
        first_ts_us      = min(coalesce(first_ts_us, ?), ?),
        latest_ts_text   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_ts_text END,
        latest_payload   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_payload END,
        latest_ts_us     = max(coalesce(latest_ts_us, ?), ?)
      WHERE key = ?`);
    // Sorted by device, the merge appends to each device's run of the index: one pass, few pages each.
    this.moveInbox = this.db.prepare(`
      INSERT INTO readings (device_key, ts_us, count, ts_text, payload)
      SELECT device_key, ts_us, count, ts_text, payload FROM inbox WHERE seq <= ? ORDER BY device_key, ts_us
      ON CONFLICT (device_key, ts_us) DO NOTHING`);
    this.clearInbox = this.db.prepare('DELETE FROM inbox WHERE seq <= ?');
    this.mergeBoundary = this.db.prepare('SELECT seq FROM inbox ORDER BY seq LIMIT 1 OFFSET ?').pluck();
    this.pruneReadings = this.db.prepare(
      'DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE ts_us < ? ORDER BY ts_us LIMIT ?)',
    );
    this.pruneInbox = this.db.prepare('DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE ts_us < ? ORDER BY ts_us LIMIT ?)');
    this.inboxRows = this.db.prepare('SELECT count(*) FROM inbox').pluck().get() as number;
  }

  /** Inserts a batch in one transaction; returns 1 (stored) or 0 (duplicate) per reading. */
  append(cols: ReadingColumns): Uint8Array {
    const n = cols.deviceIds.length;
    const stored = new Uint8Array(n);
    let added = 0;
    try {
      this.db.transaction(() => {
        added = this.appendInTransaction(cols, stored);
      }).immediate();
    } catch (err) {
      // What the cache learnt inside the rolled-back transaction is no longer true.
      this.devices.clear();
      throw err;
    }
    this.inboxRows += added;
    return stored;
  }

  /** Whether the inbox has gathered enough for a merge. */
  get mergeDue(): boolean {
    return this.inboxRows >= this.config.mergeRows;
  }

  /** Whether merges have fallen so far behind that one should run before the next batch. */
  get mergeOverdue(): boolean {
    return this.inboxRows >= 3 * this.config.mergeRows;
  }

  /**
   * Moves the oldest `mergeRows` inbox rows (by arrival) into `readings` in one transaction, so a
   * merge pauses ingest for a bounded time however far behind it is; returns how many moved.
   */
  mergeInbox(): number {
    const last = this.mergeBoundary.get(this.config.mergeRows - 1) as number | undefined;
    let moved = 0;
    this.db.transaction(() => {
      const upTo = last ?? Number.MAX_SAFE_INTEGER;
      this.moveInbox.run(upTo);
      moved = this.clearInbox.run(upTo).changes;
    }).immediate();
    this.inboxRows -= moved;
    return moved;
  }

  private appendInTransaction(cols: ReadingColumns, stored: Uint8Array): number {
    const n = cols.deviceIds.length;
    const devices = new Array<DeviceState>(n);
    for (let i = 0; i < n; i++) devices[i] = this.device(cols.deviceIds[i]!);

    // Insert in (ts, device) order: neighbouring inbox index entries land on the same pages. The
    // sort is stable, so among equal keys the earlier reading is inserted first and wins.
    const order = Array.from({ length: n }, (_, i) => i);
    const before = (a: number, b: number) => cols.tsUs[a]! - cols.tsUs[b]! || devices[a]!.key - devices[b]!.key || a - b;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) sorted = before(i - 1, i) < 0;
    if (!sorted) order.sort(before);

    const deltas = new Map<DeviceState, SummaryDelta>();
    let added = 0;
    for (const i of order) {
      const device = devices[i]!;
      const ts = cols.tsUs[i]!;
      if (device.latestTs !== null && ts <= device.latestTs && this.storedInReadings.get(device.key, ts) !== undefined) continue;
      const count = cols.counts[i]!;
      const payload = cols.payloads[i]!;
      const tsText = cols.tsTexts[i]!;
      if (this.insertInbox.run(device.key, ts, Number.isNaN(count) ? null : count, tsText, payload).changes === 0) continue;
      stored[i] = 1;
      added++;
      const countValue = Number.isNaN(count) ? 0 : count;
      const delta = deltas.get(device);
      if (delta === undefined) {
        deltas.set(device, { readings: 1, countSum: countValue, minTs: ts, maxTs: ts, maxTsText: tsText, maxPayload: payload });
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
    for (const [device, d] of deltas) {
      const { minTs, maxTs } = d;
      this.updateSummary.run(d.readings, d.countSum, minTs, minTs, maxTs, d.maxTsText, maxTs, d.maxPayload, maxTs, maxTs, device.key);
      if (device.latestTs === null || d.maxTs > device.latestTs) device.latestTs = d.maxTs;
    }
    return added;
  }

  private device(deviceId: string): DeviceState {
    let state = this.devices.get(deviceId);
    if (state !== undefined) return state;
    const row = this.selectDevice.get(deviceId);
    state =
      row === undefined
        ? { key: Number(this.insertDevice.run(deviceId).lastInsertRowid), latestTs: null }
        : { key: row.key, latestTs: row.latest_ts_us };
    if (this.devices.size >= DEVICE_CACHE_LIMIT) this.devices.clear();
    this.devices.set(deviceId, state);
    return state;
  }

  /** Removes a device and all its readings; returns whether it existed. */
  deleteDevice(deviceId: string): boolean {
    const row = this.selectDevice.get(deviceId);
    if (row === undefined) return false;
    let fromInbox = 0;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM readings WHERE device_key = ?').run(row.key);
      fromInbox = this.db.prepare('DELETE FROM inbox WHERE device_key = ?').run(row.key).changes;
      this.db.prepare('DELETE FROM devices WHERE key = ?').run(row.key);
    }).immediate();
    this.inboxRows -= fromInbox;
    this.devices.delete(deviceId);
    return true;
  }

  /** Deletes up to `limit` of the oldest readings before `beforeUs`; one short transaction. */
  prune(beforeUs: number, limit: number): number {
    let deleted = 0;
    this.db.transaction(() => {
      const fromInbox = this.pruneInbox.run(beforeUs, limit).changes;
      this.inboxRows -= fromInbox;
      deleted = fromInbox + this.pruneReadings.run(beforeUs, limit - fromInbox).changes;
    }).immediate();
    return deleted;
  }

  close(): void {
    this.db.close();
  }
}
