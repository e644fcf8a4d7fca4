/**
 * What each system stored, judged against what it acknowledged: exact sums, the semantics it showed
 * for resent readings, and acknowledged readings lost in a crash. Pure functions over plans and
 * per-device figures, so the tests can feed them deliberately wrong answers.
 */
import { readingKey, sumsByDevice, type Plan } from './workload.js';

export type Semantics = 'keep-first' | 'overwrite' | 'double-count';
export const SEMANTICS: readonly Semantics[] = ['keep-first', 'overwrite', 'double-count'];

/** Per-device sums stored after a run, compared with what was acknowledged. */
export interface SumCheck {
  /** Every device's sum lies between the acknowledged sum and that plus the unanswered bodies' sum. */
  readonly exact: boolean;
  readonly devices: number;
  /** Devices whose sum lies outside those bounds. */
  readonly wrongDevices: number;
  /** Sum over the devices of the acknowledged readings' counts. */
  readonly acknowledgedTotal: number;
  /** Sum of the counts of bodies sent without a 2xx (they may or may not be stored). */
  readonly unansweredTotal: number;
  readonly storedTotal: number;
  /** A few offending devices, for the log. */
  readonly examples: readonly { device: number; low: number; high: number; stored: number }[];
}

/**
 * Sums are exact when, for every device, acknowledged <= stored <= acknowledged + unanswered.
 * `acked[b]` is 1 for bodies answered 2xx; `sent` is how many bodies went out (from body 0).
 */
export function checkSums(p: Plan, devices: number, acked: Uint8Array, sent: number, stored: ArrayLike<number>): SumCheck {
  const low = sumsByDevice(p, devices, (b) => b < sent && acked[b] === 1);
  const extra = sumsByDevice(p, devices, (b) => b < sent && acked[b] !== 1);
  let wrongDevices = 0;
  let acknowledgedTotal = 0;
  let unansweredTotal = 0;
  let storedTotal = 0;
  const examples: { device: number; low: number; high: number; stored: number }[] = [];
  for (let d = 0; d < devices; d++) {
    const lo = low[d]!;
    const hi = lo + extra[d]!;
    const got = stored[d] ?? 0;
    acknowledgedTotal += lo;
    unansweredTotal += extra[d]!;
    storedTotal += got;
    if (got < lo || got > hi) {
      wrongDevices++;
      if (examples.length < 5) examples.push({ device: d, low: lo, high: hi, stored: got });
    }
  }
  return { exact: wrongDevices === 0, devices, wrongDevices, acknowledgedTotal, unansweredTotal, storedTotal, examples };
}

/** The per-device sums each semantics predicts once the resent readings are in. */
export interface Expectations {
  readonly 'keep-first': Float64Array;
  readonly overwrite: Float64Array;
  readonly 'double-count': Float64Array;
}

/**
 * `original` and `resent` with the bodies each system acknowledged. A resent reading whose original
 * was not acknowledged is a first write under every semantics.
 */
export function expectations(
  original: Plan,
  originalAcked: Uint8Array,
  resent: Plan,
  resentAcked: Uint8Array,
  devices: number,
): Expectations {
  if (resent.source === undefined) throw new Error('the resent plan must name the source of each reading');
  const keepFirst = sumsByDevice(original, devices, (b) => originalAcked[b] === 1);
  const overwrite = Float64Array.from(keepFirst);
  const doubleCount = Float64Array.from(keepFirst);
  const bodyOf = new Uint32Array(original.readings);
  for (let b = 0; b < original.bodies; b++) bodyOf.fill(b, original.bodyStart[b]!, original.bodyStart[b + 1]!);
  for (let b = 0; b < resent.bodies; b++) {
    if (resentAcked[b] !== 1) continue;
    for (let r = resent.bodyStart[b]!; r < resent.bodyStart[b + 1]!; r++) {
      const d = resent.device[r]!;
      const src = resent.source[r]!;
      const now = resent.count[r]!;
      if (originalAcked[bodyOf[src]!] === 1) {
        overwrite[d]! += now - original.count[src]!;
        doubleCount[d]! += now;
      } else {
        keepFirst[d]! += now;
        overwrite[d]! += now;
        doubleCount[d]! += now;
      }
    }
  }
  return { 'keep-first': keepFirst, overwrite, 'double-count': doubleCount };
}

export interface DuplicatesVerdict {
  /** The semantics every device's sum agrees with, or 'wrong' when none fits them all. */
  readonly semantics: Semantics | 'wrong';
  readonly devices: number;
  /** Devices whose three predictions differ (those that got resent readings). */
  readonly distinguishing: number;
  /** For each semantics, the devices whose stored sum it predicts. */
  readonly matching: Record<Semantics, number>;
  /** Devices no semantics predicts. */
  readonly unexplained: number;
  readonly storedTotal: number;
  readonly expectedTotals: Record<Semantics, number>;
}

export function classifyDuplicates(expected: Expectations, stored: ArrayLike<number>): DuplicatesVerdict {
  const devices = expected['keep-first'].length;
  const matching: Record<Semantics, number> = { 'keep-first': 0, overwrite: 0, 'double-count': 0 };
  const expectedTotals: Record<Semantics, number> = { 'keep-first': 0, overwrite: 0, 'double-count': 0 };
  let distinguishing = 0;
  let unexplained = 0;
  let storedTotal = 0;
  for (let d = 0; d < devices; d++) {
    const got = stored[d] ?? 0;
    storedTotal += got;
    const k = expected['keep-first'][d]!;
    const o = expected.overwrite[d]!;
    const x = expected['double-count'][d]!;
    if (k !== o && o !== x && k !== x) distinguishing++;
    let any = false;
    for (const s of SEMANTICS) {
      expectedTotals[s] += expected[s][d]!;
      if (got === expected[s][d]) {
        matching[s]++;
        any = true;
      }
    }
    if (!any) unexplained++;
  }
  const semantics = SEMANTICS.find((s) => matching[s] === devices) ?? 'wrong';
  return { semantics, devices, distinguishing, matching, unexplained, storedTotal, expectedTotals };
}

/** Acknowledged readings missing after a kill -9 and restart. */
export interface CrashCheck {
  /** Readings sent (bodies handed to the load generator). */
  readonly sent: number;
  readonly acknowledged: number;
  /** Acknowledged but absent after the restart. */
  readonly lost: number;
  /** Sent without an answer (in flight at the kill) yet stored: allowed. */
  readonly storedUnacknowledged: number;
  /** Stored readings that were never sent: should be none. */
  readonly unexpected: number;
}

export function checkCrash(p: Plan, acked: Uint8Array, sent: number, stored: ReadonlySet<number>): CrashCheck {
  let acknowledged = 0;
  let lost = 0;
  let storedUnacknowledged = 0;
  let readingsSent = 0;
  const sentKeys = new Set<number>();
  for (let b = 0; b < Math.min(sent, p.bodies); b++) {
    for (let r = p.bodyStart[b]!; r < p.bodyStart[b + 1]!; r++) {
      const key = readingKey(p.device[r]!, p.ts[r]!);
      sentKeys.add(key);
      readingsSent++;
      const present = stored.has(key);
      if (acked[b] === 1) {
        acknowledged++;
        if (!present) lost++;
      } else if (present) storedUnacknowledged++;
    }
  }
  let unexpected = 0;
  for (const key of stored) if (!sentKeys.has(key)) unexpected++;
  return { sent: readingsSent, acknowledged, lost, storedUnacknowledged, unexpected };
}
