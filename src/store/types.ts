import type { ApiKeyRecord } from '../domain/api-key.js';
import type { Reading } from '../domain/reading.js';

/** What the store keeps about each device, maintained in the same transaction as every insert. */
export interface DeviceSummary {
  readonly deviceId: string;
  readonly firstTsUs: number;
  readonly latestTsUs: number;
  /** The latest reading's timestamp as sent, or null when it arrived as a number. */
  readonly latestTsText: string | null;
  readonly latestPayload: string | null;
  readonly readingCount: number;
  /** Sum of `count` over every reading ever stored for the device. */
  readonly cumulativeCount: number;
}

export type SortOrder = 'asc' | 'desc';

/** Columns a device listing can sort by; `payload` sorts by a numeric field of the latest payload. */
export type DeviceSort =
  | { readonly by: 'deviceId' | 'latestTs' | 'firstTs' | 'readingCount' | 'cumulativeCount' }
  | { readonly by: 'payload'; readonly fields: readonly string[] };

/**
 * A listing of devices with readings, sorted (ties broken by a stable key), paginated either by
 * `cursor` (keyset: no offset scan, stable while new devices arrive) or by `offset`.
 */
export interface DeviceListQuery {
  readonly sort: DeviceSort;
  readonly order: SortOrder;
  readonly limit: number;
  /** `nextCursor` of the previous page, unchanged. The store rejects one it did not issue for this listing. */
  readonly cursor?: string;
  /** Devices to skip instead of a cursor (the Vital data surface's pages). */
  readonly offset?: number;
  /** Only devices whose id starts with this. */
  readonly prefix?: string;
  /** Also count every device the listing covers (a second query; only when asked). */
  readonly withTotal?: boolean;
}

export interface DevicePage {
  readonly items: DeviceSummary[];
  /** Opaque; null on the last page. */
  readonly nextCursor: string | null;
  /** With `withTotal`: how many devices the listing covers in all. */
  readonly total?: number;
}

export interface DeviceReadingsQuery {
  /** Inclusive lower bound, microseconds. */
  readonly fromUs?: number;
  /** Exclusive upper bound, microseconds. */
  readonly toUs?: number;
  readonly order: SortOrder;
  /** At most this many; omit for all (callers bound the request by other means). */
  readonly limit?: number;
  /** `nextCursor` of the previous page, unchanged. */
  readonly cursor?: string;
}

export interface RecordsQuery {
  readonly limit: number;
  /** `nextCursor` of the previous page, unchanged. */
  readonly cursor?: string;
  /** Only readings of devices whose id starts with this. */
  readonly prefix?: string;
}

/** A page of readings; `nextCursor` continues it (null when the page was not full). */
export interface ReadingPage {
  readonly items: Reading[];
  readonly nextCursor: string | null;
}

export type AggregateFn = 'count' | 'sum' | 'min' | 'max' | 'avg';

export interface AggregateQuery {
  readonly fromUs: number;
  /** Exclusive. */
  readonly toUs: number;
  /** Bucket width; buckets are aligned to the Unix epoch. */
  readonly everyUs: number;
  /** The reading's `count`, or a numeric field of its payload. */
  readonly field: { readonly kind: 'count' } | { readonly kind: 'payload'; readonly name: string };
}

/** One non-empty bucket: every function is computed; callers keep the ones asked for. */
export interface AggregateBucket {
  readonly startUs: number;
  readonly count: number;
  readonly sum: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly avg: number | null;
}

/** A change to the API keys: a new key, a revocation by name, or when keys were last used. */
export type KeyWrite =
  | { readonly kind: 'create'; readonly record: ApiKeyRecord }
  | { readonly kind: 'revoke'; readonly name: string; readonly nowUs: number }
  /** Key id and the time it was last used, microseconds; only later times are kept. */
  | { readonly kind: 'touch'; readonly used: ReadonlyArray<readonly [string, number]> };

/**
 * API keys, kept in the same store as the readings so that every node sharing the store shares
 * them (and a revocation made on one is seen by all).
 */
export interface KeyStore {
  /** Every key, revoked ones included, oldest first. */
  listKeys(): Promise<ApiKeyRecord[]>;
  /**
   * Applies a change; resolves whether it changed anything: false when `create` meets a name an
   * active key already has, or `revoke` a name no active key has.
   */
  writeKeys(change: KeyWrite): Promise<boolean>;
}

/** What `audit` checks beyond the summaries and the readings: the backend's own check, quick or full. */
export interface AuditOptions {
  /** SQLite: PRAGMA integrity_check instead of quick_check; PostgreSQL: amcheck with heapallindexed. */
  readonly full: boolean;
}

/** One thing the audit found wrong. `deviceId` is null for what belongs to no device (the store's own check). */
export interface AuditMismatch {
  readonly deviceId: string | null;
  /** What differs, e.g. `reading_count is 7, its readings number 5`. Never a payload's content. */
  readonly problem: string;
}

/** What an audit found, and what it covered. */
export interface AuditReport {
  readonly devices: number;
  readonly readings: number;
  /** The first mismatches found (at most MAX_REPORTED_MISMATCHES), in device order. */
  readonly mismatches: AuditMismatch[];
  /** Every mismatch found, listed or not. */
  readonly mismatchCount: number;
  /** Devices whose summaries predate tracking of pruned readings: counts checked as bounds only. */
  readonly boundsOnly: number;
  /** The backend's own check and its answer, e.g. `quick_check: ok`. */
  readonly storeCheck: string;
  readonly durationMs: number;
}

/** Where a backup went and what it holds. */
export interface BackupResult {
  readonly file: string;
  readonly bytes: number;
  readonly durationMs: number;
}

/**
 * The storage contract. Every backend speaks domain types only; no driver type leaks out, and no
 * error names a parameter of any API (a bad cursor is an InvalidCursorError).
 *
 * Read-your-writes: once `appendBatch` has resolved, every read on this store (any method, any
 * caller) sees those readings, whatever the backend does in the background (SQLite's compaction of
 * its journal, for instance).
 */
export interface TelemetryStore extends KeyStore {
  /** Backend name, for logs and metrics. */
  readonly name: string;
  /**
   * How many `appendBatch` calls the pipeline may have in flight at once; it honours this once
   * rather than each caller working around it. SQLite commits one at a time but takes 2, so the
   * next batch is on its way while one commits.
   */
  readonly maxConcurrentWrites: number;

  /**
   * Appends readings in one transaction. Resolves after the commit with one flag per input reading,
   * in order: 1 stored, 0 a duplicate of an existing (deviceId, tsUs), or of an earlier reading of
   * the same batch (first write wins, in batch order). Rejects with StorageUnavailableError when
   * nothing was committed.
   */
  appendBatch(readings: readonly Reading[]): Promise<Uint8Array>;

  /** The device's summary, or undefined for a device with no readings. */
  getDevice(deviceId: string): Promise<DeviceSummary | undefined>;

  /** The latest state of devices, sorted and paginated (see DeviceListQuery). */
  listDevices(query: DeviceListQuery): Promise<DevicePage>;

  /** One device's readings in a time range, in timestamp order; unknown devices have none. */
  deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<ReadingPage>;

  /** All readings, newest timestamp first (ties in a stable order), continuing after `cursor`. */
  listRecords(query: RecordsQuery): Promise<ReadingPage>;

  /** Epoch-aligned buckets of one device's readings; empty buckets are omitted. */
  aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]>;

  /** Removes a device and all its readings. Resolves whether it existed. */
  deleteDevice(deviceId: string): Promise<boolean>;

  /**
   * Deletes up to `limit` readings with a timestamp before `beforeUs` in one short transaction;
   * resolves how many went. Device summaries (counts, totals) are left as they are: all-time.
   */
  pruneBefore(beforeUs: number, limit: number): Promise<number>;

  /**
   * Optional. Checks cheaply, without writing, that a write could start now (for readiness):
   * resolves when it could, rejects with StorageUnavailableError saying why not. Waits at most
   * about `waitMs` for a lock held by someone else.
   */
  probe?(waitMs: number): Promise<void>;

  /** Optional. Bytes the store takes on disk now (SQLite: the file and its WAL). */
  diskBytes?(): Promise<number>;

  /**
   * Optional. Recomputes every device summary from the stored readings, checks that every stored
   * reading decodes, and runs the backend's own consistency check; never writes, and runs beside
   * ingest (in pieces, so no one snapshot is held for the whole run).
   */
  audit?(options: AuditOptions): Promise<AuditReport>;

  /**
   * Optional (SQLite). Writes a consistent copy of the store to `file` while ingest continues, checks
   * the copy, and only then gives it that name; refuses an existing `file` unless `overwrite`.
   */
  backup?(file: string, options?: { readonly overwrite?: boolean }): Promise<BackupResult>;

  /** Commits nothing further and releases every resource. Safe to call twice. */
  close(): Promise<void>;
}
