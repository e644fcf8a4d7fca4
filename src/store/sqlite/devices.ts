import type Database from 'better-sqlite3';

/** The chunk a device's newest readings are appended to, while it has room. */
export interface OpenChunk {
  readonly id: number;
  lastTs: number;
  bytes: number;
}

/** What the writer remembers of a device between batches. */
export interface DeviceState {
  readonly key: number;
  /** Greatest timestamp in the device's chunks, compacted or written directly (null before its first). */
  latestTs: number | null;
  /** Its newest chunk (null: none; undefined: not looked up yet). */
  open: OpenChunk | null | undefined;
}

/** Device cache bound: beyond it the cache starts over (it is only a shortcut). */
const DEVICE_CACHE_LIMIT = 200_000;

/**
 * The writer's view of the `devices` table: each device's key (a row is made on first sight) and
 * what it keeps of the device between batches. Only a cache: `forget` after a rollback.
 */
export class DeviceDirectory {
  private readonly byId = new Map<string, DeviceState>();
  private readonly byKeyMap = new Map<number, DeviceState>();
  private readonly select: Database.Statement<[string], { key: number; latest_ts_us: number | null }>;
  private readonly insert: Database.Statement<[string]>;
  private readonly newestChunk: Database.Statement<[number], { id: number; last_ts_us: number; bytes: number }>;

  constructor(db: Database.Database) {
    this.select = db.prepare('SELECT key, latest_ts_us FROM devices WHERE device_id = ?');
    this.insert = db.prepare('INSERT INTO devices (device_id, pruned_count, pruned_sum) VALUES (?, 0, 0)');
    this.newestChunk = db.prepare(
      'SELECT id, last_ts_us, octet_length(data) AS bytes FROM chunks WHERE device_key = ? ORDER BY last_ts_us DESC LIMIT 1',
    );
  }

  /** The device's state, its row inserted if it has none (inside the caller's transaction). */
  get(deviceId: string): DeviceState {
    let state = this.byId.get(deviceId);
    if (state !== undefined) return state;
    const row = this.select.get(deviceId);
    state =
      row === undefined
        ? { key: Number(this.insert.run(deviceId).lastInsertRowid), latestTs: null, open: null }
        : { key: row.key, latestTs: row.latest_ts_us, open: undefined };
    if (this.byId.size >= DEVICE_CACHE_LIMIT) this.forget();
    this.byId.set(deviceId, state);
    this.byKeyMap.set(state.key, state);
    return state;
  }

  /** The key of an existing device, without creating one. */
  keyOf(deviceId: string): number | undefined {
    return this.select.get(deviceId)?.key;
  }

  /** The cached state of a device, if any. */
  byKey(key: number): DeviceState | undefined {
    return this.byKeyMap.get(key);
  }

  /** The device's open chunk, looked up once and then tracked. */
  openChunk(key: number): OpenChunk | null {
    const device = this.byKeyMap.get(key);
    if (device?.open !== undefined) return device.open;
    const row = this.newestChunk.get(key);
    const open = row === undefined ? null : { id: row.id, lastTs: row.last_ts_us, bytes: row.bytes };
    if (device !== undefined) device.open = open;
    return open;
  }

  setOpenChunk(key: number, open: OpenChunk): void {
    const device = this.byKeyMap.get(key);
    if (device !== undefined) device.open = open;
  }

  /** A newest timestamp moved into the device's chunks. */
  noteLatest(key: number, ts: number): void {
    const device = this.byKeyMap.get(key);
    if (device !== undefined && (device.latestTs === null || ts > device.latestTs)) device.latestTs = ts;
  }

  /** Open chunks may have been trimmed or deleted: look them up again. */
  forgetOpenChunks(): void {
    for (const device of this.byKeyMap.values()) device.open = undefined;
  }

  removed(deviceId: string, key: number): void {
    this.byId.delete(deviceId);
    this.byKeyMap.delete(key);
  }

  /** What the cache learnt inside a rolled-back transaction is no longer true. */
  forget(): void {
    this.byId.clear();
    this.byKeyMap.clear();
  }
}
