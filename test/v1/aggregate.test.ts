import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, postReadings, rng, utc, type Harness } from '../http/client.js';

/**
 * GET /v1/devices/:id/aggregate, checked against aggregates computed here, independently, from
 * the readings the test generated (seeded, so a failure reproduces).
 */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

interface Generated {
  ms: number;
  count: number | null;
  /** What was sent as payload.hr; only finite numbers are aggregated. */
  hr: unknown;
}

/** Sunday 2024-03-03 10:07:13.250 UTC: aligned to no bucket width used here. */
const START = Date.UTC(2024, 2, 3, 10, 7, 13, 250);
const data: Generated[] = [];
let gapStart = 0;
let gapEnd = 0;

beforeAll(async () => {
  const random = rng(424242);
  let ms = START;
  for (let i = 0; i < 700; i++) {
    if (i === 350) {
      gapStart = ms;
      ms += 40 * 60_000; // 40 minutes without readings
      gapEnd = ms;
    }
    const r = random();
    const hr =
      r < 0.08 ? undefined : r < 0.11 ? 'high' : r < 0.13 ? true : r < 0.14 ? { v: 1 } : r < 0.3 ? 40 + Math.floor(random() * 140) : Math.round((40 + random() * 140) * 100) / 100;
    data.push({ ms, count: random() < 0.05 ? null : Math.floor(random() * 51), hr });
    ms += 1000 + Math.floor(random() * 40_000);
  }
  const body = data.map((d, i) => ({
    device_id: 'ag-1',
    ts: utc(d.ms),
    ...(d.count === null ? {} : { count: d.count }),
    payload: d.hr === undefined ? { other: i } : { hr: d.hr, other: i },
  }));
  // Shuffled: arrival order must not matter.
  body.sort(() => random() - 0.5);
  expect((await postReadings(t, body)).json).toEqual({ accepted: 700, duplicates: 0, rejected: [] });
  // A second device with payloads only (no counts) and a third one that must not leak into ag-1.
  const res = await postReadings(t, [
    { device_id: 'ag-2', ts: utc(START), payload: { hr: 60 } },
    { device_id: 'ag-2', ts: utc(START + 1000), payload: { hr: 80 } },
    { device_id: 'ag-3', ts: utc(START), count: 1_000_000, payload: { hr: 1_000_000 } },
  ]);
  expect(res.json.accepted).toBe(3);
});

type Bucket = { start: string; count: number; sum: number | null; min: number | null; max: number | null; avg: number | null };

/** Buckets computed here: floor(ts / every) * every from the Unix epoch; empty ones left out. */
function expectedBuckets(everyMs: number, field: 'count' | 'hr', fromMs = -Infinity, toMs = Infinity): Bucket[] {
  const groups = new Map<number, number[]>();
  for (const d of data) {
    if (d.ms < fromMs || d.ms >= toMs) continue;
    const v = field === 'count' ? d.count : d.hr;
    if (typeof v !== 'number') continue;
    const start = Math.floor(d.ms / everyMs) * everyMs;
    if (!groups.has(start)) groups.set(start, []);
    groups.get(start)!.push(v);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a - b)
    .map(([start, values]) => {
      const sum = values.reduce((a, b) => a + b, 0);
      return { start: utc(start), count: values.length, sum, min: Math.min(...values), max: Math.max(...values), avg: sum / values.length };
    });
}

function expectBuckets(got: Bucket[], want: Bucket[], exactSums: boolean): void {
  expect(got.map((b) => b.start)).toEqual(want.map((b) => b.start));
  got.forEach((b, i) => {
    const w = want[i]!;
    expect(Object.keys(b).sort()).toEqual(['avg', 'count', 'max', 'min', 'start', 'sum']);
    expect(b.count, b.start).toBe(w.count);
    expect(b.min, b.start).toBe(w.min);
    expect(b.max, b.start).toBe(w.max);
    if (exactSums) expect(b.sum, b.start).toBe(w.sum);
    else expect(b.sum!, b.start).toBeCloseTo(w.sum!, 6);
    expect(b.avg!, b.start).toBeCloseTo(w.avg!, 9);
  });
}

async function aggregate(query: string, id = 'ag-1'): Promise<Bucket[]> {
  const res = await get(t, `/v1/devices/${id}/aggregate?${query}`);
  expect(res.status, res.text).toBe(200);
  expect(Object.keys(res.json)).toEqual(['buckets']);
  return res.json.buckets;
}

const WIDTHS: Array<[string, number]> = [
  ['90s', 90_000],
  ['1m', 60_000],
  ['5m', 300_000],
  ['7m', 420_000],
  ['1h', 3_600_000],
  ['1d', 86_400_000],
  ['1w', 7 * 86_400_000],
];

describe('GET /v1/devices/:id/aggregate', () => {
  for (const [every, everyMs] of WIDTHS) {
    test(`field=count, every=${every}: matches values computed independently`, async () => {
      const got = await aggregate(`every=${every}&field=count`);
      const want = expectedBuckets(everyMs, 'count');
      expect(got.length).toBeGreaterThan(0);
      expectBuckets(got, want, true);
      // Every bucket starts on a multiple of the width since the epoch.
      for (const b of got) expect(Date.parse(b.start) % everyMs).toBe(0);
      // Nothing lost: the counts add up to the readings that have a count.
      expect(got.reduce((a, b) => a + b.count, 0)).toBe(data.filter((d) => d.count !== null).length);
    });

    test(`field=payload.hr, every=${every}: only numeric values are aggregated`, async () => {
      expectBuckets(await aggregate(`every=${every}&field=payload.hr`), expectedBuckets(everyMs, 'hr'), false);
    });
  }

  test('1w buckets start on Thursdays, as the epoch did; 1d at midnight UTC', async () => {
    expect((await aggregate('every=1w&fn=count')).map((b) => b.start)).toEqual(['2024-02-29T00:00:00Z']);
    expect((await aggregate('every=1d&fn=count')).map((b) => b.start)).toEqual(['2024-03-03T00:00:00Z']);
  });

  test('empty buckets are omitted: nothing inside the 40-minute gap', async () => {
    const got = await aggregate('every=5m&fn=count');
    const inGap = got.filter((b) => Date.parse(b.start) >= Math.ceil(gapStart / 300_000) * 300_000 && Date.parse(b.start) + 300_000 <= gapEnd);
    expect(inGap).toEqual([]);
    // The gap spans at least 7 whole 5-minute buckets, so consecutive starts jump there.
    const starts = got.map((b) => Date.parse(b.start));
    const jumps = starts.slice(1).map((s, i) => s - starts[i]!);
    expect(Math.max(...jumps)).toBeGreaterThanOrEqual(8 * 300_000);
    for (const b of got) expect(b.count).toBeGreaterThan(0);
    // A device whose readings have no count: no bucket for field=count, buckets for its payload.
    expect(await aggregate('every=1h&field=count', 'ag-2')).toEqual([]);
    expect(await aggregate('every=1h&field=payload.hr', 'ag-2')).toEqual([
      { start: '2024-03-03T10:00:00Z', count: 2, sum: 140, min: 60, max: 80, avg: 70 },
    ]);
    // A payload field nobody has: no buckets.
    expect(await aggregate('every=1h&field=payload.nothing')).toEqual([]);
  });

  test('fn picks the functions returned', async () => {
    const full = await aggregate('every=1h&field=payload.hr');
    const avg = await aggregate('every=1h&field=payload.hr&fn=avg');
    expect(avg).toEqual(full.map((b) => ({ start: b.start, avg: b.avg })));
    const two = await aggregate('every=1h&field=payload.hr&fn=max,count');
    expect(two).toEqual(full.map((b) => ({ start: b.start, count: b.count, max: b.max })));
    for (const b of two) expect(Object.keys(b).sort()).toEqual(['count', 'max', 'start']);
    const sumMin = await aggregate('every=1h&fn=sum,min');
    expect(sumMin).toEqual(expectedBuckets(3_600_000, 'count').map((b) => ({ start: b.start, sum: b.sum, min: b.min })));
  });

  test('from is inclusive, to exclusive; buckets stay aligned to the epoch, not to from', async () => {
    const fromMs = data[100]!.ms;
    const toMs = data[500]!.ms;
    const got = await aggregate(`every=5m&from=${encodeURIComponent(utc(fromMs))}&to=${encodeURIComponent(utc(toMs))}`);
    const want = expectedBuckets(300_000, 'count', fromMs, toMs);
    expectBuckets(got, want, true);
    expect(Date.parse(got[0]!.start)).toBeLessThanOrEqual(fromMs);
    expect(Date.parse(got[0]!.start) % 300_000).toBe(0);
    expect(got.reduce((a, b) => a + b.count, 0)).toBe(data.slice(100, 500).filter((d) => d.count !== null).length);
    // The same window written with an offset.
    const offset = new Date(fromMs + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    expect(await aggregate(`every=5m&from=${encodeURIComponent(offset)}&to=${encodeURIComponent(utc(toMs))}`)).toEqual(got);
  });

  test('defaults: every=1h, field=count, all functions, the whole history', async () => {
    expect(await aggregate('')).toEqual(await aggregate('every=1h&field=count&fn=count,sum,min,max,avg'));
    expectBuckets(await aggregate(''), expectedBuckets(3_600_000, 'count'), true);
  });

  test('bucket limit: 10,000 buckets pass, more is a 400 naming every', async () => {
    const from = utc(START);
    const ok = await get(t, `/v1/devices/ag-1/aggregate?every=1ms&from=${from}&to=${utc(START + 10_000)}`);
    expect(ok.status, ok.text).toBe(200);
    for (const query of [`every=1ms&from=${from}&to=${utc(START + 10_001)}`, 'every=1s', 'every=100ms']) {
      const res = await get(t, `/v1/devices/ag-1/aggregate?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.error.code).toBe('InvalidInput');
      expect(res.json.error.field).toBe('every');
      expect(res.json.error.message).toContain('every');
    }
  });

  test('bad every, fn, field, from and to are 400s naming the parameter', async () => {
    const cases: Array<[string, string]> = [
      ['every=5x', 'every'],
      ['every=0s', 'every'],
      ['every=-1m', 'every'],
      ['every=1.5m', 'every'],
      ['every=', 'every'],
      ['fn=median', 'fn'],
      ['fn=count,', 'fn'],
      ['fn=', 'fn'],
      ['fn=count;drop', 'fn'],
      ['field=payload', 'field'],
      ['field=hr', 'field'],
      ['field=payload.a.b', 'field'],
      ['field=payload.bad-name', 'field'],
      ["field=payload.x')--", 'field'],
      ['from=noon', 'from'],
      ['to=2024-03-03T10:00:00', 'to'],
      [`from=${utc(START + 5000)}&to=${utc(START)}`, 'to'],
    ];
    for (const [query, field] of cases) {
      const res = await get(t, `/v1/devices/ag-1/aggregate?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.error.code, query).toBe('InvalidInput');
      expect(res.json.error.field, query).toBe(field);
    }
  });

  test('an empty range (from equal to to) has no buckets, as history has no items', async () => {
    const at = utc(START + 5000);
    const res = await get(t, `/v1/devices/ag-1/aggregate?from=${at}&to=${at}`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ buckets: [] });
  });

  test('unknown device: 404', async () => {
    const res = await get(t, '/v1/devices/nobody/aggregate?every=1h');
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('NotFound');
  });
});
