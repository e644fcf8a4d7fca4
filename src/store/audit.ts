import { formatUtc } from '../domain/timestamp.js';
import type { AuditMismatch, AuditReport } from './types.js';

/**
 * The backend-independent half of `audit`: what a device summary must agree with, given what its
 * stored readings add up to, and the tally of a run. Each backend recomputes the figures its own
 * way (SQLite by decoding chunks, PostgreSQL in SQL) and compares them here, so both judge alike.
 */

/** Mismatches an audit lists; beyond it they are counted only, so a wrecked store cannot exhaust memory. */
export const MAX_REPORTED_MISMATCHES = 1000;

/** A device summary as stored, with what it knows of the readings retention deleted. */
export interface StoredSummary {
  readonly deviceId: string;
  readonly readingCount: number;
  readonly cumulativeCount: number;
  /** Null on SQLite for a device whose readings are all still in the journal. */
  readonly firstTsUs: number | null;
  readonly latestTsUs: number | null;
  readonly latestTsText: string | null;
  readonly latestPayload: string | null;
  /** Readings retention deleted, and the sum of their counts; null when the summary predates keeping them. */
  readonly prunedCount: number | null;
  readonly prunedSum: number | null;
}

/** A summary row as both SQL backends keep it (same column names), with the pruned columns. */
export interface AuditedRow {
  device_id: string;
  first_ts_us: number | null;
  latest_ts_us: number | null;
  latest_ts_text: string | null;
  latest_payload: string | null;
  reading_count: number;
  cumulative_count: number;
  pruned_count: number | null;
  pruned_sum: number | null;
}

export function storedSummary(row: AuditedRow): StoredSummary {
  return {
    deviceId: row.device_id,
    readingCount: row.reading_count,
    cumulativeCount: row.cumulative_count,
    firstTsUs: row.first_ts_us,
    latestTsUs: row.latest_ts_us,
    latestTsText: row.latest_ts_text,
    latestPayload: row.latest_payload,
    prunedCount: row.pruned_count,
    prunedSum: row.pruned_sum,
  };
}

/** What a device's stored readings add up to. */
export interface Recomputed {
  readonly n: number;
  /** Sum of the counts (readings without one add nothing). */
  readonly sum: number;
  readonly firstTsUs: number | null;
  readonly latestTsUs: number | null;
  readonly latestTsText: string | null;
  readonly latestPayload: string | null;
}

/** Builds a Recomputed from readings seen in any order. */
export class RecomputedSummary implements Recomputed {
  n = 0;
  sum = 0;
  firstTsUs: number | null = null;
  latestTsUs: number | null = null;
  latestTsText: string | null = null;
  latestPayload: string | null = null;

  add(tsUs: number, count: number | null, tsText: string | null, payload: string | null): void {
    this.n++;
    if (count !== null) this.sum += count;
    if (this.firstTsUs === null || tsUs < this.firstTsUs) this.firstTsUs = tsUs;
    if (this.latestTsUs === null || tsUs > this.latestTsUs) {
      this.latestTsUs = tsUs;
      this.latestTsText = tsText;
      this.latestPayload = payload;
    }
  }
}

const time = (us: number | null): string => (us === null ? 'null' : Number.isSafeInteger(us) ? formatUtc(us) : String(us));

/**
 * What is wrong with a summary given its readings. Retention deletes readings but leaves summaries
 * all-time, adding what it deleted to `pruned_*`: counts must equal stored plus pruned, and the
 * first timestamp may be older than any kept. A summary from before pruned readings were kept is
 * checked for bounds only (at least what is stored). Problems name no payload content.
 */
export function summaryProblems(s: StoredSummary, r: Recomputed): string[] {
  const problems: string[] = [];
  const known = s.prunedCount !== null && s.prunedSum !== null;
  const prunedNote = (p: number | null) => (known && p! > 0 ? ` and ${p} were pruned` : '');
  if (known ? s.readingCount !== r.n + s.prunedCount! : s.readingCount < r.n) {
    problems.push(`reading_count is ${s.readingCount}, its stored readings number ${r.n}${prunedNote(s.prunedCount)}`);
  }
  if (known ? s.cumulativeCount !== r.sum + s.prunedSum! : s.cumulativeCount < r.sum) {
    problems.push(`cumulative_count is ${s.cumulativeCount}, its stored readings' counts add up to ${r.sum}${prunedNote(s.prunedSum)}`);
  }
  if (r.n === 0) return problems; // nothing stored (all pruned, or all still journaled): nothing to compare times with
  const mayHavePruned = !known || s.prunedCount! > 0;
  if (s.firstTsUs === null || (mayHavePruned ? s.firstTsUs > r.firstTsUs! : s.firstTsUs !== r.firstTsUs)) {
    problems.push(`first_ts is ${time(s.firstTsUs)}, its earliest stored reading is at ${time(r.firstTsUs)}`);
  }
  // Retention takes the oldest readings: the newest one stays while any does.
  if (s.latestTsUs !== r.latestTsUs) {
    problems.push(`latest_ts is ${time(s.latestTsUs)}, its newest stored reading is at ${time(r.latestTsUs)}`);
  } else {
    if (s.latestTsText !== r.latestTsText) problems.push(`latest_ts_text is ${JSON.stringify(s.latestTsText)}, its newest reading's is ${JSON.stringify(r.latestTsText)}`);
    if (s.latestPayload !== r.latestPayload) problems.push("latest_payload differs from its newest reading's payload");
  }
  return problems;
}

/** The running tally of one audit. */
export class AuditTally {
  devices = 0;
  readings = 0;
  boundsOnly = 0;
  mismatchCount = 0;
  readonly mismatches: AuditMismatch[] = [];
  private readonly started = performance.now();

  mismatch(deviceId: string | null, problem: string): void {
    this.mismatchCount++;
    if (this.mismatches.length < MAX_REPORTED_MISMATCHES) this.mismatches.push({ deviceId, problem });
  }

  /** One device checked: its summary against what its readings add up to. */
  device(s: StoredSummary, r: Recomputed): void {
    this.devices++;
    this.readings += r.n;
    if (s.prunedCount === null || s.prunedSum === null) this.boundsOnly++;
    for (const problem of summaryProblems(s, r)) this.mismatch(s.deviceId, problem);
  }

  report(storeCheck: string): AuditReport {
    return {
      devices: this.devices,
      readings: this.readings,
      mismatches: this.mismatches,
      mismatchCount: this.mismatchCount,
      boundsOnly: this.boundsOnly,
      storeCheck,
      durationMs: performance.now() - this.started,
    };
  }
}
