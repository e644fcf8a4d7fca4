import Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../../domain/api-key.js';
import type { Reading } from '../../domain/reading.js';
import { StorageUnavailableError } from '../../domain/errors.js';
import { decodeCursor, encodeCursor, historyRange, listingOf, recordsListing } from '../cursor.js';
import type {
  AggregateBucket,
  AggregateQuery,
  AuditOptions,
  AuditReport,
  BackupResult,
  DeviceListQuery,
  DevicePage,
  DeviceReadingsQuery,
  DeviceSummary,
  ReadingPage,
} from '../types.js';
import { auditDatabase } from './audit.js';
import { backupDatabase } from './backup.js';
import { decodeChunk, decodeChunkTail, type ChunkData, type ChunkReading } from './chunk.js';
import { Buckets, mergeChunks, readingsBetween, withRows, type ChunkRow } from './chunk-reads.js';
import { JournalOverlay } from './journal-overlay.js';
import { SqliteKeyTable } from './keys.js';
import { DEVICE_COLUMNS, orderBy, sortValue, toSummary, type DeviceRow } from './device-sql.js';

/** Prepared read statements kept at most; past it the cache starts over. */
const STATEMENT_CACHE_LIMIT = 256;

/** What an aggregate reads of a chunk before deciding whether to decode it. */
interface ChunkStatsRow {
  id: number;
  first_ts_us: number;
  last_ts_us: number;
  /** Null for a chunk written before chunks kept stats. */
  counted: number | null;
  count_sum: number | null;
  count_min: number | null;
  count_max: number | null;
}

/** A reading with its device's key: records are ordered, and resumed, by (timestamp, device key). */
type KeyedReading = ChunkReading & { readonly deviceId: string; readonly key: number };


/**
 * The queries of the SQLite store, over a read-only connection of their own, which WAL lets
 * proceed while the writer commits. Callers make sure reads see what was acknowledged first.
 */
export class SqliteReads {
  private db: Database.Database | undefined;
  private readonly statements = new Map<string, Database.Statement>();
  private keyTable: SqliteKeyTable | undefined;
  /** Set while a read includes the journal (`withJournal`): its pending readings, read in the read's snapshot. */
  private overlay: JournalOverlay | undefined;

  constructor(private readonly file: string) {
    this.db = new Database(file);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('query_only = true');
  }

  /**
   * Runs reads in one read transaction, so they see one snapshot: a compaction committing between
   * two statements (a device's key, then its chunks; a count, then a page) would otherwise mix
   * states.
   */
  private snapshot<T>(read: () => T): T {
    if (this.db === undefined) throw new StorageUnavailableError('the store is closed');
    return this.db.transaction(read).deferred();
  }

  /**
   * Runs a read over everything committed, the journal's readings not yet compacted included, in
   * one snapshot: for when the writer cannot compact them first (a full disk, a failing writer).
   * Slower than a read of chunks alone, as it decodes the whole journal.
   */
  withJournal<T>(read: () => T): T {
    try {
      return this.snapshot(() => {
        this.overlay = JournalOverlay.read(this.db!);
        return read();
      });
    } finally {
      this.overlay = undefined;
    }
  }

  /** `sql` over devices, with the journal's pending readings added to the summaries when a read includes them. */
  private devicesStatement(sql: string): { stmt: Database.Statement; params: unknown[] } {
    if (this.overlay === undefined || this.overlay.empty) return { stmt: this.statement(sql), params: [] };
    const cte = this.overlay.devicesCte();
    return { stmt: this.statement(`${cte.sql} ${sql}`), params: [cte.param] };
  }

  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      if (this.db === undefined) throw new StorageUnavailableError('the store is closed');
      stmt = this.db.prepare(sql);
      // Payload field names are chosen by clients, so the set of statements is open-ended: bound it.
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  getDevice(deviceId: string): DeviceSummary | undefined {
    const { stmt, params } = this.devicesStatement(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = ? AND reading_count > 0`);
    const row = stmt.get(...params, deviceId) as DeviceRow | undefined;
    return row === undefined ? undefined : toSummary(row);
  }

  listDevices(query: DeviceListQuery): DevicePage {
    const asc = query.order === 'asc';
    const cmp = asc ? '>' : '<';
    const value = sortValue(query.sort);
    const where = ['reading_count > 0'];
    const params: unknown[] = [];
    if (query.prefix !== undefined && query.prefix !== '') {
      // A range the device_id index can serve, then an exact check.
      where.push("device_id >= ? AND device_id < ? || char(1114111) AND substr(device_id, 1, length(?)) = ?");
      params.push(query.prefix, query.prefix, query.prefix, query.prefix);
    }
    const filter = where.join(' AND ');
    const listing = listingOf(query);
    if (query.cursor !== undefined) {
      const [v, k] = decodeCursor(query.cursor, listing, ['value', 'integer']) as [number | string | null, number];
      if (query.sort.by !== 'payload') {
        where.push(`(${value}, key) ${cmp} (?, ?)`);
        params.push(v, k);
      } else if (v === null) {
        // Devices without the field come last in either order, ordered by key among themselves.
        where.push(`${value} IS NULL AND key ${cmp} ?`);
        params.push(k);
      } else {
        where.push(`(${value} IS NULL OR (${value}, key) ${cmp} (?, ?))`);
        params.push(v, k);
      }
    }
    const page = `SELECT key, ${value} AS sort_value, ${DEVICE_COLUMNS} FROM devices
       WHERE ${where.join(' AND ')} ORDER BY ${orderBy(query.sort, asc ? 'ASC' : 'DESC')} LIMIT ? OFFSET ?`;
    const run = () => {
      const paged = this.devicesStatement(page);
      const rows = paged.stmt.all(...paged.params, ...params, query.limit, query.offset ?? 0) as Array<DeviceRow & { key: number; sort_value: number | string | null }>;
      const last = rows.length === query.limit ? rows[rows.length - 1] : undefined;
      const counted = query.withTotal ? this.devicesStatement(`SELECT count(*) FROM devices WHERE ${filter}`) : undefined;
      const total = counted === undefined ? undefined : (counted.stmt.pluck().get(...counted.params, ...params.slice(0, query.prefix ? 4 : 0)) as number);
      return {
        items: rows.map(toSummary),
        nextCursor: last === undefined ? null : encodeCursor(listing, [last.sort_value, last.key]),
        ...(total === undefined ? {} : { total }),
      };
    };
    // A page and its total must come from one snapshot; a page alone is one statement.
    return query.withTotal ? this.snapshot(run) : run();
  }

  deviceReadings(deviceId: string, query: DeviceReadingsQuery): ReadingPage {
    const asc = query.order === 'asc';
    const { from, to, listing } = historyRange(query);
    const items = this.snapshot(() => {
      const key = this.statement('SELECT key FROM devices WHERE device_id = ?').pluck().get(deviceId) as number | undefined;
      if (key === undefined) return [];
      const bound = asc ? 'first_ts_us' : 'last_ts_us';
      const chunks = this.statement(
        `SELECT ${bound} AS bound, data FROM chunks
         WHERE device_key = ? AND last_ts_us >= ? AND first_ts_us < ? ORDER BY ${bound} ${asc ? 'ASC' : 'DESC'}`,
      ).iterate(key, from, to) as Iterable<ChunkRow>;
      const pending = this.overlay?.chunkOf(key, asc);
      const rows = pending === undefined ? chunks : withRows(chunks, [pending], asc);
      return mergeChunks(rows, {
        readingsOf: (row) => readingsBetween(row.data, from, to).map((r): Reading => ({ deviceId, ...r })),
        tsOf: (r) => r.tsUs,
        compare: asc ? (a, b) => a.tsUs - b.tsUs : (a, b) => b.tsUs - a.tsUs,
        ascending: asc,
        limit: query.limit ?? -1,
      });
    });
    const last = query.limit !== undefined && items.length === query.limit ? items[items.length - 1] : undefined;
    return { items, nextCursor: last === undefined ? null : encodeCursor(listing, [last.tsUs]) };
  }

  /**
   * Buckets of one device's readings. Of `count`, a chunk that lies whole in one bucket is added
   * from the stats it keeps, without decoding; only chunks cut by a bucket or range edge (or
   * written before chunks kept stats) are decoded, one at a time.
   */
  aggregate(deviceId: string, query: AggregateQuery): AggregateBucket[] {
    const buckets = new Buckets(query);
    const fromStats = query.field.kind === 'count';
    this.snapshot(() => {
      const key = this.statement('SELECT key FROM devices WHERE device_id = ?').pluck().get(deviceId) as number | undefined;
      if (key === undefined) return;
      const chunks = this.statement(
        `SELECT id, first_ts_us, last_ts_us, counted, count_sum, count_min, count_max FROM chunks
         WHERE device_key = ? AND last_ts_us >= ? AND first_ts_us < ?`,
      ).all(key, query.fromUs, query.toUs) as ChunkStatsRow[]; // a few numbers per chunk; data is read by id below
      const dataOf = this.statement('SELECT data FROM chunks WHERE id = ?').pluck();
      for (const c of chunks) {
        if (fromStats && c.counted !== null && buckets.holdsWhole(c.first_ts_us, c.last_ts_us)) {
          buckets.addSummary(buckets.startOf(c.first_ts_us), c.counted, c.count_sum!, c.count_min!, c.count_max!);
        } else {
          buckets.addReadings(decodeChunk(dataOf.get(c.id) as ChunkData, { timestampTexts: false }));
        }
      }
      buckets.addReadings(this.overlay?.byKey.get(key) ?? []);
    });
    return buckets.result();
  }

  listKeys(): ApiKeyRecord[] {
    if (this.db === undefined) throw new StorageUnavailableError('the store is closed');
    this.keyTable ??= new SqliteKeyTable(this.db);
    return this.keyTable.list();
  }

  listRecords(limit: number, cursor?: string, prefix?: string): ReadingPage {
    const listing = recordsListing(prefix);
    const after = cursor === undefined ? undefined : (decodeCursor(cursor, listing, ['integer', 'integer']) as [number, number]);
    // Newest first across devices: chunks by last timestamp, merged; ties in time go by device key.
    const select = `SELECT c.last_ts_us AS bound, c.data, c.device_key AS key, d.device_id AS deviceId
       FROM chunks c JOIN devices d ON d.key = c.device_key`;
    const order = 'ORDER BY c.last_ts_us DESC';
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (after !== undefined) {
      conditions.push('c.first_ts_us <= ?');
      params.push(after[0]);
    }
    if (prefix !== undefined && prefix !== '') {
      conditions.push('substr(d.device_id, 1, length(?)) = ?');
      params.push(prefix, prefix);
    }
    const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
    const before = (r: KeyedReading) => after === undefined || r.tsUs < after[0] || (r.tsUs === after[0] && r.key < after[1]);
    const items = this.snapshot(() => {
      type Row = ChunkRow & { key: number; deviceId: string };
      const chunks = this.statement(`${select} ${where} ${order}`).iterate(...params) as Iterable<Row>;
      const rows = this.overlay === undefined || this.overlay.empty ? chunks : withRows(chunks, this.pendingRecordRows(prefix), false);
      return mergeChunks(rows, {
        // Only a chunk's tail can matter once a page's worth is gathered: read it from the end.
        readingsOf: (row, cutoff) =>
          decodeChunkTail(row.data, cutoff ?? Number.MIN_SAFE_INTEGER)
            .map((r): KeyedReading => ({ key: row.key, deviceId: row.deviceId, ...r }))
            .filter(before),
        tsOf: (r) => r.tsUs,
        compare: (a, b) => b.tsUs - a.tsUs || b.key - a.key,
        ascending: false,
        limit,
      });
    });
    const last = items.length === limit ? items[items.length - 1] : undefined;
    return {
      items: items.map(({ key: _key, ...reading }) => reading),
      nextCursor: last === undefined ? null : encodeCursor(listing, [last.tsUs, last.key]),
    };
  }

  /** The whole store's audit (audit.ts): long, so the store runs it on a reader thread of its own. */
  audit(options: AuditOptions): AuditReport {
    if (this.db === undefined) throw new StorageUnavailableError('the store is closed');
    return auditDatabase(this.db, options);
  }

  /** A checked copy of the store at `target` (backup.ts), through a connection of its own. */
  backup(target: string, overwrite: boolean): BackupResult {
    return backupDatabase(this.file, target, { overwrite });
  }

  /** The journal's pending readings of each device (under `prefix`) as chunk rows of a newest-first walk. */
  private pendingRecordRows(prefix: string | undefined): Array<ChunkRow & { key: number; deviceId: string }> {
    const idOf = this.statement('SELECT device_id FROM devices WHERE key = ?').pluck();
    const out: Array<ChunkRow & { key: number; deviceId: string }> = [];
    for (const key of this.overlay!.byKey.keys()) {
      const deviceId = idOf.get(key) as string;
      if (prefix !== undefined && !deviceId.startsWith(prefix)) continue;
      out.push({ ...this.overlay!.chunkOf(key, false)!, key, deviceId });
    }
    return out;
  }

  close(): void {
    this.statements.clear();
    this.db?.close();
    this.db = undefined;
  }
}
