import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BASE_TS, bulkPlan, deviceIds, duplicatesPlan, render, singlePlan, type Bodies } from '../../bench/peers/workload.js';

function digest(bodies: Bodies): string {
  const hash = createHash('sha256');
  for (let b = 0; b < bodies.count; b++) hash.update(bodies.body(b));
  return hash.digest('hex');
}

describe('peers bench workloads', () => {
  const ids = deviceIds(50);

  it('gives the same bodies for the same seed and different ones for another seed', () => {
    for (const format of ['json', 'line'] as const) {
      const a = render(bulkPlan(7, 50, 20), format, ids);
      const b = render(bulkPlan(7, 50, 20), format, ids);
      const c = render(bulkPlan(8, 50, 20), format, ids);
      expect(digest(a)).toBe(digest(b));
      expect(digest(a)).not.toBe(digest(c));
      const dupA = render(duplicatesPlan(3, bulkPlan(7, 50, 20), 0.1, 2, 40), format, ids);
      const dupB = render(duplicatesPlan(3, bulkPlan(7, 50, 20), 0.1, 2, 40), format, ids);
      expect(digest(dupA)).toBe(digest(dupB));
      expect(digest(render(singlePlan(5, 50, 300), format, ids))).toBe(digest(render(singlePlan(5, 50, 300), format, ids)));
    }
  });

  it('makes each bulk body one time step across every device', () => {
    const plan = bulkPlan(1, 50, 4);
    const bodies = render(plan, 'json', ids);
    expect(bodies.count).toBe(4);
    for (let step = 0; step < 4; step++) {
      const readings = JSON.parse(bodies.body(step).toString()) as { device_id: string; ts: number; count: number }[];
      expect(readings.map((r) => r.device_id)).toEqual(ids);
      expect(new Set(readings.map((r) => r.ts))).toEqual(new Set([BASE_TS + step]));
      for (const r of readings) expect(r.count).toBeGreaterThanOrEqual(1);
    }
  });

  it('carries the same readings in JSON and in line protocol', () => {
    const plan = bulkPlan(2, 50, 3);
    const json = render(plan, 'json', ids);
    const line = render(plan, 'line', ids);
    for (let b = 0; b < plan.bodies; b++) {
      const fromJson = (JSON.parse(json.body(b).toString()) as { device_id: string; ts: number; count: number }[]).map(
        (r) => `${r.device_id} ${r.ts} ${r.count}`,
      );
      const fromLine = line
        .body(b)
        .toString()
        .split('\n')
        .map((l) => {
          const m = /^m,device=(\S+) count=(\d+)i (\d+)$/.exec(l);
          expect(m).not.toBeNull();
          return `${m![1]} ${m![3]} ${m![2]}`;
        });
      expect(fromLine).toEqual(fromJson);
    }
  });

  it('resends about the asked fraction of the timed readings, each with another count', () => {
    const plan = bulkPlan(1, 50, 200);
    const dup = duplicatesPlan(9, plan, 0.1, 20, 50);
    const timed = plan.readings - plan.bodyStart[20]!;
    expect(dup.readings).toBeGreaterThan(timed * 0.08);
    expect(dup.readings).toBeLessThan(timed * 0.12);
    for (let i = 0; i < dup.readings; i++) {
      const src = dup.source![i]!;
      expect(src).toBeGreaterThanOrEqual(plan.bodyStart[20]!);
      expect(dup.device[i]).toBe(plan.device[src]);
      expect(dup.ts[i]).toBe(plan.ts[src]);
      expect(dup.count[i]).not.toBe(plan.count[src]);
    }
  });

  it('gives every single reading its own (device, ts)', () => {
    const plan = singlePlan(4, 50, 1000);
    const keys = new Set<string>();
    for (let i = 0; i < plan.readings; i++) keys.add(`${plan.device[i]}/${plan.ts[i]}`);
    expect(keys.size).toBe(1000);
    expect(plan.bodies).toBe(1000);
  });
});
