import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { auditSummary } from '../observability/audit-report.js';
import type { TallyMetrics } from '../observability/metrics.js';
import type { AuditReport, BackupResult, TelemetryStore } from '../store/types.js';
import type { Config } from './config.js';

/** Mismatches a log line lists; the rest are counted (tally audit lists them all). */
const LOGGED_MISMATCHES = 20;

/** A scheduled backup's name: its UTC time to the millisecond, so names sort in time order. */
const BACKUP_NAME = /^tally-\d{8}T\d{9}Z\.db$/;
export const backupName = (at: Date): string => `tally-${at.toISOString().replace(/[-:.]/g, '')}.db`;
/** A copy in progress (backup.ts names them so); one left by a crash is deleted at the next backup. */
const TEMPORARY = /^\.tally-.*\.tmp$/;

/**
 * The server's scheduled audit (TALLY_AUDIT_EVERY) and backups (TALLY_BACKUP_EVERY): each on its
 * own timer, run one at a time (an audit and a backup together would each take a reader's worth of
 * disk), each in the store's own thread so neither the event loop nor ingest waits on them. The
 * result goes to the metrics and to one log line.
 */
export class Maintenance {
  private readonly timers: NodeJS.Timeout[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly store: TelemetryStore,
    private readonly metrics: TallyMetrics,
    private readonly log: FastifyBaseLogger,
    private readonly plan: Pick<Config, 'audit' | 'backups'>,
  ) {}

  start(): void {
    if (this.plan.audit !== undefined) this.every(this.plan.audit.everyMs, () => this.audit());
    if (this.plan.backups !== undefined) this.every(this.plan.backups.everyMs, () => this.backup());
  }

  /** Runs `job` every `ms`, the next wait starting when a run ends (runs never pile up). */
  private every(ms: number, job: () => Promise<unknown>): void {
    const slot = this.timers.length;
    const tick = () => {
      void job()
        .catch(() => undefined) // reported by the job itself
        .finally(() => {
          if (!this.stopped) this.timers[slot] = setTimeout(tick, ms).unref();
        });
    };
    this.timers.push(setTimeout(tick, ms).unref());
  }

  /** One job after the other. */
  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One audit now (as scheduled); resolves with its report, having logged it and set the metrics. */
  audit(): Promise<AuditReport> {
    return this.serial(async () => {
      try {
        const report = await this.store.audit!({ full: false });
        this.metrics.auditFinished({ report });
        const audit = { devices: report.devices, readings: report.readings, durationMs: Math.round(report.durationMs), storeCheck: report.storeCheck };
        if (report.mismatchCount === 0) this.log.info({ audit }, `audit: ${auditSummary(report)}`);
        else {
          const mismatches = report.mismatches.slice(0, LOGGED_MISMATCHES);
          this.log.error({ audit: { ...audit, mismatchCount: report.mismatchCount, mismatches } }, `audit: ${auditSummary(report)}; run tally audit for the full list`);
        }
        return report;
      } catch (err) {
        if (this.stopped) this.log.warn('audit abandoned: Tally is shutting down');
        else {
          this.metrics.auditFinished({ error: err });
          this.log.error({ err }, 'audit failed');
        }
        throw err;
      }
    });
  }

  /** One backup now (as scheduled): a new timestamped file, then the oldest beyond TALLY_BACKUP_KEEP deleted. */
  backup(): Promise<BackupResult> {
    const { dir, keep } = this.plan.backups!;
    return this.serial(async () => {
      try {
        removeTemporaries(dir);
        const result = await this.store.backup!(join(dir, backupName(new Date())));
        const removed = rotate(dir, keep);
        this.metrics.backupFinished({ result });
        this.log.info({ backup: { file: result.file, bytes: result.bytes, durationMs: Math.round(result.durationMs), removed } }, 'backup written and checked');
        return result;
      } catch (err) {
        if (this.stopped) this.log.warn('backup abandoned: Tally is shutting down (its temporary file goes at the next backup)');
        else {
          this.metrics.backupFinished({ error: err });
          this.log.error({ err }, 'backup failed');
        }
        throw err;
      }
    });
  }

  /** No further runs; one under way is ended by the store's close. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
  }
}

function listing(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Copies a crash (or a shutdown mid-backup) left behind: backups run one at a time, so none is in progress. */
function removeTemporaries(dir: string): void {
  for (const name of listing(dir)) if (TEMPORARY.test(name)) rmSync(join(dir, name), { force: true });
}

/** Deletes the oldest scheduled backups beyond `keep`; returns their names. Other files in the directory are left alone. */
export function rotate(dir: string, keep: number): string[] {
  const backups = listing(dir).filter((name) => BACKUP_NAME.test(name)).sort();
  const old = backups.slice(0, Math.max(0, backups.length - keep));
  for (const name of old) rmSync(join(dir, name), { force: true });
  return old;
}
