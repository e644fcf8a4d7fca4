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

/** A stored reading, with what places it among readings of the same instant (for cursors). */
export interface StoredReading extends Reading {
  /** Orders readings that share a timestamp: `(tsUs, seq)` is unique across the store. */
  readonly seq: number;
}

export type SortOrder = 'asc' | 'desc';

/** Columns a device listing can sort by; `payload` sorts by a numeric field of the latest payload. */
export type DeviceSort =
  | { readonly by: 'deviceId' | 'latestTs' | 'firstTs' | 'readingCount' | 'cumulativeCount' }
  | { readonly by: 'payload'; readonly fields: readonly string[] };

export interface DeviceListQuery {
  readonly sort: DeviceSort;
  readonly order: SortOrder;
  readonly limit: number;
  readonly offset: number;
}

export interface DeviceReadingsQuery {
  /** Inclusive lower bound, microseconds. */
  readonly fromUs?: number;
  /** Exclusive upper bound, microseconds. */
  readonly toUs?: number;
  readonly order: SortOrder;
  /** At most this many; omit for all (callers bound the request by other means). */
  readonly limit?: number;
  /** Continue after this timestamp (exclusive, in `order`): keyset pagination. */
  readonly afterTsUs?: number;
}

export interface DevicePageQuery {
  readonly sort: DeviceSort;
  readonly order: SortOrder;
  readonly limit: number;
  /** `nextCursor` of the previous page, unchanged. The store rejects one it did not issue. */
  readonly cursor?: string;
  /** Only devices whose id starts with this. */
  readonly prefix?: string;
}

export interface DevicePage {
  readonly items: DeviceSummary[];
  /** Opaque; null on the last page. */
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

/** Position after which a newest-first listing of all readings continues. */
export interface RecordCursor {
  readonly tsUs: number;
  readonly seq: number;
}

/**
 * The storage contract. Every backend speaks domain types only; no driver type leaks out.
 * Writes go through `appendBatch`, which the ingest pipeline calls with group-committed batches.
 */
export interface TelemetryStore {
  /** Backend name, for logs and metrics. */
  readonly name: string;
  /**
   * How many `appendBatch` calls may run at once. SQLite has one writer, so 1; the pipeline honours
   * this once rather than each caller working around it.
   */
  readonly maxConcurrentWrites: number;

  /**
   * Appends readings in one transaction. Resolves after the commit with one flag per input reading,
   * in order: 1 stored, 0 a duplicate of an existing (deviceId, tsUs) (first write wins).
   * Rejects with StorageUnavailableError when nothing was committed.
   */
  appendBatch(readings: readonly Reading[]): Promise<Uint8Array>;

  /** The device's summary, or undefined for a device with no readings. */
  getDevice(deviceId: string): Promise<DeviceSummary | undefined>;

  /** The latest state of devices, sorted and paginated, with the total number of devices. */
  listDevices(query: DeviceListQuery): Promise<{ total: number; items: DeviceSummary[] }>;

  /** One device's readings in a time range. */
  deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<StoredReading[]>;

  /** All readings, newest timestamp first, continuing after `after` when given. */
  listRecords(limit: number, after?: RecordCursor): Promise<StoredReading[]>;

  /** Devices sorted and keyset-paginated: no offset scans, stable while new devices arrive. */
  listDevicePage(query: DevicePageQuery): Promise<DevicePage>;

  /** Epoch-aligned buckets of one device's readings; empty buckets are omitted. */
  aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]>;

  /** Removes a device and all its readings. Resolves whether it existed. */
  deleteDevice(deviceId: string): Promise<boolean>;

  /**
   * Deletes up to `limit` readings with a timestamp before `beforeUs` in one short transaction;
   * resolves how many went. Device summaries (counts, totals) are left as they are: all-time.
   */
  pruneBefore(beforeUs: number, limit: number): Promise<number>;

  /** Commits nothing further and releases every resource. Safe to call twice. */
  close(): Promise<void>;
}
