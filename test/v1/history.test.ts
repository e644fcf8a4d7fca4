import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, postReadings, rng, utc, type Harness } from '../http/client.js';

/** GET /v1/devices/:id/readings: a device's history in a time range, keyset-paginated. */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

const BASE = Date.UTC(2024, 8, 1, 12, 0, 0);
/** 50 readings at distinct, irregular instants (some with a microsecond fraction), sent shuffled. */
const sent: Array<{ device_id: string; ts: string; count: number; payload: { i: number } }> = [];
const tsOf: string[] = [];
const usOf: number[] = [];

beforeAll(async () => {
  const random = rng(7);
  let us = BASE * 1000;
  for (let i = 0; i < 50; i++) {
    us += 1_000_000 + Math.floor(random() * 120_000_000) + (i % 3 === 0 ? 123 : 0);
    usOf.push(us);
    // Sent with a +05:30 offset; history answers in UTC.
    const local = new Date(Math.floor(us / 1000) + 5.5 * 3600_000).toISOString().slice(0, 19);
    const frac = String(us % 1_000_000).padStart(6, '0');
    sent.push({ device_id: 'h-1', ts: `${local}.${frac}+05:30`, count: i, payload: { i } });
    const ms = Math.floor(us / 1000);
    const micros = us % 1000;
    tsOf.push(micros === 0 ? utc(ms) : `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`);
  }
  const shuffled = [...sent].sort(() => random() - 0.5);
  expect((await postReadings(t, shuffled)).json.accepted).toBe(50);
  expect((await postReadings(t, [{ device_id: 'h-other', ts: utc(BASE + 60_000), count: 1 }])).json.accepted).toBe(1);
});

const item = (i: number) => ({ device_id: 'h-1', ts: tsOf[i], count: i, payload: { i } });
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

async function page(url: string) {
  const res = await get(t, url);
  expect(res.status, res.text).toBe(200);
  expect(Object.keys(res.json).sort()).toEqual(['items', 'next_cursor']);
  return res.json as { items: any[]; next_cursor: string | null };
}

describe('GET /v1/devices/:id/readings', () => {
  test('all readings, oldest first by default, in UTC with every field', async () => {
    const res = await page('/v1/devices/h-1/readings');
    expect(res.items).toEqual(range(0, 50).map(item));
    expect(res.next_cursor).toBeNull();
  });

  test('order=desc', async () => {
    const res = await page('/v1/devices/h-1/readings?order=desc');
    expect(res.items).toEqual(range(0, 50).reverse().map(item));
  });

  test('from is inclusive, to is exclusive, in any offset', async () => {
    const from = encodeURIComponent(sent[10]!.ts); // the +05:30 form of reading 10
    const to = encodeURIComponent(tsOf[20]!); // the UTC form of reading 20
    const res = await page(`/v1/devices/h-1/readings?from=${from}&to=${to}&limit=1000`);
    expect(res.items).toEqual(range(10, 20).map(item));
    // One microsecond later excludes reading 10; one earlier includes 9 no more (it is > 1 s earlier).
    const after10 = utcMicros(usOf[10]! + 1);
    const res2 = await page(`/v1/devices/h-1/readings?from=${encodeURIComponent(after10)}&to=${to}`);
    expect(res2.items).toEqual(range(11, 20).map(item));
    // A range with nothing in it.
    const empty = await page(`/v1/devices/h-1/readings?from=${encodeURIComponent(tsOf[10]!)}&to=${encodeURIComponent(tsOf[10]!)}`);
    expect(empty).toEqual({ items: [], next_cursor: null });
  });

  for (const order of ['asc', 'desc'] as const) {
    test(`cursor paging (order=${order}, limit=7) inside a range neither skips nor repeats`, async () => {
      const from = encodeURIComponent(tsOf[5]!);
      const to = encodeURIComponent(tsOf[45]!);
      const got: any[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await page(`/v1/devices/h-1/readings?from=${from}&to=${to}&order=${order}&limit=7${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.items.length).toBeLessThanOrEqual(7);
        got.push(...res.items);
        cursor = res.next_cursor;
        pages++;
      } while (cursor !== null && pages < 20);
      const want = order === 'asc' ? range(5, 45) : range(5, 45).reverse();
      expect(got).toEqual(want.map(item));
      expect(pages).toBeGreaterThanOrEqual(6);
      expect(pages).toBeLessThanOrEqual(7);
    });
  }

  test('readings that arrive between pages after the cursor show up; none repeat', async () => {
    await postReadings(t, [{ device_id: 'h-2', ts: utc(BASE), count: 1 }, { device_id: 'h-2', ts: utc(BASE + 2000), count: 1 }]);
    const first = await page('/v1/devices/h-2/readings?limit=2');
    expect(first.items.map((r) => r.ts)).toEqual([utc(BASE), utc(BASE + 2000)]);
    await postReadings(t, [
      { device_id: 'h-2', ts: utc(BASE + 1000), count: 1 }, // before the cursor: not on later pages
      { device_id: 'h-2', ts: utc(BASE + 3000), count: 1 },
    ]);
    const second = await page(`/v1/devices/h-2/readings?limit=2&cursor=${first.next_cursor}`);
    expect(second.items.map((r) => r.ts)).toEqual([utc(BASE + 3000)]);
    expect(second.next_cursor).toBeNull();
  });

  test('limit bounds: 1..1000', async () => {
    const one = await page('/v1/devices/h-1/readings?limit=1');
    expect(one.items).toEqual([item(0)]);
    expect(typeof one.next_cursor).toBe('string');
    for (const limit of ['0', '1001', 'x']) {
      const res = await get(t, `/v1/devices/h-1/readings?limit=${limit}`);
      expect(res.status, limit).toBe(400);
      expect(res.json.error.field).toBe('limit');
    }
  });

  test('unknown device: 404', async () => {
    const res = await get(t, '/v1/devices/nobody/readings');
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('NotFound');
  });

  test('bad from, to, order and cursor are 400s naming the field', async () => {
    const cases: Array<[string, string]> = [
      ['from=yesterday', 'from'],
      ['from=2024-09-01T12:00:00', 'from'],
      ['from=2024-02-30T00:00:00Z', 'from'],
      ['from=1725192000', 'from'],
      ['to=2024-09-01T24:00:00Z', 'to'],
      ['order=newest', 'order'],
      ['cursor=garbage', 'cursor'],
      [`cursor=${Buffer.from('12a').toString('base64url')}`, 'cursor'],
    ];
    for (const [query, field] of cases) {
      const res = await get(t, `/v1/devices/h-1/readings?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.error.code).toBe('InvalidInput');
      expect(res.json.error.field, query).toBe(field);
      expect(res.json.error.message, query).toContain(field);
    }
  });
});

function utcMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, 23)}${String(us % 1000).padStart(3, '0')}Z`;
}
