import { describe, expect, it } from 'vitest';
import { checkCrash, checkSums, classifyDuplicates, expectations } from '../../bench/peers/correctness.js';
import { bulkPlan, duplicatesPlan, readingKey, singlePlan, sumsByDevice } from '../../bench/peers/workload.js';

const DEVICES = 20;
const bulk = bulkPlan(11, DEVICES, 60);
const dups = duplicatesPlan(12, bulk, 0.2, 5, DEVICES);
const all = (n: number) => new Uint8Array(n).fill(1);

/** What a store with the given semantics would hold after the original and the resent readings. */
function simulate(mode: 'keep-first' | 'overwrite' | 'double-count'): Float64Array {
  const stored = new Map<number, number[]>();
  for (let r = 0; r < bulk.readings; r++) stored.set(readingKey(bulk.device[r]!, bulk.ts[r]!), [bulk.count[r]!]);
  for (let r = 0; r < dups.readings; r++) {
    const values = stored.get(readingKey(dups.device[r]!, dups.ts[r]!))!;
    if (mode === 'overwrite') values[0] = dups.count[r]!;
    if (mode === 'double-count') values.push(dups.count[r]!);
  }
  const sums = new Float64Array(DEVICES);
  for (const [key, values] of stored) sums[Math.floor(key / 4294967296)]! += values.reduce((a, b) => a + b, 0);
  return sums;
}

describe('peers bench correctness checks', () => {
  const exp = expectations(bulk, all(bulk.bodies), dups, all(dups.bodies), DEVICES);

  it('tells keep-first, overwrite and double-count apart', () => {
    expect(dups.readings).toBeGreaterThan(0);
    for (const mode of ['keep-first', 'overwrite', 'double-count'] as const) {
      const verdict = classifyDuplicates(exp, simulate(mode));
      expect(verdict.semantics).toBe(mode);
      expect(verdict.matching[mode]).toBe(DEVICES);
      expect(verdict.unexplained).toBe(0);
    }
    expect(classifyDuplicates(exp, simulate('keep-first')).distinguishing).toBe(DEVICES);
  });

  it('calls a deliberately wrong answer wrong', () => {
    const wrong = simulate('keep-first');
    wrong[3] = exp['keep-first'][3]! - 1; // less than any semantics could give
    const verdict = classifyDuplicates(exp, wrong);
    expect(verdict.semantics).toBe('wrong');
    expect(verdict.unexplained).toBe(1);

    const exact = checkSums(bulk, DEVICES, all(bulk.bodies), bulk.bodies, sumsByDevice(bulk, DEVICES));
    expect(exact.exact).toBe(true);
    expect(exact.storedTotal).toBe(exact.acknowledgedTotal);
    const off = sumsByDevice(bulk, DEVICES);
    off[7]! -= 2;
    off[9]! += 5;
    const bad = checkSums(bulk, DEVICES, all(bulk.bodies), bulk.bodies, off);
    expect(bad.exact).toBe(false);
    expect(bad.wrongDevices).toBe(2);
    expect(bad.examples.map((e) => e.device)).toEqual([7, 9]);
  });

  it('allows unanswered bodies to be stored or not, but nothing beyond them', () => {
    const acked = all(bulk.bodies);
    acked[10] = 0;
    const withIt = sumsByDevice(bulk, DEVICES);
    const withoutIt = sumsByDevice(bulk, DEVICES, (b) => b !== 10);
    expect(checkSums(bulk, DEVICES, acked, bulk.bodies, withIt).exact).toBe(true);
    expect(checkSums(bulk, DEVICES, acked, bulk.bodies, withoutIt).exact).toBe(true);
    const doubled = sumsByDevice(bulk, DEVICES);
    doubled[0]! += bulk.count[bulk.bodyStart[10]!]!;
    expect(checkSums(bulk, DEVICES, acked, bulk.bodies, doubled).exact).toBe(false);
  });

  it('counts acknowledged readings missing after a crash', () => {
    const plan = singlePlan(5, DEVICES, 100);
    const acked = new Uint8Array(100);
    acked.fill(1, 0, 80); // 80 acknowledged, 20 sent without an answer
    const stored = new Set<number>();
    for (let i = 0; i < 85; i++) if (i !== 3 && i !== 40) stored.add(readingKey(plan.device[i]!, plan.ts[i]!));
    stored.add(readingKey(0, 1)); // never sent
    const check = checkCrash(plan, acked, 100, stored);
    expect(check).toEqual({ sent: 100, acknowledged: 80, lost: 2, storedUnacknowledged: 5, unexpected: 1 });
  });
});
