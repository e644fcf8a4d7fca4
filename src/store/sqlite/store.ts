import { mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ApiKeyRecord } from '../../domain/api-key.js';
import { StorageUnavailableError } from '../../domain/errors.js';
import type { Reading } from '../../domain/reading.js';
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
  KeyWrite,
  ReadingPage,
  RecordsQuery,
  TelemetryStore,
} from '../types.js';
import { toColumns, transferList } from './columns.js';
import { DEFAULT_READERS, type SqliteStoreConfig } from './config.js';
import type { WriterSettings } from './protocol.js';
import { ReaderPool } from './reader-pool.js';
import type { ReadOp, ReadResult } from './reader-protocol.js';
import type { SqliteReads } from './reads.js';
import { WriterClient } from './writer-client.js';

/**
 * SQLite backend. One writer thread owns all writes (group-committed batches arrive from the
 * ingest pipeline); reads run on reader threads, each with its own connection, after making sure
 * they see every acknowledged batch (read-your-writes, as the contract promises). Nothing but
 * messages runs on the caller's thread, so no query holds up the event loop that parses requests.
 */
export class SqliteStore implements TelemetryStore {
  readonly name = 'sqlite';
  /**
   * SQLite has one writer, but two batches in flight keep it busy: the next batch is on its way
   * while one commits, instead of the writer waiting for the main thread between commits. The
   * writer takes them in the order sent.
   */
  readonly maxConcurrentWrites = 2;

  private closing: Promise<void> | undefined;
  /** Reader threads running an audit or a backup, ended at close rather than waited for. */
  private readonly jobs = new Set<ReaderPool>();

  private constructor(
    private readonly file: string,
    private readonly writer: WriterClient,
    private readonly reads: ReaderPool,
  ) {}

  /** Opens (creating its directory, the file, and migrating when needed) the database at `config.file`. */
  static async open(config: SqliteStoreConfig): Promise<SqliteStore> {
    mkdirSync(dirname(config.file), { recursive: true });
    const writer = new WriterClient(Object.freeze({ ...config }));
    await writer.start(); // the writer creates and migrates the file before anyone reads it
    const readers = new ReaderPool(config.file, config.readers ?? DEFAULT_READERS);
    try {
      await readers.start();
    } catch (err) {
      await writer.close();
      throw err;
    }
    return new SqliteStore(config.file, writer, readers);
  }

  async appendBatch(readings: readonly Reading[]): Promise<Uint8Array> {
    const columns = toColumns(readings);
    const { stored, seq } = await this.writer.call({ op: 'append', columns }, transferList(columns));
    this.writer.acknowledged(seq);
    return stored;
  }

  async deleteDevice(deviceId: string): Promise<boolean> {
    return (await this.writer.call({ op: 'deleteDevice', deviceId })).existed;
  }

  async pruneBefore(beforeUs: number, limit: number): Promise<number> {
    return (await this.writer.call({ op: 'prune', beforeUs, limit })).deleted;
  }

  async getDevice(deviceId: string): Promise<DeviceSummary | undefined> {
    return this.read('getDevice', deviceId);
  }

  async listDevices(query: DeviceListQuery): Promise<DevicePage> {
    return this.read('listDevices', query);
  }

  async deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<ReadingPage> {
    return this.read('deviceReadings', deviceId, query);
  }

  async aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]> {
    return this.read('aggregate', deviceId, query);
  }

  async listRecords(query: RecordsQuery): Promise<ReadingPage> {
    return this.read('listRecords', query.limit, query.cursor, query.prefix);
  }

  /**
   * A query that sees every acknowledged reading (read-your-writes). Readers see readings once the
   * writer has compacted them, and ask it to first; when it cannot (a full disk, a failing writer),
   * the query reads the journal's readings too, so reads answer while writes cannot.
   */
  private async read<Op extends ReadOp>(op: Op, ...args: Parameters<SqliteReads[Op]>): Promise<ReadResult<Op>> {
    try {
      await this.writer.visible();
    } catch (err) {
      if (!(err instanceof StorageUnavailableError) || this.closing !== undefined) throw err;
      return this.reads.callWithJournal(op, ...args);
    }
    return this.reads.call(op, ...args);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.reads.call('listKeys');
  }

  async writeKeys(change: KeyWrite): Promise<boolean> {
    return (await this.writer.call({ op: 'keys', change })).changed;
  }

  async probe(waitMs: number): Promise<void> {
    await this.writer.call({ op: 'probe', waitMs });
  }

  async diskBytes(): Promise<number> {
    const sizes = await Promise.all(
      [this.file, `${this.file}-wal`].map((f) => stat(f).then((s) => s.size, () => 0)),
    );
    return sizes[0]! + sizes[1]!;
  }

  /**
   * Runs on a reader thread of its own, started for the job: the two readers go on answering
   * queries, and the writer (ingest) is never involved. The audit reads what is compacted; readings
   * still in the journal are in no summary yet, and are checked as journal entries.
   */
  async audit(options: AuditOptions): Promise<AuditReport> {
    await this.writer.visible(); // every reading acknowledged so far is in chunks and summaries: all of them are checked
    return this.job((pool) => pool.call('audit', options));
  }

  /** VACUUM INTO a checked copy (backup.ts), on a reader thread of its own, while ingest goes on. */
  backup(file: string, options: { readonly overwrite?: boolean } = {}): Promise<BackupResult> {
    return this.job((pool) => pool.call('backup', file, options.overwrite ?? false));
  }

  private async job<T>(run: (pool: ReaderPool) => Promise<T>): Promise<T> {
    if (this.closing !== undefined) throw new StorageUnavailableError('the store is closed');
    const pool = new ReaderPool(this.file, 1);
    this.jobs.add(pool);
    try {
      await pool.start();
      return await run(pool);
    } finally {
      this.jobs.delete(pool);
      await pool.close();
    }
  }

  /** The durability settings the writer thread's connection runs with, read back from SQLite. */
  settings(): Promise<WriterSettings> {
    return this.writer.call({ op: 'settings' });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Readers first: the last connection to close checkpoints the WAL into the file and removes
      // it, and only the writer can (the readers are query-only), so it must be the last.
      // A job of hours must not hold a shutdown: it is ended, and a backup's partial copy is only a temporary file.
      await Promise.all([...this.jobs].map((job) => job.terminate()));
      await this.reads.close();
      await this.writer.close();
    })();
    return this.closing;
  }
}
