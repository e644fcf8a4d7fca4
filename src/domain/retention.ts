import { ValidationError } from './errors.js';

/**
 * How long readings are kept. Readings older than the window are refused at ingest (they would be
 * deleted at once) and pruned from storage in the background; device totals stay all-time.
 */
export class RetentionWindow {
  constructor(
    readonly windowUs: number,
    /** As configured, e.g. `30d`, for messages. */
    readonly label: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** The oldest timestamp kept right now, microseconds. */
  cutoffUs(): number {
    return this.nowMs() * 1000 - this.windowUs;
  }

  /** Throws a ValidationError naming `field` when `tsUs` is older than the window. */
  check(tsUs: number, field: string): void {
    if (tsUs < this.cutoffUs()) {
      throw new ValidationError(field, `${field} is older than the retention window (${this.label}) and would not be kept`);
    }
  }
}
