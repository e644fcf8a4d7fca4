import Database from 'better-sqlite3';
import { chunkHas, chunkInstants, chunkLine, decodeChunk, decodeJournal } from './chunk.js';
import { toColumns, type ReadingColumns } from './columns.js';
import { DIRECT_RUN_READINGS, type SqliteStoreConfig } from './config.js';
import { PendingReadings, type EntryReadings, type PendingEntry } from './pending.js';
import { migrate } from './schema.js';

/** The chunk a device's newest readings are appended to, while it has room. */
interface OpenChunk {
  readonly id: number;
  lastTs: number;
  bytes: number;
}

/** What the writer remembers of a device between batches. */
interface DeviceState {
  readonly key: number;
  /** Greatest timestamp in the device's chunks, compacted or written directly (null before its first). */
  latestTs: number | null;
  /** Its newest chunk (null: none; undefined: not looked up yet). */
  open: OpenChunk | null | undefined;
}

/**
 * A round's readings grouped by device, in typed arrays (no object or array per reading): devices
 * in ascending key order, each device's readings contiguous and in timestamp order.
 */
interface Grouped {
  /** Per device. */
  readonly keys: Int32Array;
  /** Per device, and one more: device `d`'s readings are `starts[d]` to `starts[d + 1]`. */
  readonly starts: Uint32Array;
  /** Per device: bytes of its chunk lines, and the sum of its counts. */
  readonly bytes: Float64Array;
  readonly countSums: Float64Array;
  /** Per reading: its timestamp, the index of its entry in the round, and its line's byte range in that entry's text. */
  readonly ts: Float64Array;
  readonly entry: Uint32Array;
  readonly from: Uint32Array;
  readonly to: Uint32Array;
}

/** A compaction round: the pending entries it covers, grouped by device, the devices cut into slices. */
interface Round {
  /** Seq of its newest entry. */
  readonly through: number;
  /** The (oldest) pending entries it covers. */
  readonly entries: readonly PendingEntry[];
  readonly grouped: Grouped;
  /** Device index after each slice (slices are consecutive runs of devices). */
  readonly sliceEnds: number[];
  /** Index of the next slice to compact. */
  next: number;
}

/**
 * Bounds of a compaction slice, which bound how long an append can wait behind compaction. Rough
 * costs from one-off timings on the development machine: 15-21 ms of SQL per 1,000 devices (a
 * chunk row and a summary row each) plus well under 1 µs of JavaScript per reading; the slice
 * steps of `npm run bench:writer` take a median of 2-3 ms.
 */
const SLICE_DEVICES = 250;
const SLICE_READINGS = 6_000;

/**
 * Chunks of at least this many readings are checked for duplicates through a set of their instants
 * built once per append; smaller ones by a substring search of their text, which costs less than
 * a set when a chunk is looked up once or twice. (Alternating timings of the writer alone with an
 * uncommitted script: 100,000 readings resent as 100 batches of one device took 1.5-2.0 s before,
 * 0.5-0.7 s after; resent as 10 batches across 1,000 devices, within the noise of before.)
 */
const SET_LOOKUP_READINGS = 256;

/** Device cache bound: beyond it the cache starts over (it is only a shortcut). */
const DEVICE_CACHE_LIMIT = 200_000;
/**
 * A device's newest chunk takes appended readings while it stays under this many characters: an
 * append rewrites the whole row, so this bounds what a compaction rewrites per device (one
 * measurement, writer alone, fleet-wide: 301,567 readings/s appending up to 16 KiB, 414,401 at
 * 3.5 KB).
 */
const APPEND_CHUNK_BYTES = 3500;
/** Page size of a new database file. */
const PAGE_BYTES = 16_384;
/** WAL pages between automatic checkpoints (SQLite's default is 1,000). */
const WAL_CHECKPOINT_PAGES = 4000;
/** New chunks are cut at this size: what a point lookup or a query decodes per chunk. */
const NEW_CHUNK_BYTES = 16_384;

/** What an append reports: a flag per reading, and the journal position that holds them. */
export interface AppendResult {
  readonly stored: Uint8Array;
  /** Readers see this batch once compaction has reached this seq. */
  readonly seq: number;
}

/**
 * The single writer of a SQLite database. It runs on the writer thread; one `append` is one
 * transaction, committed (and, with synchronous=FULL, fsynced) before it returns.
 *
 * A commit writes the batch's new readings as one `journal` row: one B-tree append however many
 * devices it spans. `compactStep` later moves journal entries into per-device `chunks` and updates
 * the device summaries, in one transaction per slice of a round. A long run of one device's
 * readings in time order (a device sending its own batch) skips the journal: the commit writes it
 * straight into the device's chunks and summary, once rather than twice. Until then the readings are also
 * held in memory (`PendingReadings`) for deduplication; after a crash the journal is replayed on
 * open.
 *
 * A reading is a duplicate if its device already has one at that instant: a reading newer than
 * anything the device has (the in-order case) needs no lookup; an older one is looked up in the
 * pending index and then in the chunks whose time range covers it.
 */
export class SqliteWriter {
  private readonly db: Database.Database;
  private readonly lock: Database.Database;
  private readonly devices = new Map<string, DeviceState>();
  private readonly byKey = new Map<number, DeviceState>();
  private readonly pending = new PendingReadings();
  private lastSeq = 0;
  private compactedSeq = 0;
  private round: Round | undefined;
  private readonly selectDevice: Database.Statement<[string], { key: number; latest_ts_us: number | null }>;
  private readonly insertDevice: Database.Statement<[string]>;
  private readonly chunksCovering: Database.Statement<[number, number, number], string | number>;
  private readonly chunkData: Database.Statement<[number], string>;
  /** Instants of the large chunks this append's duplicate checks have read; emptied before each append and whenever chunks are written. */
  private readonly chunkInstantsRead = new Map<number, Set<number>>();
  private readonly insertJournal: Database.Statement<[number, Buffer, Buffer]>;
  private readonly clearJournal: Database.Statement<[number]>;
  private readonly newestChunk: Database.Statement<[number], { id: number; last_ts_us: number; bytes: number }>;
  private readonly insertChunk: Database.Statement<[number, number, number, number, Buffer]>;
  private readonly appendChunk: Database.Statement<[Buffer, number, number, number]>;
  private readonly updateSummary: Database.Statement<unknown[]>;
  private readonly saveProgress: Database.Statement<[number, number]>;
  private readonly clearProgress: Database.Statement<[]>;
  private readonly directRunReadings: number;
  /**
   * The two transactions of the hot path, wrapped once: better-sqlite3 builds four wrapper functions
   * for every `db.transaction(fn)` call, work an append would otherwise repeat every commit.
   */
  private readonly appendTx: (cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array) => void;
  private readonly compactSliceTx: (round: Round, first: number, end: number, last: boolean) => void;

  constructor(private readonly config: SqliteStoreConfig) {
    this.directRunReadings = config.directRunReadings ?? DIRECT_RUN_READINGS;
    this.lock = holdWriterLock(config.file);
    this.db = new Database(config.file);
    // Takes effect on a new file only: 16 KiB pages suit journal rows of whole batches and chunk
    // rows of kilobytes (measured +15% on fleet-wide batches against 4 KiB).
    this.db.pragma(`page_size = ${PAGE_BYTES}`);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${config.synchronous}`);
    this.db.pragma(`cache_size = ${-config.cacheMiB * 1024}`);
    this.db.pragma('busy_timeout = 5000');
    // A checkpoint copies each page once however many times the WAL holds it, and the journal's and
    // the device summaries' pages are rewritten every round: checkpointing every 4,000 pages (64 MiB)
    // rather than SQLite's 1,000 wrote a fifth fewer bytes per reading in fleet-wide bulk, and the
    // truncation keeps the WAL file from staying larger than that after a checkpoint.
    this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    this.db.pragma(`journal_size_limit = ${WAL_CHECKPOINT_PAGES * PAGE_BYTES}`);
    migrate(this.db);
    this.selectDevice = this.db.prepare('SELECT key, latest_ts_us FROM devices WHERE device_id = ?');
    this.insertDevice = this.db.prepare('INSERT INTO devices (device_id) VALUES (?)');
    // One plucked column (cheaper than row objects): a small chunk's text, or a large chunk's id, its
    // text (overflow pages) left unread here and read once per append by `largeChunkInstants`.
    this.chunksCovering = this.db
      .prepare(`SELECT CASE WHEN n < ${SET_LOOKUP_READINGS} THEN data ELSE id END FROM chunks WHERE device_key = ? AND last_ts_us >= ? AND first_ts_us <= ?`)
      .pluck() as Database.Statement<[number, number, number], string | number>;
    this.chunkData = this.db.prepare('SELECT data FROM chunks WHERE id = ?').pluck() as Database.Statement<[number], string>;
    this.insertJournal = this.db.prepare('INSERT INTO journal (seq, data, keys) VALUES (?, ?, ?)');
    this.clearJournal = this.db.prepare('DELETE FROM journal WHERE seq <= ?');
    this.newestChunk = this.db.prepare(
      'SELECT id, last_ts_us, octet_length(data) AS bytes FROM chunks WHERE device_key = ? ORDER BY last_ts_us DESC LIMIT 1',
    );
    // Chunk text arrives as UTF-8 bytes (a Buffer binds as a BLOB): CAST stores it as TEXT.
    this.insertChunk = this.db.prepare(
      'INSERT INTO chunks (device_key, first_ts_us, last_ts_us, n, data) VALUES (?, ?, ?, ?, CAST(? AS TEXT))',
    );
    this.appendChunk = this.db.prepare('UPDATE chunks SET data = data || CAST(? AS TEXT), n = n + ?, last_ts_us = ? WHERE id = ?');
    // Every expression on the right sees the row as it was before this UPDATE.
    // Positional parameters bind faster than named ones; this runs once per device per compaction.
    this.updateSummary = this.db.prepare(`
      UPDATE devices SET
        reading_count    = reading_count + ?,
        cumulative_count = cumulative_count + ?,
        first_ts_us      = min(coalesce(first_ts_us, ?), ?),
        latest_ts_text   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_ts_text END,
        latest_payload   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_payload END,
        latest_ts_us     = max(coalesce(latest_ts_us, ?), ?)
      WHERE key = ?`);
    this.saveProgress = this.db.prepare('INSERT OR REPLACE INTO compaction (id, through, done_key) VALUES (1, ?, ?)');
    this.clearProgress = this.db.prepare('DELETE FROM compaction');
    this.appendTx = this.db.transaction((cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array) =>
      this.appendInTransaction(cols, entry, stored),
    ).immediate;
    this.compactSliceTx = this.db.transaction((round: Round, first: number, end: number, last: boolean) => {
      for (let d = first; d < end; d++) this.compactDevice(round.grouped, d, round.entries);
      if (last) {
        this.clearJournal.run(round.through);
        this.clearProgress.run();
      } else {
        this.saveProgress.run(round.through, round.grouped.keys[end - 1]!);
      }
    }).immediate;
    this.replayJournal();
  }

  /** Seq through which readers see every acknowledged reading. */
  get compactedThrough(): number {
    return this.pending.size === 0 ? this.lastSeq : this.compactedSeq;
  }

  /** Backlog at which a compaction step is due, and how many readings one step moves at least. */
  get compactRows(): number {
    return this.config.compactRows;
  }

  /** Readings waiting for compaction. */
  get backlog(): number {
    return this.pending.size;
  }

  /** Inserts a batch in one transaction; returns 1 (stored) or 0 (duplicate) per reading. */
  append(cols: ReadingColumns): AppendResult {
    this.chunkInstantsRead.clear();
    const stored = new Uint8Array(cols.tsUs.length);
    // Seqs only grow within a run (a rowid could be reused once compaction empties the journal).
    const entry = this.pending.begin(this.lastSeq + 1, entryReadings(cols));
    try {
      this.appendTx(cols, entry, stored);
    } catch (err) {
      // What the caches learnt inside the rolled-back transaction is no longer true.
      this.forgetDevices();
      this.pending.abort(entry);
      throw err;
    }
    this.pending.finish(entry);
    if (entry.stored > 0) this.lastSeq = entry.seq;
    return { stored, seq: this.lastSeq };
  }

  /**
   * Files the batch's new readings in `entry` and the journal: one row holding the batch's text as
   * it came and the device key of each reading (0 for a duplicate, which replay and compaction skip).
   */
  private appendInTransaction(cols: ReadingColumns, entry: PendingEntry, stored: Uint8Array): void {
    const { devices, runEnds, tsUs } = cols;
    let i = 0;
    for (let run = 0; run < devices.length; run++) {
      const device = this.device(devices[run]!);
      const end = runEnds[run]!;
      if (end - i >= this.directRunReadings && this.inOrderAndNew(device, tsUs, i, end)) {
        this.writeDirect(device, entry, i, end);
        stored.fill(1, i, end);
        i = end;
        continue;
      }
      for (; i < end; i++) {
        if (!this.isNew(device, tsUs[i]!)) continue;
        this.pending.add(entry, i, device.key);
        stored[i] = 1;
      }
    }
    if (entry.stored > 0) this.insertJournal.run(entry.seq, entry.text, Buffer.from(entry.keys.buffer, entry.keys.byteOffset, entry.keys.byteLength));
  }

  /** At least the device's newest timestamp, in chunks or pending: anything later is new. */
  private newestBound(device: DeviceState): number {
    return Math.max(device.latestTs ?? -Infinity, this.pending.maxTs(device.key));
  }

  /** Whether readings `start` to `end` come in increasing time order, all newer than anything the device has. */
  private inOrderAndNew(device: DeviceState, tsUs: Float64Array, start: number, end: number): boolean {
    let previous = this.newestBound(device);
    for (let i = start; i < end; i++) {
      if (!(tsUs[i]! > previous)) return false;
      previous = tsUs[i]!;
    }
    return true;
  }

  /**
   * The direct path: a long in-order run of one device goes into its chunks and summary in this
   * commit, its lines copied once, instead of into the journal now and into chunks at compaction.
   * Nothing of it is pending, so it is neither journaled nor replayed.
   */
  private writeDirect(device: DeviceState, entry: PendingEntry, start: number, end: number): void {
    const base = start === 0 ? 0 : entry.ends[start - 1]!;
    const ends = entry.ends.slice(start, end);
    for (let k = 0; k < ends.length; k++) ends[k] = ends[k]! - base;
    let countSum = 0;
    for (let i = start; i < end; i++) if (entry.counts[i] === entry.counts[i]) countSum += entry.counts[i]!; // NaN: no count
    this.writeChunks(device.key, entry.ts.subarray(start, end), entry.text.subarray(base, entry.ends[end - 1]!), ends, countSum);
    device.latestTs = entry.ts[end - 1]!;
  }

  /** Whether the device has no reading at `tsUs` yet (stored, pending, or earlier in this batch). */
  private isNew(device: DeviceState, tsUs: number): boolean {
    if (tsUs > this.newestBound(device)) return true;
    if (this.pending.has(device.key, tsUs)) return false;
    for (const chunk of this.chunksCovering.iterate(device.key, tsUs, tsUs)) {
      if (typeof chunk === 'string' ? chunkHas(chunk, tsUs) : this.largeChunkInstants(chunk).has(tsUs)) return false;
    }
    return true;
  }

  private largeChunkInstants(id: number): Set<number> {
    let instants = this.chunkInstantsRead.get(id);
    if (instants === undefined) {
      instants = new Set(chunkInstants(this.chunkData.get(id)!));
      this.chunkInstantsRead.set(id, instants);
    }
    return instants;
  }

  /** Whether a compaction round is under way (it ends after its last slice). */
  get compacting(): boolean {
    return this.round !== undefined;
  }

  /**
   * One step of compaction: starts a round over everything pending if none is under way, then
   * moves one slice of its devices (at most SLICE_DEVICES) into chunks and their summaries, in one
   * transaction; the round's last slice also deletes its entries from the journal. Returns how
   * many readings moved. A failed step changes nothing and can be retried.
   *
   * Why slices: a step costs about the same per device touched (a chunk row and a summary row, each
   * on its own page) however few readings each brings, so rounds are made large for throughput,
   * and cut into slices so that appends waiting on this thread wait for one slice, not a round.
   */
  compactStep(): number {
    const round = this.round ?? this.startRound();
    if (round === undefined) return 0;
    const { grouped, sliceEnds } = round;
    const first = round.next === 0 ? 0 : sliceEnds[round.next - 1]!;
    const end = sliceEnds[round.next]!;
    const last = round.next === sliceEnds.length - 1;
    try {
      this.compactSliceTx(round, first, end, last);
    } catch (err) {
      this.forgetDevices();
      throw err;
    }
    for (let d = first; d < end; d++) {
      const device = this.byKey.get(grouped.keys[d]!);
      const newest = grouped.ts[grouped.starts[d + 1]! - 1]!;
      if (device !== undefined && (device.latestTs === null || newest > device.latestTs)) device.latestTs = newest;
    }
    const moved = grouped.starts[end]! - grouped.starts[first]!;
    round.next++;
    if (last) {
      this.pending.drop(round.entries.length);
      this.compactedSeq = round.through;
      this.round = undefined;
    }
    return moved;
  }

  /**
   * A round over every pending entry: their readings grouped by device, devices in key order, cut
   * into slices. `doneKey`: a round resumed after a crash, whose devices up to that key are done.
   */
  private startRound(doneKey = -Infinity, through = Infinity): Round | undefined {
    const entries = this.pending.through(through);
    if (entries.length === 0) return undefined;
    this.round = makeRound(entries, doneKey);
    return this.round;
  }

  /** Compacts everything pending. */
  compactAll(): void {
    while (this.pending.size > 0 || this.round !== undefined) this.compactStep();
  }

  private compactDevice(grouped: Grouped, d: number, entries: readonly PendingEntry[]): void {
    const { ts, entry, from, to } = grouped;
    const start = grouped.starts[d]!;
    const n = grouped.starts[d + 1]! - start;
    // The device's chunk lines, copied out of the entries' texts into one buffer, in timestamp order.
    const text = Buffer.allocUnsafe(grouped.bytes[d]!);
    const ends = new Uint32Array(n);
    let pos = 0;
    for (let r = 0; r < n; r++) {
      const source = entries[entry[start + r]!]!.text;
      const begin = from[start + r]!;
      const stop = to[start + r]!;
      // A short line costs less copied byte by byte than through Buffer.copy's call (a one-off
      // micro-benchmark of 21-byte lines: 45 against 83 ns per line).
      if (stop - begin < 64) for (let b = begin; b < stop; b++) text[pos++] = source[b]!;
      else pos += source.copy(text, pos, begin, stop);
      ends[r] = pos;
    }
    this.writeChunks(grouped.keys[d]!, ts.subarray(start, start + n), text, ends, grouped.countSums[d]!);
  }

  /**
   * Files a device's readings (`ts` ascending, their lines in `text`, `ends` the byte offset after
   * each) in its chunks, and adds them to its summary.
   */
  private writeChunks(key: number, ts: ArrayLike<number>, text: Buffer, ends: ArrayLike<number>, countSum: number): void {
    this.chunkInstantsRead.clear(); // what was read of a chunk may no longer be all it holds
    const n = ts.length;
    const first = ts[0]!;
    const last = ts[n - 1]!;
    const open = this.openChunk(key);
    const appendable = open !== null && first > open.lastTs && open.bytes + text.length <= APPEND_CHUNK_BYTES;
    if (appendable && this.appendChunk.run(text, n, last, open.id).changes === 1) {
      open.lastTs = last;
      open.bytes += text.length;
    } else {
      // New chunks of at most NEW_CHUNK_BYTES (or one reading); the last becomes the open one if it
      // is the device's newest.
      let start = 0;
      while (start < n) {
        const from = start === 0 ? 0 : ends[start - 1]!;
        let end = start + 1;
        while (end < n && ends[end]! - from <= NEW_CHUNK_BYTES) end++;
        const data = start === 0 && end === n ? text : text.subarray(from, ends[end - 1]!);
        const id = Number(this.insertChunk.run(key, ts[start]!, ts[end - 1]!, end - start, data).lastInsertRowid);
        if (open === null || ts[end - 1]! > open.lastTs) this.setOpenChunk(key, { id, lastTs: ts[end - 1]!, bytes: data.length });
        start = end;
      }
    }
    // Its newest reading: the device's latest state if nothing stored is newer.
    const latest = decodeChunk(text.toString('utf8', n === 1 ? 0 : ends[n - 2]!, text.length))[0]!;
    this.updateSummary.run(n, countSum, first, first, last, latest.tsText, last, latest.payload, last, last, key);
  }

  /** The device's open chunk, looked up once and then tracked. */
  private openChunk(key: number): OpenChunk | null {
    const device = this.byKey.get(key);
    if (device?.open !== undefined) return device.open;
    const row = this.newestChunk.get(key);
    const open = row === undefined ? null : { id: row.id, lastTs: row.last_ts_us, bytes: row.bytes };
    if (device !== undefined) device.open = open;
    return open;
  }

  private setOpenChunk(key: number, open: OpenChunk): void {
    const device = this.byKey.get(key);
    if (device !== undefined) device.open = open;
  }

  private device(deviceId: string): DeviceState {
    let state = this.devices.get(deviceId);
    if (state !== undefined) return state;
    const row = this.selectDevice.get(deviceId);
    state =
      row === undefined
        ? { key: Number(this.insertDevice.run(deviceId).lastInsertRowid), latestTs: null, open: null }
        : { key: row.key, latestTs: row.latest_ts_us, open: undefined };
    if (this.devices.size >= DEVICE_CACHE_LIMIT) this.forgetDevices();
    this.devices.set(deviceId, state);
    this.byKey.set(state.key, state);
    return state;
  }

  private forgetDevices(): void {
    this.devices.clear();
    this.byKey.clear();
  }

  /** After a crash: the journal holds committed readings that were never compacted. */
  private replayJournal(): void {
    const rows = this.db.prepare('SELECT seq, data, keys FROM journal ORDER BY seq').all() as JournalRow[];
    for (const row of rows) {
      const { keys, ...readings } = journalReadings(row);
      const entry = this.pending.begin(row.seq, readings);
      for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.pending.add(entry, i, keys[i]!);
      this.pending.finish(entry);
      this.lastSeq = row.seq;
    }
    // A round the crash interrupted resumes after the devices it had done, over the same entries
    // (the journal still holds all of them: it loses a round's entries only with its last slice).
    const progress = this.db.prepare('SELECT through, done_key FROM compaction').get() as { through: number; done_key: number } | undefined;
    if (progress !== undefined) this.startRound(progress.done_key, progress.through);
    this.compactAll();
  }

  /** Removes a device and all its readings; returns whether it existed. */
  deleteDevice(deviceId: string): boolean {
    // The journal may hold the device's readings: compact first, so no replay brings them back.
    this.compactAll();
    const row = this.selectDevice.get(deviceId);
    if (row === undefined) return false;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM chunks WHERE device_key = ?').run(row.key);
      this.db.prepare('DELETE FROM devices WHERE key = ?').run(row.key);
    }).immediate();
    this.devices.delete(deviceId);
    this.byKey.delete(row.key);
    return true;
  }

  /**
   * Deletes up to `limit` of the oldest readings before `beforeUs` in one short transaction, chunk
   * by chunk (whole chunks, or the old head of one); returns how many went.
   */
  prune(beforeUs: number, limit: number): number {
    this.compactAll();
    let deleted = 0;
    this.db.transaction(() => {
      // Chunks wholly before the cut first, then those that straddle it.
      const candidates = this.db
        .prepare(
          `SELECT id, n, data FROM (SELECT * FROM chunks WHERE last_ts_us < ? ORDER BY last_ts_us LIMIT ?)
           UNION ALL SELECT id, n, data FROM (SELECT * FROM chunks WHERE first_ts_us < ? AND last_ts_us >= ? ORDER BY first_ts_us LIMIT ?)`,
        )
        .all(beforeUs, limit, beforeUs, beforeUs, limit) as { id: number; n: number; data: string }[];
      const remove = this.db.prepare('DELETE FROM chunks WHERE id = ?');
      const trim = this.db.prepare('UPDATE chunks SET data = ?, n = ?, first_ts_us = ? WHERE id = ?');
      for (const { id, n, data } of candidates) {
        if (deleted >= limit) break;
        const readings = decodeChunk(data);
        let old = 0;
        while (old < readings.length && old < limit - deleted && readings[old]!.tsUs < beforeUs) old++;
        if (old === n) remove.run(id);
        else if (old > 0) {
          const kept = readings.slice(old);
          trim.run(kept.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join(''), kept.length, kept[0]!.tsUs, id);
        }
        deleted += old;
      }
    }).immediate();
    // Cached open chunks may have been trimmed or deleted: look them up again.
    for (const device of this.byKey.values()) device.open = undefined;
    return deleted;
  }

  /**
   * Compacts what is pending (so the next open has nothing to replay) and closes. `compact: false`
   * leaves the journal as a crash would.
   */
  close({ compact = true } = {}): void {
    try {
      if (compact) this.compactAll();
    } finally {
      this.db.close();
      this.lock.close();
    }
  }
}

/**
 * Takes the data file's writer lock: an exclusive lock on `<file>-lock`, held until close and
 * released by the OS if the process dies. Pending readings live in this writer's memory until
 * compacted, so a second writer on the same file could accept a reading the first holds: refuse it.
 */
function holdWriterLock(file: string): Database.Database {
  const lock = new Database(`${file}-lock`, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS writer (pid INTEGER); DELETE FROM writer;');
    lock.prepare('INSERT INTO writer (pid) VALUES (?)').run(process.pid);
    lock.exec('COMMIT');
  } catch (err) {
    lock.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new Error(`${file} is in use by another Tally (one writer per data file)`, { cause: err });
    }
    throw err;
  }
  return lock;
}

/** A journal row: since schema v4 the batch's text and each reading's device key; before, text only. */
interface JournalRow {
  seq: number;
  data: Buffer | string;
  keys: Buffer | null;
}

/** What a journal row holds, as the pending entry it was when committed. */
function journalReadings(row: JournalRow): EntryReadings & { keys: Int32Array } {
  if (row.keys === null) {
    // Written before v4: lines of `deviceKey<TAB>chunk line`, duplicates left out. Formatted again
    // as a batch would be (the device id is only carried along: keys come from the lines).
    const readings = decodeJournal(row.data as string);
    const cols = toColumns(readings.map((r) => ({ ...r, deviceId: String(r.deviceKey) })));
    return { keys: Int32Array.from(readings, (r) => r.deviceKey), ...entryReadings(cols) };
  }
  const text = row.data as Buffer;
  // A copy: Int32Array needs its buffer aligned, which a Buffer from SQLite need not be.
  const keys = new Int32Array(new Uint8Array(row.keys).buffer);
  const readings = decodeChunk(text.toString('utf8'));
  const ends = new Uint32Array(readings.length);
  for (let i = 0, end = 0; i < readings.length; i++) ends[i] = end = text.indexOf(10, end) + 1;
  return {
    keys,
    ts: Float64Array.from(readings, (r) => r.tsUs),
    counts: Float64Array.from(readings, (r) => r.count ?? NaN),
    text,
    ends,
  };
}

/** A batch's readings as a pending entry holds them; the text is viewed as a Buffer (postMessage delivers a plain Uint8Array), not copied. */
function entryReadings(cols: ReadingColumns): EntryReadings {
  const text = Buffer.from(cols.text.buffer, cols.text.byteOffset, cols.text.byteLength);
  return { ts: cols.tsUs, counts: cols.counts, text, ends: cols.ends };
}

/** A round over `entries`, for the devices with keys above `doneKey`. */
function makeRound(entries: readonly PendingEntry[], doneKey: number): Round {
  const grouped = groupByDevice(entries, doneKey);
  const sliceEnds: number[] = [];
  const devices = grouped.keys.length;
  for (let d = 0, sliceStart = 0; d < devices; d++) {
    const devicesIn = d + 1 - sliceStart;
    const readingsIn = grouped.starts[d + 1]! - grouped.starts[sliceStart]!;
    if (d + 1 === devices || devicesIn >= SLICE_DEVICES || readingsIn + grouped.starts[d + 2]! - grouped.starts[d + 1]! > SLICE_READINGS) {
      sliceEnds.push(d + 1);
      sliceStart = d + 1;
    }
  }
  if (sliceEnds.length === 0) sliceEnds.push(0); // nothing left to move: one empty slice ends the round
  return { through: entries[entries.length - 1]!.seq, entries, grouped, sliceEnds, next: 0 };
}

/** The readings of `entries` of devices with keys above `after`, grouped by device (see `Grouped`). */
function groupByDevice(entries: readonly PendingEntry[], after: number): Grouped {
  // Pass 1: each device's slot (in order of appearance) and how many readings it has.
  const slotOf = new Map<number, number>();
  const slotKeys: number[] = [];
  const sizes: number[] = [];
  let room = 0;
  for (const { keys } of entries) room += keys.length;
  // Each kept reading's slot, in the order pass 2 meets them (room for every reading, skipped ones too).
  const slotAt = new Int32Array(room);
  let idx = 0;
  for (const { keys } of entries) {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (key === 0 || key <= after) continue;
      let slot = slotOf.get(key);
      if (slot === undefined) {
        slot = slotKeys.length;
        slotOf.set(key, slot);
        slotKeys.push(key);
        sizes.push(0);
      }
      sizes[slot] = sizes[slot]! + 1;
      slotAt[idx++] = slot;
    }
  }
  const total = idx;
  // Devices in key order, and where each one's readings go.
  const devices = slotKeys.length;
  const order = slotKeys.map((_, slot) => slot).sort((a, b) => slotKeys[a]! - slotKeys[b]!);
  const rank = new Uint32Array(devices);
  const keys = new Int32Array(devices);
  const starts = new Uint32Array(devices + 1);
  for (let d = 0; d < devices; d++) {
    rank[order[d]!] = d;
    keys[d] = slotKeys[order[d]!]!;
    starts[d + 1] = starts[d]! + sizes[order[d]!]!;
  }
  // Pass 2: every reading into its device's place.
  const grouped: Grouped = {
    keys,
    starts,
    bytes: new Float64Array(devices),
    countSums: new Float64Array(devices),
    ts: new Float64Array(total),
    entry: new Uint32Array(total),
    from: new Uint32Array(total),
    to: new Uint32Array(total),
  };
  const cursor = starts.slice(0, devices);
  const newest = new Float64Array(devices).fill(-Infinity);
  const unsorted = new Uint8Array(devices);
  idx = 0;
  for (let e = 0; e < entries.length; e++) {
    const { keys: entryKeys, ts, counts, ends } = entries[e]!;
    for (let i = 0; i < entryKeys.length; i++) {
      const key = entryKeys[i]!;
      if (key === 0 || key <= after) continue;
      const d = rank[slotAt[idx++]!]!;
      const p = cursor[d]!++;
      const t = ts[i]!;
      const from = i === 0 ? 0 : ends[i - 1]!;
      grouped.ts[p] = t;
      grouped.entry[p] = e;
      grouped.from[p] = from;
      grouped.to[p] = ends[i]!;
      grouped.bytes[d] = grouped.bytes[d]! + ends[i]! - from;
      const count = counts[i]!;
      if (count === count) grouped.countSums[d] = grouped.countSums[d]! + count; // NaN: no count
      if (t < newest[d]!) unsorted[d] = 1;
      else newest[d] = t;
    }
  }
  for (let d = 0; d < devices; d++) if (unsorted[d] === 1) sortDevice(grouped, starts[d]!, starts[d + 1]!);
  return grouped;
}

/** Puts readings `start` to `end` of `grouped` (one device's) in timestamp order. */
function sortDevice(grouped: Grouped, start: number, end: number): void {
  const { ts, entry, from, to } = grouped;
  const order = Array.from({ length: end - start }, (_, k) => start + k).sort((a, b) => ts[a]! - ts[b]!);
  const copies = [ts.slice(start, end), entry.slice(start, end), from.slice(start, end), to.slice(start, end)] as const;
  order.forEach((source, k) => {
    ts[start + k] = copies[0][source - start]!;
    entry[start + k] = copies[1][source - start]!;
    from[start + k] = copies[2][source - start]!;
    to[start + k] = copies[3][source - start]!;
  });
}
