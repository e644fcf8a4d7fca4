import type Database from 'better-sqlite3';
import { chunkHas, chunkInstants, chunkLine, decodeChunk, encodeSealed, isSealed, SEALED_CHUNK_BYTES, sealLines, type ChunkData } from './chunk.js';
import { countStats } from './count-stats.js';
import type { ChunkSealer } from './seal-chunks.js';
import type { DeviceDirectory } from './devices.js';

/**
 * Chunks of at least this many readings are checked for duplicates through a set of their instants
 * built once per append; smaller ones by a substring search of their text, which costs less than a
 * set when a chunk is looked up once or twice.
 */
const SET_LOOKUP_READINGS = 256;
/**
 * A device's newest chunk takes appended readings while it stays under this many characters: an
 * append rewrites the whole row, so this bounds what a compaction rewrites per device.
 */
const APPEND_CHUNK_BYTES = 3500;

/**
 * The writer's side of the `chunks` table and the summaries kept with it: files a device's readings
 * in chunks (appending to its open chunk or cutting new ones) and updates its summary in the same
 * transaction; answers whether a device's chunks hold an instant; deletes old or whole devices'
 * readings.
 */
export class ChunkTable {
  private readonly covering: Database.Statement<[number, number, number], ChunkData | number>;
  private readonly dataOf: Database.Statement<[number], ChunkData>;
  private readonly insert: Database.Statement<unknown[]>;
  private readonly append: Database.Statement<unknown[]>;
  private readonly updateSummary: Database.Statement<unknown[]>;
  /** Instants of the large chunks duplicate checks have read; emptied whenever chunks are written. */
  private readonly instantsRead = new Map<number, Set<number>>();

  constructor(
    private readonly db: Database.Database,
    private readonly devices: DeviceDirectory,
    /** Takes the text chunks that stop taking appends, to seal them later. */
    private readonly sealer: ChunkSealer,
  ) {
    // One plucked column (cheaper than row objects): a small chunk's data, or a large chunk's id, its
    // data (overflow pages) left unread here and read once per append by `largeChunkInstants`.
    this.covering = db
      .prepare(`SELECT CASE WHEN n < ${SET_LOOKUP_READINGS} THEN data ELSE id END FROM chunks WHERE device_key = ? AND last_ts_us >= ? AND first_ts_us <= ?`)
      .pluck() as Database.Statement<[number, number, number], ChunkData | number>;
    this.dataOf = db.prepare('SELECT data FROM chunks WHERE id = ?').pluck() as Database.Statement<[number], ChunkData>;
    // Chunk text arrives as UTF-8 bytes (a Buffer binds as a BLOB): CAST stores it as TEXT. Each
    // chunk keeps the count, sum, min and max of its readings' counts, which aggregates read
    // instead of decoding the chunk (NULL: unknown, a chunk written before they were kept).
    //
    // Text chunks take ids below every other (negative ones), sealed chunks the usual next id: the
    // two live on separate pages. Text chunks are sealed and deleted in turn, so their pages empty
    // and are reused; mixed with sealed chunks, each page would keep a few small sealed rows and
    // most of its 16 KiB empty for good.
    this.insert = db.prepare(
      `INSERT INTO chunks (id, device_key, first_ts_us, last_ts_us, n, data, counted, count_sum, count_min, count_max)
       VALUES ((SELECT coalesce(min(id), 0) - 1 FROM chunks WHERE id < 0), ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?)`,
    );
    // Appends go to a text chunk only: a sealed one is never appended to (see `write`).
    this.append = db.prepare(`
      UPDATE chunks SET data = data || CAST(? AS TEXT), n = n + ?, last_ts_us = ?,
        counted   = counted + ?,
        count_sum = count_sum + ?,
        count_min = CASE WHEN counted IS NULL THEN NULL ELSE coalesce(min(count_min, ?), count_min, ?) END,
        count_max = CASE WHEN counted IS NULL THEN NULL ELSE coalesce(max(count_max, ?), count_max, ?) END
      WHERE id = ? AND typeof(data) = 'text'`);
    // Every expression on the right sees the row as it was before this UPDATE; positional parameters
    // bind faster than named ones, and this runs once per device per compaction.
    this.updateSummary = db.prepare(`
      UPDATE devices SET
        reading_count    = reading_count + ?,
        cumulative_count = cumulative_count + ?,
        first_ts_us      = min(coalesce(first_ts_us, ?), ?),
        latest_ts_text   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_ts_text END,
        latest_payload   = CASE WHEN latest_ts_us IS NULL OR ? > latest_ts_us THEN ? ELSE latest_payload END,
        latest_ts_us     = max(coalesce(latest_ts_us, ?), ?)
      WHERE key = ?`);
  }

  /** Forgets what duplicate checks read: call at the start of each append. */
  startAppend(): void {
    this.instantsRead.clear();
  }

  /** Whether the device's chunks hold a reading at `tsUs`. */
  has(deviceKey: number, tsUs: number): boolean {
    for (const chunk of this.covering.iterate(deviceKey, tsUs, tsUs)) {
      if (typeof chunk === 'number' ? this.largeChunkInstants(chunk).has(tsUs) : chunkHas(chunk, tsUs)) return true;
    }
    return false;
  }

  private largeChunkInstants(id: number): Set<number> {
    let instants = this.instantsRead.get(id);
    if (instants === undefined) {
      instants = new Set(chunkInstants(this.dataOf.get(id)!));
      this.instantsRead.set(id, instants);
    }
    return instants;
  }

  /**
   * Files a device's readings (`ts` ascending, their counts (NaN: none), their lines in `text`,
   * `ends` the byte offset after each) in its chunks, and adds them to its summary.
   *
   * Only the device's newest chunk takes appends, as text, while it has room; every other chunk is
   * sealed (chunk-sealed.ts): new chunks that are not the newest (or are already full) at once,
   * from the lines in hand, and the newest once a newer one replaces it, later, with others of the
   * device (seal-chunks.ts: off this commit, whose acknowledgement would otherwise wait for it). So
   * each chunk is compressed once and an append never decompresses one.
   */
  write(key: number, ts: Float64Array, counts: Float64Array, text: Buffer, ends: ArrayLike<number>): void {
    this.instantsRead.clear(); // what was read of a chunk may no longer be all it holds
    const n = ts.length;
    const first = ts[0]!;
    const last = ts[n - 1]!;
    const all = countStats(counts, 0, n);
    const open = this.devices.openChunk(key);
    const appendable = open !== null && first > open.lastTs && open.bytes + text.length <= APPEND_CHUNK_BYTES;
    if (appendable && this.append.run(text, n, last, all.counted, all.sum, all.min, all.min, all.max, all.max, open.id).changes === 1) {
      open.lastTs = last;
      open.bytes += text.length;
    } else {
      // New chunks of at most SEALED_CHUNK_BYTES (or one reading); the last becomes the open one if it
      // is the device's newest.
      let start = 0;
      while (start < n) {
        const from = start === 0 ? 0 : ends[start - 1]!;
        let end = start + 1;
        while (end < n && ends[end]! - from <= SEALED_CHUNK_BYTES) end++;
        const data = start === 0 && end === n ? text : text.subarray(from, ends[end - 1]!);
        const c = start === 0 && end === n ? all : countStats(counts, start, end);
        // The newest of this write, if newer than the device's open chunk, becomes the open one; it
        // stays text only while it has room for appends (a full one would never take any).
        const newest = end === n && (open === null || ts[n - 1]! > open.lastTs);
        const sealed = newest && data.length < APPEND_CHUNK_BYTES ? undefined : sealLines(data);
        const id =
          sealed === undefined
            ? Number(this.insert.run(key, ts[start]!, ts[end - 1]!, end - start, data, c.counted, c.sum, c.min, c.max).lastInsertRowid)
            : this.sealer.insertSealed(key, ts[start]!, ts[end - 1]!, end - start, sealed, c.counted, c.sum, c.min, c.max);
        if (newest) {
          // The chunk it replaces takes no more appends: sealed later (seal-chunks.ts), off this commit.
          if (open !== null && Number.isFinite(open.bytes)) this.sealer.note(key, open.id, open.bytes);
          this.devices.setOpenChunk(key, { id, lastTs: ts[n - 1]!, bytes: sealed === undefined ? data.length : Infinity });
        }
        start = end;
      }
    }
    // Its newest reading: the device's latest state if nothing stored is newer.
    const latest = decodeChunk(text.toString('utf8', n === 1 ? 0 : ends[n - 2]!, text.length))[0]!;
    this.updateSummary.run(n, all.sum, first, first, last, latest.tsText, last, latest.payload, last, last, key);
  }

  /** Removes a device's readings and its summary row (inside the caller's transaction). */
  deleteDevice(key: number): void {
    this.db.prepare('DELETE FROM chunks WHERE device_key = ?').run(key);
    this.db.prepare('DELETE FROM devices WHERE key = ?').run(key);
  }

  /**
   * Deletes up to `limit` of the oldest readings before `beforeUs`, chunk by chunk (whole chunks, or
   * the old head of one), inside the caller's transaction; returns how many went.
   */
  prune(beforeUs: number, limit: number): number {
    let deleted = 0;
    // Chunks wholly before the cut first, then those that straddle it.
    const candidates = this.db
      .prepare(
        `SELECT id, device_key, n, data FROM (SELECT * FROM chunks WHERE last_ts_us < ? ORDER BY last_ts_us LIMIT ?)
         UNION ALL SELECT id, device_key, n, data FROM (SELECT * FROM chunks WHERE first_ts_us < ? AND last_ts_us >= ? ORDER BY first_ts_us LIMIT ?)`,
      )
      .all(beforeUs, limit, beforeUs, beforeUs, limit) as { id: number; device_key: number; n: number; data: ChunkData }[];
    const remove = this.db.prepare('DELETE FROM chunks WHERE id = ?');
    const trim = this.db.prepare(
      'UPDATE chunks SET data = ?, n = ?, first_ts_us = ?, counted = ?, count_sum = ?, count_min = ?, count_max = ? WHERE id = ?',
    );
    // Summaries stay all-time, and keep what went (per device), so an audit can still check them.
    const pruned = new Map<number, { n: number; sum: number }>();
    for (const { id, device_key: key, n, data } of candidates) {
      if (deleted >= limit) break;
      const readings = decodeChunk(data);
      let old = 0;
      while (old < readings.length && old < limit - deleted && readings[old]!.tsUs < beforeUs) old++;
      if (old > 0) {
        const tally = pruned.get(key) ?? { n: 0, sum: 0 };
        tally.n += old;
        for (let r = 0; r < old; r++) tally.sum += readings[r]!.count ?? 0;
        pruned.set(key, tally);
      }
      if (old === n) remove.run(id);
      else if (old > 0) {
        const kept = readings.slice(old);
        const c = countStats(Float64Array.from(kept, (r) => r.count ?? NaN), 0, kept.length);
        // The trimmed chunk keeps its form: a text chunk may still be a device's open one.
        const rest = (isSealed(data) ? encodeSealed(kept) : undefined) ?? kept.map((r) => chunkLine(r.tsUs, r.count, r.tsText, r.payload)).join('');
        trim.run(rest, kept.length, kept[0]!.tsUs, c.counted, c.sum, c.min, c.max, id);
      }
      deleted += old;
    }
    const note = this.db.prepare('UPDATE devices SET pruned_count = pruned_count + ?, pruned_sum = pruned_sum + ? WHERE key = ?');
    for (const [key, { n, sum }] of pruned) note.run(n, sum, key);
    this.instantsRead.clear();
    this.devices.forgetOpenChunks();
    return deleted;
  }
}
