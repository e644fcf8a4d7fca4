import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { ApiKeyRecord } from '../../domain/api-key.js';
import { InvalidCursorError, StorageUnavailableError } from '../../domain/errors.js';
import type { Reading } from '../../domain/reading.js';
import { decodeCursor, encodeCursor, historyRange, listingOf, recordsListing } from '../cursor.js';
import type {
  AggregateBucket,
  AggregateQuery,
  AuditOptions,
  AuditReport,
  DeviceListQuery,
  DevicePage,
  DeviceReadingsQuery,
  DeviceSummary,
  KeyWrite,
  ReadingPage,
  RecordsQuery,
  TelemetryStore,
} from '../types.js';
import { toKeyRecord, type KeyRow } from '../key-row.js';
import { keyWriteQuery, LIST_KEYS } from './keys.js';
import { auditPostgres } from './audit.js';
import { withClient } from './client.js';
import type { PostgresStoreConfig } from './config.js';
import { isMissingPartition, isRetryable, storageError } from './errors.js';
import { migrate } from './migrations.js';
import { Partitions } from './partitions.js';
import * as sql from './sql.js';

/** A transaction that lost a deadlock or serialization conflict runs again, this many times in all. */
const ATTEMPTS = 4;
/** Up to this many ms of random wait before a retry, so the two sides of a conflict do not meet again. */
const RETRY_JITTER_MS = 20;

const INT8_OID = 20;

/**
 * int8 (bigint, count(*), timestamps in µs) arrives as text; every such value Tally keeps is below
 * 2^53 (timestamps to year 2200, counts summed from 31-bit values), so Number() is exact.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID ? (text: string) => Number(text) : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

interface BucketRow {
  start_us: number;
  n: number;
  sum: number;
  min: number;
  max: number;
}

/** Whether a cursor's sort value has the type the listing sorts by. */
function fitsSort(query: DeviceListQuery, value: number | string | null): boolean {
  if (query.sort.by === 'deviceId') return typeof value === 'string';
  if (query.sort.by === 'payload') return value === null || typeof value === 'number';
  return Number.isSafeInteger(value);
}

/**
 * PostgreSQL backend: any number of stateless Tally nodes on one database. Each batch is one
 * statement (see sql.APPEND), so its readings and summaries commit together and the primary key
 * (device_id, ts_us) keeps first-write-wins across nodes. Every answer is read after the commit it
 * depends on, so read-your-writes holds without anything else.
 */
export class PostgresStore implements TelemetryStore {
  readonly name = 'postgres';
  /** Every connection but one may be writing, so a read always finds one. */
  readonly maxConcurrentWrites: number;

  private closing: Promise<void> | undefined;
  private readonly partitions: Partitions;

  private constructor(
    private readonly pool: pg.Pool,
    config: PostgresStoreConfig,
  ) {
    this.maxConcurrentWrites = Math.max(1, config.poolSize - 1);
    this.partitions = new Partitions(pool);
  }

  /** Connects, and brings the schema up to date (once, whichever node gets there first). */
  static async open(config: PostgresStoreConfig): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: config.connectionString,
      max: config.poolSize,
      connectionTimeoutMillis: config.connectionTimeoutMillis,
      idleTimeoutMillis: config.idleTimeoutMillis,
      statement_timeout: config.statementTimeoutMillis,
      query_timeout: config.queryTimeoutMillis,
      application_name: 'tally',
      types,
    });
    // An idle connection the server drops (restart, pg_terminate_backend) is reported here; without
    // a listener it would crash the process. The pool discards it; the next query opens another.
    pool.on('error', () => undefined);
    try {
      await withClient(pool, migrate);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw storageError(err, 'migrating the schema');
    }
    return new PostgresStore(pool, config);
  }

  /** Runs `query`, again after a deadlock or serialization failure; errors leave as Tally's. */
  private async run<T>(doing: string, query: () => Promise<T>): Promise<T> {
    if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
    for (let attempt = 1; ; attempt++) {
      try {
        return await query();
      } catch (err) {
        if (attempt < ATTEMPTS && isRetryable(err)) {
          await sleep(1 + Math.random() * RETRY_JITTER_MS);
          continue;
        }
        throw storageError(err, doing);
      }
    }
  }

  private async rows<R extends pg.QueryResultRow>(doing: string, text: string, values: unknown[]): Promise<R[]> {
    return (await this.run(doing, () => this.pool.query<R>(text, values))).rows;
  }

  /** Runs `read` in a read-only snapshot: statements that must agree (a page and its total) see one state. */
  private snapshot<T>(doing: string, read: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.run(doing, () =>
      withClient(this.pool, async (client) => {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const result = await read(client);
        await client.query('COMMIT');
        return result;
      }),
    );
  }

  async appendBatch(readings: readonly Reading[]): Promise<Uint8Array> {
    const stored = new Uint8Array(readings.length);
    if (readings.length === 0) {
      if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
      return stored;
    }
    const { values, ts } = sql.appendParams(readings);
    const insert = async () => {
      await this.partitions.ensure(ts);
      return (await this.pool.query<{ ord: number }>(sql.APPEND, values)).rows;
    };
    const rows = await this.run('appending readings', () =>
      insert().catch((err: unknown) => {
        if (!isMissingPartition(err)) throw err;
        this.partitions.forget(); // another node dropped an old week this node knew of
        return insert();
      }),
    );
    for (const { ord } of rows) stored[ord - 1] = 1;
    return stored;
  }

  async getDevice(deviceId: string): Promise<DeviceSummary | undefined> {
    const [row] = await this.rows<sql.DeviceRow>('reading a device', sql.GET_DEVICE, [deviceId]);
    return row === undefined ? undefined : sql.toSummary(row);
  }

  async listDevices(query: DeviceListQuery): Promise<DevicePage> {
    const listing = listingOf(query);
    const after =
      query.cursor === undefined
        ? undefined
        : (decodeCursor(query.cursor, listing, ['value', 'integer']) as [number | string | null, number]);
    // PostgreSQL compares typed values: a forged position of the wrong type would be a cast error (a 500).
    if (after !== undefined && !fitsSort(query, after[0])) throw new InvalidCursorError('cursor is not one this service issued; pass next_cursor unchanged');
    const page = sql.devicePageQuery(query, after);
    type Row = sql.DeviceRow & { sort_value: number | string | null };
    const toPage = (rows: Row[], total?: number): DevicePage => {
      const last = rows.length === query.limit ? rows[rows.length - 1] : undefined;
      return {
        items: rows.map(sql.toSummary),
        nextCursor: last === undefined ? null : encodeCursor(listing, [last.sort_value, last.key]),
        ...(total === undefined ? {} : { total }),
      };
    };
    if (!query.withTotal) return toPage(await this.rows<Row>('listing devices', page.text, page.values));
    const count = sql.deviceCountQuery(query.prefix);
    return this.snapshot('listing devices', async (client) => {
      const rows = (await client.query<Row>(page.text, page.values)).rows;
      const total = (await client.query<{ total: number }>(count.text, count.values)).rows[0]!.total;
      return toPage(rows, total);
    });
  }

  async deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<ReadingPage> {
    const { from, to, listing } = historyRange(query);
    const rows = await this.rows<sql.ReadingRow>('reading history', sql.historyQuery(query.order === 'asc'), [deviceId, from, to, query.limit ?? null]);
    const items = rows.map(sql.toReading);
    const last = query.limit !== undefined && items.length === query.limit ? items[items.length - 1] : undefined;
    return { items, nextCursor: last === undefined ? null : encodeCursor(listing, [last.tsUs]) };
  }

  async listRecords(query: RecordsQuery): Promise<ReadingPage> {
    // Resumes after (timestamp, device id): the order's tiebreak, stable and unique with the timestamp.
    const listing = recordsListing(query.prefix);
    const after = query.cursor === undefined ? undefined : (decodeCursor(query.cursor, listing, ['integer', 'value']) as [number, string | number]);
    const { text, values } = sql.recordsQuery(query.limit, after && [after[0], String(after[1])], query.prefix);
    const items = (await this.rows<sql.ReadingRow>('listing records', text, values)).map(sql.toReading);
    const last = items.length === query.limit ? items[items.length - 1] : undefined;
    return { items, nextCursor: last === undefined ? null : encodeCursor(listing, [last.tsUs, last.deviceId]) };
  }

  async aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]> {
    const { text, values } = sql.aggregateQuery(deviceId, query);
    const rows = await this.rows<BucketRow>('aggregating', text, values);
    // The mean from the sum, as on every backend (avg() over integers would come back as numeric text).
    return rows.map((b) => ({ startUs: b.start_us, count: b.n, sum: b.sum, min: b.min, max: b.max, avg: b.sum / b.n }));
  }

  async deleteDevice(deviceId: string): Promise<boolean> {
    const result = await this.run('deleting a device', () => this.pool.query(sql.DELETE_DEVICE, [deviceId]));
    return (result.rowCount ?? 0) > 0;
  }

  async pruneBefore(beforeUs: number, limit: number): Promise<number> {
    return this.run('pruning', async () => {
      // Whole weeks before the bound go as one catalog change; what is left, row by row.
      const dropped = await this.partitions.dropBefore(beforeUs, limit);
      if (dropped >= limit) return dropped;
      return dropped + (await this.pool.query<{ n: number }>(sql.PRUNE, [beforeUs, limit - dropped])).rows[0]!.n;
    });
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return (await this.rows<KeyRow>('listing keys', LIST_KEYS, [])).map(toKeyRecord);
  }

  async writeKeys(change: KeyWrite): Promise<boolean> {
    const { text, values } = keyWriteQuery(change);
    const result = await this.run('changing keys', () => this.pool.query(text, values));
    return (result.rowCount ?? 0) > 0;
  }

  /** audit.ts: summaries recomputed from `readings`, page by page, and amcheck when installed. No retries: it only reads. */
  async audit(options: AuditOptions): Promise<AuditReport> {
    if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
    try {
      return await auditPostgres(this.pool, options);
    } catch (err) {
      throw storageError(err, 'auditing');
    }
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => undefined);
    return this.closing;
  }
}
