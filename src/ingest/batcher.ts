import { QueueFullError, ShuttingDownError } from '../domain/errors.js';
import type { Reading } from '../domain/reading.js';
import type { TelemetryStore } from '../store/types.js';

export interface BatcherOptions {
  /** Readings waiting or being written, at most. Beyond it `submit` throws QueueFullError. */
  readonly queueLimit: number;
  /** Readings in one transaction, at most (a single larger submission still goes whole). */
  readonly maxBatchReadings: number;
}

/** Readings a batch needs before it is sent while another is still being written. */
const MIN_EXTRA_BATCH = 1_000;

interface Submission {
  readonly readings: readonly Reading[];
  resolve(stored: Uint8Array): void;
  reject(error: unknown): void;
}

export interface BatcherStats {
  /** Readings waiting for a transaction. */
  readonly queued: number;
  /** Readings inside transactions not yet committed. */
  readonly writing: number;
  readonly queueLimit: number;
  readonly maxBatchReadings: number;
}

/**
 * Group commit. Submissions that arrive while the store is busy are gathered and written together
 * in one transaction; each submitter is answered when that transaction commits, so an answer
 * always means durable. When the store is idle a submission is written on the next turn of the
 * event loop, so a lone request never waits for a batch to fill.
 */
export class GroupCommitBatcher {
  private queue: Submission[] = [];
  private queued = 0;
  private writing = 0;
  private writesInFlight = 0;
  private flushScheduled = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly store: TelemetryStore,
    private readonly options: BatcherOptions,
  ) {}

  /**
   * Queues readings for the next transaction. Resolves after the commit with one flag per reading
   * (1 stored, 0 duplicate). Throws QueueFullError at once when the queue is full.
   */
  submit(readings: readonly Reading[]): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ShuttingDownError());
    if (readings.length === 0) return Promise.resolve(new Uint8Array(0));
    const backlog = this.queued + this.writing;
    if (backlog > 0 && backlog + readings.length > this.options.queueLimit) {
      return Promise.reject(new QueueFullError(this.options.queueLimit));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      this.queue.push({ readings, resolve, reject });
      this.queued += readings.length;
      this.scheduleFlush();
    });
  }

  stats(): BatcherStats {
    return {
      queued: this.queued,
      writing: this.writing,
      queueLimit: this.options.queueLimit,
      maxBatchReadings: this.options.maxBatchReadings,
    };
  }

  /** Readings accepted for writing and not yet committed, oldest first, at most `limit`. */
  pending(limit: number): Reading[] {
    const out: Reading[] = [];
    for (const submission of this.queue) {
      for (const reading of submission.readings) {
        if (out.length >= limit) return out;
        out.push(reading);
      }
    }
    return out;
  }

  /** Stops accepting submissions and resolves once everything already accepted is committed. */
  close(): Promise<void> {
    this.closed = true;
    if (this.queue.length === 0 && this.writesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Whether another batch may start now. The first always may; a further one (when the store takes
   * several at once) only once it is worth a commit of its own: small batches sent side by side
   * would each pay a commit that one batch a moment later would have shared.
   */
  private canStartBatch(): boolean {
    if (this.queue.length === 0) return false;
    if (this.writesInFlight === 0) return true;
    return this.writesInFlight < this.store.maxConcurrentWrites && this.queued >= MIN_EXTRA_BATCH;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || !this.canStartBatch()) return;
    this.flushScheduled = true;
    // setImmediate, not a timer: everything parsed in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      while (this.canStartBatch()) void this.writeBatch(this.takeBatch());
    });
  }

  private takeBatch(): Submission[] {
    let cut = 0;
    let size = 0;
    while (cut < this.queue.length) {
      const next = this.queue[cut]!.readings.length;
      if (cut > 0 && size + next > this.options.maxBatchReadings) break;
      size += next;
      cut++;
    }
    this.queued -= size;
    this.writing += size;
    return this.queue.splice(0, cut);
  }

  private async writeBatch(batch: Submission[]): Promise<void> {
    this.writesInFlight++;
    const readings = batch.length === 1 ? batch[0]!.readings : concat(batch);
    try {
      const stored = await this.store.appendBatch(readings);
      let offset = 0;
      for (const submission of batch) {
        submission.resolve(stored.subarray(offset, offset + submission.readings.length));
        offset += submission.readings.length;
      }
    } catch (error) {
      for (const submission of batch) submission.reject(error);
    } finally {
      this.writing -= readings.length;
      this.writesInFlight--;
      if (this.queue.length > 0) this.scheduleFlush();
      else if (this.writesInFlight === 0) this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * The submissions' readings in one array, by a plain loop: `flatMap` showed up in CPU profiles of
 * 1,000-reading batches (`npm run bench -- --scenarios batch --passes 1 --cpu-prof DIR`).
 */
function concat(batch: readonly Submission[]): Reading[] {
  let n = 0;
  for (const submission of batch) n += submission.readings.length;
  const readings = new Array<Reading>(n);
  let i = 0;
  for (const submission of batch) for (const reading of submission.readings) readings[i++] = reading;
  return readings;
}
