import { ValidationError } from '../domain/errors.js';
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

/** An item refused by the domain's rules, named by its index in the write and by field. */
export interface Rejection {
  readonly index: number;
  readonly error: ValidationError;
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
}

export interface PipelineOptions {
  /** When set, readings older than the window are refused: they would be deleted at once. */
  readonly retention?: RetentionWindow;
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
    for (let i = 0; i < items.length; i++) {
      try {
        const reading = reader.read(items[i], i);
        if (reading.tsUs < cutoffUs) this.options.retention!.check(reading.tsUs, fieldName(shape, i, shape.ts));
        indexOf?.push(i);
        readings.push(reading);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        status[i] = ItemStatus.Rejected;
        rejections.push({ index: i, error });
        indexOf ??= Array.from({ length: readings.length }, (_, k) => k);
        if (options.firstErrorOnly) break;
      }
    }
    if ((rejections.length > 0 && options.atomic) || options.checkOnly) {
      for (let i = 0; i < status.length; i++) if (status[i] !== ItemStatus.Rejected) status[i] = ItemStatus.NotWritten;
      return { status, stored: 0, duplicates: 0, rejections };
    }
    const flags = await this.batcher.submit(readings);
    let stored = 0;
    for (let k = 0; k < flags.length; k++) {
      // The batcher's flags are 1 stored, 0 duplicate: the same values as ItemStatus.
      status[indexOf === undefined ? k : indexOf[k]!] = flags[k]!;
      stored += flags[k]!;
    }
    return { status, stored, duplicates: readings.length - stored, rejections };
  }
}
