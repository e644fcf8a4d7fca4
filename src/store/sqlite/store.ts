import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Reading } from '../../domain/reading.js';
import { StorageUnavailableError } from '../../domain/errors.js';
import { ValidationError } from '../../domain/errors.js';
import type {
  AggregateBucket,
  AggregateQuery,
  DeviceListQuery,
  DevicePage,
  DevicePageQuery,
  DeviceReadingsQuery,
  DeviceSort,
  DeviceSummary,
  RecordCursor,
  StoredReading,
  TelemetryStore,
} from '../types.js';
import { decodeChunk, decodeChunkTail, type ChunkReading } from './chunk.js';
import { aggregateReadings, mergeChunks, readingsBetween, type ChunkRow } from './chunk-reads.js';
import { toColumns, transferList } from './columns.js';
import type { SqliteStoreConfig } from './config.js';
import type { WriterReady, WriterRequest, WriterResponse } from './protocol.js';

interface DeviceRow {
  device_id: string;
  first_ts_us: number;
  latest_ts_us: number;
  latest_ts_text: string | null;
  latest_payload: string | null;
  reading_count: number;
  cumulative_count: number;
}

interface PagedDeviceRow extends DeviceRow {
  key: number;
  sort_value: number | string | null;
}

/**
 * What a device-page cursor holds: the last item's sort value and device key, and the listing it
 * belongs to (sort, order, prefix), so that reusing it for another listing is an error, not a gap.
 */
interface PageCursor {
  q: string;
  v: number | string | null;
  k: number;
}

function listingOf(query: DevicePageQuery): string {
  const sort = query.sort.by === 'payload' ? `payload.${query.sort.fields.join(',')}` : query.sort.by;
  return `${sort}|${query.order}|${query.prefix ?? ''}`;
}

function encodePageCursor(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodePageCursor(text: string, listing: string): PageCursor {
  let c: PageCursor | undefined;
  try {
    c = JSON.parse(Buffer.from(text, 'base64url').toString()) as PageCursor;
  } catch {
    // reported below
  }
  const valueOk = c?.v === null || typeof c?.v === 'number' || typeof c?.v === 'string';
  if (typeof c !== 'object' || c === null || !valueOk || !Number.isInteger(c.k) || typeof c.q !== 'string') {
    throw new ValidationError('cursor', 'cursor is not one this service issued; pass next_cursor unchanged');
  }
  if (c.q !== listing) {
    throw new ValidationError('cursor', 'cursor belongs to a listing with another sort, order or prefix; start again without it');
  }
  return c;
}

/** Prepared read statements kept at most; past it the cache starts over. */
const STATEMENT_CACHE_LIMIT = 256;

const DEVICE_COLUMNS =
  'device_id, first_ts_us, latest_ts_us, latest_ts_text, latest_payload, reading_count, cumulative_count';

const SORT_COLUMNS = {
  deviceId: 'device_id',
  latestTs: 'latest_ts_us',
  firstTs: 'first_ts_us',
  readingCount: 'reading_count',
  cumulativeCount: 'cumulative_count',
} as const;

function toSummary(row: DeviceRow): DeviceSummary {
  return {
    deviceId: row.device_id,
    firstTsUs: row.first_ts_us,
    latestTsUs: row.latest_ts_us,
    latestTsText: row.latest_ts_text,
    latestPayload: row.latest_payload,
    readingCount: row.reading_count,
    cumulativeCount: row.cumulative_count,
  };
}

const PAYLOAD_FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A JSON path literal for json_extract. Field names are restricted, so they are safe in SQL. */
function jsonPath(field: string): string {
  if (!PAYLOAD_FIELD.test(field)) throw new Error(`unsupported payload field name: ${field}`);
  return `'$.${field}'`;
}

/** The first of the named latest-payload fields that is present (SQL). */
function payloadValue(fields: readonly string[]): string {
  const parts = fields.map((f) => `json_extract(latest_payload, ${jsonPath(f)})`);
  return parts.length === 1 ? parts[0]! : `coalesce(${parts.join(', ')})`;
}

/** The SQL value a device listing sorts by. */
function sortValue(sort: DeviceSort): string {
  return sort.by === 'payload' ? payloadValue(sort.fields) : SORT_COLUMNS[sort.by];
}

/**
 * ORDER BY for a device listing, ties broken by `tiebreak`. Devices without a sorted payload field
 * come last in either order.
 */
function orderBy(sort: DeviceSort, dir: 'ASC' | 'DESC', tiebreak: 'device_id' | 'key'): string {
  const value = sortValue(sort);
  const nullsLast = sort.by === 'payload' ? `${value} IS NULL, ` : '';
  return value === tiebreak ? `${value} ${dir}` : `${nullsLast}${value} ${dir}, ${tiebreak} ${dir}`;
}

/**
 * Where the writer thread's code lives. Under the TypeScript sources (tests) the thread bootstraps
 * tsx first; the built service runs the compiled JavaScript directly.
 */
function spawnWriter(config: SqliteStoreConfig): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const url = new URL('./writer-thread.ts', here).href;
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { eval: true, workerData: config });
  }
  return new Worker(new URL('./writer-thread.js', here), { workerData: config });
}

/**
 * SQLite backend. One writer thread owns all writes (group-committed batches arrive from the
 * ingest pipeline); reads run on the calling thread over their own connection, which WAL lets
 * proceed while the writer commits.
 */
export class SqliteStore implements TelemetryStore {
  readonly name = 'sqlite';
  /**
   * SQLite has one writer, but two batches in flight keep it busy: the next batch is on its way
   * while one commits, instead of the writer waiting for the main thread between commits (measured:
   * ~20% more readings/s on 1,000-reading batches). The writer takes them in the order sent.
   */
  readonly maxConcurrentWrites = 2;

  private writer: Worker | undefined;
  private starting: Promise<Worker> | undefined;
  private readonly waiting = new Map<number, { resolve(r: WriterResponse): void; reject(e: Error): void }>();
  private nextId = 1;
  private reader: Database.Database | undefined;
  private readonly statements = new Map<string, Database.Statement>();
  private closing: Promise<void> | undefined;
  /** Journal seq of the newest acknowledged batch. */
  private ackedThrough = 0;
  /** Journal seq through which compaction has moved readings where reads find them. */
  private visibleThrough = 0;
  /** The compaction request in flight for readers, and the seq it asked for. */
  private catchingUp: { through: number; done: Promise<unknown> } | undefined;

  private constructor(private readonly config: SqliteStoreConfig) {}

  /** Opens (creating and migrating when needed) the database at `config.file`. */
  static async open(config: SqliteStoreConfig): Promise<SqliteStore> {
    const store = new SqliteStore(Object.freeze({ ...config }));
    await store.ensureWriter(); // the writer creates and migrates the file before anyone reads it
    store.reader = new Database(config.file);
    store.reader.pragma('busy_timeout = 5000');
    store.reader.pragma('query_only = true');
    return store;
  }

  private ensureWriter(): Promise<Worker> {
    if (this.writer !== undefined) return Promise.resolve(this.writer);
    this.starting ??= new Promise<Worker>((resolve, reject) => {
      const worker = spawnWriter(this.config);
      worker.once('message', (ready: WriterReady) => {
        if (!ready.ready) {
          reject(new StorageUnavailableError(`cannot open ${this.config.file}: ${ready.message}`));
          return;
        }
        // A new writer has compacted everything committed before it (journal seqs start again).
        this.ackedThrough = 0;
        this.visibleThrough = ready.compacted;
        worker.on('message', (response: WriterResponse) => this.settle(response));
        this.writer = worker;
        resolve(worker);
      });
      worker.once('error', (err) => reject(new StorageUnavailableError(`writer thread failed: ${err.message}`, { cause: err })));
      worker.once('exit', (code) => this.writerGone(worker, code));
    }).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** The writer thread ended: fail what it held (none of it was acknowledged) and start afresh on next use. */
  private writerGone(worker: Worker, code: number): void {
    if (this.writer === worker) this.writer = undefined;
    const error = new StorageUnavailableError(`the SQLite writer thread stopped (exit code ${code})`);
    for (const { reject } of this.waiting.values()) reject(error);
    this.waiting.clear();
  }

  private settle(response: WriterResponse): void {
    if (response.compacted > this.visibleThrough) this.visibleThrough = response.compacted;
    const waiter = this.waiting.get(response.id);
    if (waiter === undefined) return;
    this.waiting.delete(response.id);
    waiter.resolve(response);
  }

  private async call(request: WriterRequest, transfer: ArrayBuffer[] = []): Promise<WriterResponse & { ok: true }> {
    if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
    const worker = await this.ensureWriter();
    const response = await new Promise<WriterResponse>((resolve, reject) => {
      this.waiting.set(request.id, { resolve, reject });
      worker.postMessage(request, transfer);
    });
    if (!response.ok) throw new StorageUnavailableError(`SQLite write failed: ${response.message}`);
    return response;
  }

  async appendBatch(readings: readonly Reading[]): Promise<Uint8Array> {
    const columns = toColumns(readings);
    const response = await this.call({ op: 'append', id: this.nextId++, columns }, transferList(columns));
    if (response.seq! > this.ackedThrough) this.ackedThrough = response.seq!;
    return response.stored!;
  }

  /**
   * Read-your-writes: resolves once reads see every batch acknowledged so far. Acknowledged readings
   * sit in the journal until compacted (within milliseconds when the writer is idle); a read that
   * finds some there asks the writer to compact them first, sharing one request with other readers.
   */
  private visible(): Promise<unknown> | undefined {
    const through = this.ackedThrough;
    if (this.visibleThrough >= through) return undefined;
    if (this.catchingUp === undefined || this.catchingUp.through < through) {
      const done = this.call({ op: 'compact', id: this.nextId++, through });
      const request = { through, done };
      this.catchingUp = request;
      void done.then(
        () => this.catchingUp === request && (this.catchingUp = undefined),
        () => this.catchingUp === request && (this.catchingUp = undefined),
      );
    }
    return this.catchingUp.done;
  }

  async deleteDevice(deviceId: string): Promise<boolean> {
    const response = await this.call({ op: 'deleteDevice', id: this.nextId++, deviceId });
    return response.existed === true;
  }

  /**
   * Runs reads in one read transaction, so they see one snapshot: a compaction committing between
   * two statements (a device's key, then its chunks; a count, then a page) would otherwise mix
   * states.
   */
  private snapshot<T>(read: () => T): T {
    if (this.reader === undefined) throw new StorageUnavailableError('the store is closed');
    return this.reader.transaction(read).deferred();
  }

  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      if (this.reader === undefined) throw new StorageUnavailableError('the store is closed');
      stmt = this.reader.prepare(sql);
      // Payload field names are chosen by clients, so the set of statements is open-ended: bound it.
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  async getDevice(deviceId: string): Promise<DeviceSummary | undefined> {
    await this.visible();
    const row = this.statement(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = ? AND reading_count > 0`).get(
      deviceId,
    ) as DeviceRow | undefined;
    return row === undefined ? undefined : toSummary(row);
  }

  async listDevices(query: DeviceListQuery): Promise<{ total: number; items: DeviceSummary[] }> {
    await this.visible();
    const dir = query.order === 'asc' ? 'ASC' : 'DESC';
    return this.snapshot(() => {
      const total = this.statement('SELECT count(*) FROM devices WHERE reading_count > 0').pluck().get() as number;
      const rows = this.statement(
        `SELECT ${DEVICE_COLUMNS} FROM devices WHERE reading_count > 0
         ORDER BY ${orderBy(query.sort, dir, 'device_id')} LIMIT ? OFFSET ?`,
      ).all(query.limit, query.offset) as DeviceRow[];
      return { total, items: rows.map(toSummary) };
    });
  }



  async deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<StoredReading[]> {
    await this.visible();
    const asc = query.order === 'asc';
    let from = query.fromUs ?? Number.MIN_SAFE_INTEGER;
    let to = query.toUs ?? Number.MAX_SAFE_INTEGER;
    if (query.afterTsUs !== undefined) {
      if (asc) from = Math.max(from, query.afterTsUs + 1);
      else to = Math.min(to, query.afterTsUs);
    }
    return this.snapshot(() => {
      const key = this.statement('SELECT key FROM devices WHERE device_id = ?').pluck().get(deviceId) as number | undefined;
      if (key === undefined) return [];
      const bound = asc ? 'first_ts_us' : 'last_ts_us';
      const rows = this.statement(
        `SELECT ${bound} AS bound, data FROM chunks
         WHERE device_key = ? AND last_ts_us >= ? AND first_ts_us < ? ORDER BY ${bound} ${asc ? 'ASC' : 'DESC'}`,
      ).iterate(key, from, to) as Iterable<ChunkRow>;
      const toStored = (r: ChunkReading): StoredReading => ({ seq: key, deviceId, ...r });
      return mergeChunks(rows, {
        readingsOf: (row) => readingsBetween(row.data, from, to).map(toStored),
        tsOf: (r) => r.tsUs,
        compare: asc ? (a, b) => a.tsUs - b.tsUs : (a, b) => b.tsUs - a.tsUs,
        ascending: asc,
        limit: query.limit ?? -1,
      });
    });
  }

  async listDevicePage(query: DevicePageQuery): Promise<DevicePage> {
    await this.visible();
    const asc = query.order === 'asc';
    const dir = asc ? 'ASC' : 'DESC';
    const cmp = asc ? '>' : '<';
    const value = sortValue(query.sort);
    const where = ['reading_count > 0'];
    const params: unknown[] = [];
    if (query.prefix !== undefined && query.prefix !== '') {
      // A range the device_id index can serve, then an exact check.
      where.push("device_id >= ? AND device_id < ? || char(1114111) AND substr(device_id, 1, length(?)) = ?");
      params.push(query.prefix, query.prefix, query.prefix, query.prefix);
    }
    if (query.cursor !== undefined) {
      const c = decodePageCursor(query.cursor, listingOf(query));
      if (query.sort.by !== 'payload') {
        where.push(`(${value}, key) ${cmp} (?, ?)`);
        params.push(c.v, c.k);
      } else if (c.v === null) {
        // Devices without the field come last in either order, ordered by key among themselves.
        where.push(`${value} IS NULL AND key ${cmp} ?`);
        params.push(c.k);
      } else {
        where.push(`(${value} IS NULL OR (${value}, key) ${cmp} (?, ?))`);
        params.push(c.v, c.k);
      }
    }
    const rows = this.statement(
      `SELECT key, ${value} AS sort_value, ${DEVICE_COLUMNS} FROM devices
       WHERE ${where.join(' AND ')}
       ORDER BY ${orderBy(query.sort, dir, 'key')} LIMIT ?`,
    ).all(...params, query.limit) as PagedDeviceRow[];
    const last = rows.length === query.limit ? rows[rows.length - 1] : undefined;
    return {
      items: rows.map(toSummary),
      nextCursor: last === undefined ? null : encodePageCursor({ q: listingOf(query), v: last.sort_value, k: last.key }),
    };
  }

  async aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]> {
    await this.visible();
    const chunks = this.statement(
      `SELECT c.data FROM devices d JOIN chunks c ON c.device_key = d.key
       WHERE d.device_id = ? AND c.last_ts_us >= ? AND c.first_ts_us < ?`,
    )
      .pluck()
      .all(deviceId, query.fromUs, query.toUs) as string[];
    // aggregateReadings keeps [fromUs, toUs) itself: the chunks' readings go to it unfiltered.
    return aggregateReadings(chunks.flatMap(decodeChunk), query);
  }

  async pruneBefore(beforeUs: number, limit: number): Promise<number> {
    const response = await this.call({ op: 'prune', id: this.nextId++, beforeUs, limit });
    return response.deleted ?? 0;
  }

  async listRecords(limit: number, after?: RecordCursor): Promise<StoredReading[]> {
    await this.visible();
    // Newest first across devices: chunks by last timestamp, merged; ties in time go by device key.
    const select = `SELECT c.last_ts_us AS bound, c.data, c.device_key AS key, d.device_id AS deviceId
       FROM chunks c JOIN devices d ON d.key = c.device_key`;
    const order = 'ORDER BY c.last_ts_us DESC';
    return this.snapshot(() => {
      const rows = (
        after === undefined
          ? this.statement(`${select} ${order}`).iterate()
          : this.statement(`${select} WHERE c.first_ts_us <= ? ${order}`).iterate(after.tsUs)
      ) as Iterable<ChunkRow & { key: number; deviceId: string }>;
      const before = (r: StoredReading) => after === undefined || r.tsUs < after.tsUs || (r.tsUs === after.tsUs && r.seq < after.seq);
      return mergeChunks(rows, {
        // Only a chunk's tail can matter once a page's worth is gathered: read it from the end.
        readingsOf: (row, cutoff) =>
          decodeChunkTail(row.data, cutoff ?? Number.MIN_SAFE_INTEGER)
            .map((r): StoredReading => ({ seq: row.key, deviceId: row.deviceId, ...r }))
            .filter(before),
        tsOf: (r) => r.tsUs,
        compare: (a, b) => b.tsUs - a.tsUs || b.seq - a.seq,
        ascending: false,
        limit,
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const worker = this.writer ?? (await this.starting?.catch(() => undefined));
      if (worker !== undefined) {
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ op: 'close' });
        await exited;
      }
      this.statements.clear();
      this.reader?.close();
      this.reader = undefined;
    })();
    return this.closing;
  }
}
