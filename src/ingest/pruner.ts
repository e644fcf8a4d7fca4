import type { RetentionWindow } from '../domain/retention.js';
import type { TelemetryStore } from '../store/types.js';

export interface PrunerOptions {
  /** Time between sweeps. */
  readonly intervalMs: number;
  /** Readings deleted per transaction: small, so ingest never waits long behind a delete. */
  readonly batchLimit: number;
  readonly onError: (error: unknown) => void;
}

/** Deletes readings that fell out of the retention window, in small transactions, in the background. */
export class RetentionPruner {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly store: TelemetryStore,
    private readonly window: RetentionWindow,
    private readonly options: PrunerOptions,
  ) {}

  start(): void {
    const tick = () => {
      void this.sweep()
        .catch(this.options.onError)
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  /** One full pass: deletes batch after batch until nothing older than the window is left. */
  sweep(): Promise<number> {
    this.sweeping ??= (async () => {
      let total = 0;
      for (;;) {
        const deleted = await this.store.pruneBefore(this.window.cutoffUs(), this.options.batchLimit);
        total += deleted;
        if (deleted < this.options.batchLimit || this.stopped) return total;
        // Let queued ingest transactions go between delete batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** Stops scheduling sweeps and waits for a running one to finish its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.sweeping?.catch(() => undefined);
  }
}
