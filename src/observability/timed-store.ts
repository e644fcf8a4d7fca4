import type { ApiKeyRecord } from '../domain/api-key.js';
import type { Reading } from '../domain/reading.js';
import type {
  AggregateBucket,
  AggregateQuery,
  DeviceListQuery,
  DevicePage,
  DeviceReadingsQuery,
  DeviceSummary,
  KeyWrite,
  ReadingPage,
  RecordsQuery,
  TelemetryStore,
} from '../store/types.js';

/** The store operations that are timed: every member of the contract that does I/O. */
export const STORE_OPS = [
  'appendBatch',
  'getDevice',
  'listDevices',
  'deviceReadings',
  'listRecords',
  'aggregate',
  'deleteDevice',
  'pruneBefore',
  'probe',
] as const;
export type StoreOp = (typeof STORE_OPS)[number];

/** One finished store operation. `rows`: readings appended, or items a read returned. */
export interface StoreEvent {
  readonly op: StoreOp;
  readonly backend: string;
  readonly durationMs: number;
  readonly rows: number;
  /** Present when the operation failed. */
  readonly error?: unknown;
}

export interface StoreListener {
  /** Called once per operation when it settles. Must not throw. */
  onStoreEvent(event: StoreEvent): void;
  /** Reads started and not yet settled changed by `delta` (+1, -1). */
  onReadsInFlight?(delta: number): void;
}

/**
 * Wraps any TelemetryStore once, timing every operation and reporting it as a StoreEvent: the
 * metrics module turns those into histograms, so no backend imports a metrics library. Everything
 * else passes through unchanged.
 */
export class TimedStore implements TelemetryStore {
  readonly name: string;
  readonly maxConcurrentWrites: number;
  readonly probe?: (waitMs: number) => Promise<void>;
  readonly diskBytes?: () => Promise<number>;
  /** Audits and backups are reported by the maintenance metrics, not as store operations. */
  readonly audit?: TelemetryStore['audit'];
  readonly backup?: TelemetryStore['backup'];

  constructor(
    readonly inner: TelemetryStore,
    private readonly listener: StoreListener,
  ) {
    this.name = inner.name;
    this.maxConcurrentWrites = inner.maxConcurrentWrites;
    if (inner.probe !== undefined) this.probe = (waitMs) => this.timed('probe', () => inner.probe!(waitMs), zero);
    if (inner.diskBytes !== undefined) this.diskBytes = () => inner.diskBytes!();
    if (inner.audit !== undefined) this.audit = (options) => inner.audit!(options);
    if (inner.backup !== undefined) this.backup = (file, options) => inner.backup!(file, options);
  }

  /** Keys are read every half second and written rarely: passed through, not timed. */
  listKeys(): Promise<ApiKeyRecord[]> {
    return this.inner.listKeys();
  }

  writeKeys(change: KeyWrite): Promise<boolean> {
    return this.inner.writeKeys(change);
  }

  private async timed<T>(op: StoreOp, run: () => Promise<T>, rows: (result: T) => number): Promise<T> {
    const start = performance.now();
    try {
      const result = await run();
      this.listener.onStoreEvent({ op, backend: this.name, durationMs: performance.now() - start, rows: rows(result) });
      return result;
    } catch (error) {
      this.listener.onStoreEvent({ op, backend: this.name, durationMs: performance.now() - start, rows: 0, error });
      throw error;
    }
  }

  private async read<T>(op: StoreOp, run: () => Promise<T>, rows: (result: T) => number): Promise<T> {
    this.listener.onReadsInFlight?.(1);
    try {
      return await this.timed(op, run, rows);
    } finally {
      this.listener.onReadsInFlight?.(-1);
    }
  }

  appendBatch(readings: readonly Reading[]): Promise<Uint8Array> {
    return this.timed('appendBatch', () => this.inner.appendBatch(readings), () => readings.length);
  }

  getDevice(deviceId: string): Promise<DeviceSummary | undefined> {
    return this.read('getDevice', () => this.inner.getDevice(deviceId), (d) => (d === undefined ? 0 : 1));
  }

  listDevices(query: DeviceListQuery): Promise<DevicePage> {
    return this.read('listDevices', () => this.inner.listDevices(query), (p) => p.items.length);
  }

  deviceReadings(deviceId: string, query: DeviceReadingsQuery): Promise<ReadingPage> {
    return this.read('deviceReadings', () => this.inner.deviceReadings(deviceId, query), (p) => p.items.length);
  }

  listRecords(query: RecordsQuery): Promise<ReadingPage> {
    return this.read('listRecords', () => this.inner.listRecords(query), (p) => p.items.length);
  }

  aggregate(deviceId: string, query: AggregateQuery): Promise<AggregateBucket[]> {
    return this.read('aggregate', () => this.inner.aggregate(deviceId, query), (b) => b.length);
  }

  deleteDevice(deviceId: string): Promise<boolean> {
    return this.timed('deleteDevice', () => this.inner.deleteDevice(deviceId), (existed) => (existed ? 1 : 0));
  }

  pruneBefore(beforeUs: number, limit: number): Promise<number> {
    return this.timed('pruneBefore', () => this.inner.pruneBefore(beforeUs, limit), (n) => n);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const zero = () => 0;
