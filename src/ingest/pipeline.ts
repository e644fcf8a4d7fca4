import { DeviceRateLimitedError, ForbiddenDeviceError, QueueFullError, ValidationError } from '../domain/errors.js';
import type { RateLimiter } from '../domain/rate-limit.js';
import type { Reading } from '../domain/reading.js';
import type { RetentionWindow } from '../domain/retention.js';
import type { GroupCommitBatcher } from './batcher.js';
import { CandidateReader } from './candidate.js';
import { fieldName, type ReadingShape } from './shape.js';

/** What became of each item of a write, by index. */
export const ItemStatus = {
  Duplicate: 0,
  Stored: 1,
  Rejected: 2,
  /** Valid, but not written: an atomic write with a rejected item writes nothing. */
  NotWritten: 3,
} as const;

/** Why an item was refused: the domain's rules (a 400), its key's devices (a 403), its device's rate (a 429). */
export type RejectionError = ValidationError | ForbiddenDeviceError | DeviceRateLimitedError;

/** An item refused, named by its index in the write and by field. */
export interface Rejection {
  readonly index: number;
  readonly error: RejectionError;
}

/** The HTTP status a rejected item reports where a surface answers per item. */
export function rejectionStatus(error: RejectionError): 400 | 403 | 429 {
  return error instanceof ForbiddenDeviceError ? 403 : error instanceof DeviceRateLimitedError ? 429 : 400;
}

export interface IngestOutcome {
  /** One ItemStatus per item, in order. */
  readonly status: Uint8Array;
  readonly stored: number;
  readonly duplicates: number;
  /** Every rejected item, in index order. */
  readonly rejections: readonly Rejection[];
}

export interface WriteOptions {
  /** Write nothing when any item is rejected (all-or-nothing surfaces, `?atomic=true`). */
  readonly atomic?: boolean;
  /** With `atomic`: stop checking at the first rejection (a surface that reports one error). */
  readonly firstErrorOnly?: boolean;
  /** Check and report, write nothing (the caller already knows the request failed as a whole). */
  readonly checkOnly?: boolean;
  /** Where the write came from, for the counters (metrics); writes without one are not counted. */
  readonly surface?: IngestSurface;
  /** Only readings of devices whose id starts with this are taken (a device-bound key's writes). */
  readonly devicePrefix?: string;
}

/** Every API surface and MQTT topic kind that writes: a closed set, so a metric label never grows. */
export const INGEST_SURFACES = ['v1', 'bright_counter', 'device_readings', 'records', 'vital_data', 'line_protocol', 'mqtt_device', 'mqtt_gateway'] as const;
export type IngestSurface = (typeof INGEST_SURFACES)[number];

/**
 * What became of readings, as counted: stored, duplicate, or one of the reasons a reading was not
 * stored. `atomic`: valid (or not checked) but not written because another item of an
 * all-or-nothing write was rejected. `queue_full`, `unavailable`: every reading of a write the
 * batcher or the store refused (QueueFullError; StorageUnavailableError or ShuttingDownError).
 */
export const INGEST_RESULTS = ['stored', 'duplicate', 'invalid', 'forbidden', 'rate_limited', 'retention', 'atomic', 'queue_full', 'unavailable'] as const;
export type IngestResult = (typeof INGEST_RESULTS)[number];

/**
 * Told what became of each write, once per write and result (never per reading), by the pipeline.
 * Implemented by the metrics module; the pipeline knows nothing of Prometheus.
 */
export interface IngestObserver {
  count(surface: IngestSurface, result: IngestResult, readings: number): void;
}

export interface PipelineOptions {
  /** When set, readings older than the window are refused: they would be deleted at once. */
  readonly retention?: RetentionWindow;
  /** Told the counts of every write that names its surface. */
  readonly observer?: IngestObserver;
  /** Readings per device (TALLY_RATE_DEVICE), whatever transport they came by; absent, no limit. */
  readonly deviceRate?: RateLimiter;
}

/**
 * The one way readings enter Tally, whatever the transport: items in a transport's shape are checked
 * against the domain's rules and the retention window, the valid ones are group-committed, and the
 * caller learns per item whether it was stored, a duplicate, or rejected (and why). Resolves only
 * after the commit: an answer built from the outcome is an acknowledgement of durable readings.
 * Rejects with QueueFullError, StorageUnavailableError or ShuttingDownError, and then nothing from
 * this write was acknowledged.
 */
export class IngestPipeline {
  constructor(
    private readonly batcher: GroupCommitBatcher,
    private readonly options: PipelineOptions = {},
  ) {}

  async write(items: readonly unknown[], shape: ReadingShape, options: WriteOptions = {}): Promise<IngestOutcome> {
    const status = new Uint8Array(items.length);
    const rejections: Rejection[] = [];
    const readings: Reading[] = [];
    // Index of each valid reading's item; filled only once an item is rejected (until then, equal).
    let indexOf: number[] | undefined;
    const reader = new CandidateReader(shape);
    const cutoffUs = this.options.retention?.cutoffUs() ?? -Infinity;
    let tooOld = false;
    let tooOldCount = 0;
    let forbiddenCount = 0;
    let limitedCount = 0;
    const prefix = options.devicePrefix;
    const deviceRate = this.options.deviceRate;
    for (let i = 0; i < items.length; i++) {
      try {
        const reading = reader.read(items[i], i);
        if (prefix !== undefined && !reading.deviceId.startsWith(prefix)) {
          forbiddenCount++;
          const field = 'property' in shape.deviceId ? fieldName(shape, i, shape.deviceId.property) : 'device id';
          throw new ForbiddenDeviceError(field, reading.deviceId, prefix);
        }
        if (deviceRate !== undefined) {
          const decision = deviceRate.take(reading.deviceId);
          if (!decision.allowed) {
            limitedCount++;
            const field = 'property' in shape.deviceId ? fieldName(shape, i, shape.deviceId.property) : 'device id';
            throw new DeviceRateLimitedError(field, reading.deviceId, decision.retryAfterSeconds);
          }
        }
        if (reading.tsUs < cutoffUs) {
          tooOld = true;
          this.options.retention!.check(reading.tsUs, fieldName(shape, i, shape.ts));
          tooOld = false;
        }
        indexOf?.push(i);
        readings.push(reading);
      } catch (error) {
        if (!(error instanceof ValidationError || error instanceof ForbiddenDeviceError || error instanceof DeviceRateLimitedError)) throw error;
        if (tooOld) {
          tooOldCount++;
          tooOld = false;
        }
        status[i] = ItemStatus.Rejected;
        rejections.push({ index: i, error });
        indexOf ??= Array.from({ length: readings.length }, (_, k) => k);
        if (options.firstErrorOnly) break;
      }
    }
    const observer = options.surface === undefined ? undefined : this.options.observer;
    if (observer !== undefined && rejections.length > 0) {
      const surface = options.surface!;
      const invalid = rejections.length - tooOldCount - forbiddenCount - limitedCount;
      if (invalid > 0) observer.count(surface, 'invalid', invalid);
      if (forbiddenCount > 0) observer.count(surface, 'forbidden', forbiddenCount);
      if (limitedCount > 0) observer.count(surface, 'rate_limited', limitedCount);
      if (tooOldCount > 0) observer.count(surface, 'retention', tooOldCount);
    }
    if ((rejections.length > 0 && options.atomic) || options.checkOnly) {
      for (let i = 0; i < status.length; i++) if (status[i] !== ItemStatus.Rejected) status[i] = ItemStatus.NotWritten;
      if (observer !== undefined && items.length > rejections.length) observer.count(options.surface!, 'atomic', items.length - rejections.length);
      return { status, stored: 0, duplicates: 0, rejections };
    }
    let flags: Uint8Array;
    try {
      flags = await this.batcher.submit(readings);
    } catch (error) {
      if (observer !== undefined && readings.length > 0) {
        observer.count(options.surface!, error instanceof QueueFullError ? 'queue_full' : 'unavailable', readings.length);
      }
      throw error;
    }
    let stored = 0;
    for (let k = 0; k < flags.length; k++) {
      // The batcher's flags are 1 stored, 0 duplicate: the same values as ItemStatus.
      status[indexOf === undefined ? k : indexOf[k]!] = flags[k]!;
      stored += flags[k]!;
    }
    if (observer !== undefined) {
      if (stored > 0) observer.count(options.surface!, 'stored', stored);
      if (readings.length > stored) observer.count(options.surface!, 'duplicate', readings.length - stored);
    }
    return { status, stored, duplicates: readings.length - stored, rejections };
  }

  /**
   * Counts items of a write refused before they could reach `write` (an NDJSON line that is not
   * JSON): once per request, so the counters cover every item a client sent.
   */
  refused(surface: IngestSurface, items: number): void {
    if (items > 0) this.options.observer?.count(surface, 'invalid', items);
  }
}
