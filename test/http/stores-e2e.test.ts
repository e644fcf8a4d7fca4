import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { get, post, type Harness } from './client.js';

/**
 * Every write surface and the reads through HTTP, end to end, with exact answers, once per
 * backend: the same requests must get the same answers whichever store TALLY_STORE names.
 */
/** Bright Counter ids are UUIDs: this one shares the prefix of the others. */
const C = 'e2e0c000-0000-4000-8000-000000000000';

function endToEnd(open: () => Promise<{ t: Harness; close(): Promise<void> }>): void {
  let t: Harness;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ t, close } = await open());
  });
  afterAll(() => close());

  test('writes on every surface, then reads on every surface', async () => {
    // /v1: a JSON array; a duplicate inside the request and an out-of-order reading.
    const v1 = await post(t, '/v1/readings', [
      { device_id: 'e2e-a', ts: '2024-05-01T10:00:00Z', count: 3, payload: { temp: 20 } },
      { device_id: 'e2e-a', ts: '2024-05-01T09:00:00Z', count: 1, payload: { temp: 99 } },
      { device_id: 'e2e-b', ts: '2024-05-01T12:00:00+02:00', count: 2, payload: { temp: 5 } },
      { device_id: 'e2e-a', ts: '2024-05-01T11:00:00+01:00', count: 7 },
    ]);
    expect([v1.status, v1.json]).toEqual([200, { accepted: 3, duplicates: 1, rejected: [] }]);

    // Bright Counter.
    const bright = await post(t, '/api/device-readings/create', {
      id: C,
      readings: [
        { count: 2, timestamp: '2021-09-29T16:08:15+01:00' },
        { count: 3, timestamp: '2021-09-29T16:09:15+01:00' },
      ],
    });
    expect([bright.status, bright.json]).toEqual([201, { status: 'ok' }]);

    // /ingest, the device readings body: one new, one already recorded (by /v1, another offset).
    const ingest = await post(t, '/ingest', {
      id: 'e2e-a',
      readings: [
        { timestamp: '2024-05-01T12:00:00Z', count: 4 },
        { timestamp: '2024-05-01T12:00:00+02:00', count: 9 },
      ],
    });
    expect(ingest.status).toBe(207);
    expect(ingest.json.results[0]).toEqual({ id: 'e2e-a', timestamp: '2024-05-01T12:00:00Z', success: true, status: 202 });
    expect(ingest.json.results[1]).toMatchObject({ id: 'e2e-a', timestamp: '2024-05-01T12:00:00+02:00', success: false, status: 409 });

    // /ingest, the record body: new, then the same again.
    const record = { device_id: 'e2e-r', timestamp: '2024-05-01T13:00:00Z', data_payload: { gene_count: 12 } };
    expect(await post(t, '/ingest', record).then((r) => [r.status, r.json])).toEqual([201, { status: 'ok' }]);
    expect(await post(t, '/ingest', record).then((r) => [r.status, r.json])).toEqual([200, { status: 'duplicate' }]);

    // Vital data: integer seconds.
    const vital = await post(t, '/vital-data', { device: 'e2e-v', timestamp: 1714561200, heartRateValue: 88 });
    expect([vital.status, vital.json]).toEqual([202, { status: 'accepted' }]);

    // /v1 reads.
    expect((await get(t, '/v1/devices/e2e-a')).json).toEqual({
      device_id: 'e2e-a',
      first_ts: '2024-05-01T09:00:00Z',
      latest_ts: '2024-05-01T12:00:00Z',
      reading_count: 3,
      cumulative_count: 8,
      latest_payload: null,
    });
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const res = await get(t, `/v1/devices?prefix=e2e&sort=latest_ts&order=desc&limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(res.status).toBe(200);
      pages.push(res.json.items.map((d: { device_id: string }) => d.device_id));
      cursor = res.json.next_cursor;
    } while (cursor !== null);
    expect(pages).toEqual([['e2e-r', 'e2e-a'], ['e2e-v', 'e2e-b'], [C]]);
    const byTemp = await get(t, '/v1/devices?prefix=e2e&sort=payload.temp&order=asc');
    expect(byTemp.json.items.map((d: { device_id: string }) => d.device_id).slice(0, 1)).toEqual(['e2e-b']);

    const history = await get(t, '/v1/devices/e2e-a/readings?order=desc&limit=2');
    expect(history.json.items).toEqual([
      { device_id: 'e2e-a', ts: '2024-05-01T12:00:00Z', count: 4, payload: null },
      { device_id: 'e2e-a', ts: '2024-05-01T10:00:00Z', count: 3, payload: { temp: 20 } },
    ]);
    const rest = await get(t, `/v1/devices/e2e-a/readings?order=desc&limit=2&cursor=${encodeURIComponent(history.json.next_cursor)}`);
    expect(rest.json).toEqual({ items: [{ device_id: 'e2e-a', ts: '2024-05-01T09:00:00Z', count: 1, payload: { temp: 99 } }], next_cursor: null });

    const buckets = await get(t, '/v1/devices/e2e-a/aggregate?every=2h&from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z');
    expect(buckets.json).toEqual({
      buckets: [
        { start: '2024-05-01T08:00:00Z', count: 1, sum: 1, min: 1, max: 1, avg: 1 },
        { start: '2024-05-01T10:00:00Z', count: 1, sum: 3, min: 3, max: 3, avg: 3 },
        { start: '2024-05-01T12:00:00Z', count: 1, sum: 4, min: 4, max: 4, avg: 4 },
      ],
    });
    const temps = await get(t, '/v1/devices/e2e-a/aggregate?every=1d&field=payload.temp&fn=avg,max&from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z');
    expect(temps.json).toEqual({ buckets: [{ start: '2024-05-01T00:00:00Z', avg: 59.5, max: 99 }] });

    // Seed surfaces' reads.
    const records: string[] = [];
    cursor = null;
    do {
      const res = await get(t, `/records?limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(res.status).toBe(200);
      records.push(...res.json.records.map((r: { device_id: string; timestamp: string }) => `${r.device_id} ${r.timestamp}`));
      cursor = res.json.next_cursor;
    } while (cursor !== null);
    expect(records).toEqual([
      'e2e-r 2024-05-01T13:00:00Z',
      'e2e-a 2024-05-01T12:00:00Z',
      'e2e-v 2024-05-01T11:00:00Z',
      // Timestamps as they were sent.
      'e2e-b 2024-05-01T12:00:00+02:00',
      'e2e-a 2024-05-01T10:00:00Z',
      'e2e-a 2024-05-01T09:00:00Z',
      `${C} 2021-09-29T16:09:15+01:00`,
      `${C} 2021-09-29T16:08:15+01:00`,
    ]);
    expect((await get(t, '/devices/e2e-a')).json).toEqual({
      data: { '2024-05-01T09:00:00Z': 1, '2024-05-01T10:00:00Z': 3, '2024-05-01T12:00:00Z': 4 },
      latest_timestamp: '2024-05-01T12:00:00Z',
      cumulative_count: 8,
    });
    expect((await get(t, `/api/device-readings/${C}/latest-timestamp`)).json).toEqual({ timestamp: '2021-09-29T16:09:15+0100' });
    expect((await get(t, `/api/device-readings/${C}/cumulative-count`)).json).toEqual({ cumulative_count: 5 });
    const vitals = await get(t, '/vital-data?sortBy=deviceId&orderBy=asc&count=1&offset=0');
    expect(vitals.json.total).toBe(5);
  });
}

describe('end to end on SQLite', () => {
  endToEnd(async () => {
    const t = await startTally();
    return { t, close: () => t.stop() };
  });
});

// One describePg around both: without TALLY_TEST_PG_URL they are one skipped line.
describePg('on PostgreSQL', () => {
  describe('end to end on PostgreSQL', () => {
    let db: TestDatabase;
    endToEnd(async () => {
      db = await createDatabase();
      const t = await startTally({ TALLY_STORE: db.url });
      return {
        t,
        close: async () => {
          await t.stop();
          await db.drop();
        },
      };
    });
  });

  describe('PostgreSQL connections killed under HTTP load', () => {
    test('clients see 200 or 503 with Retry-After, never another error; the next writes succeed; every acknowledged reading is stored once', async () => {
      const db = await createDatabase();
      const t = await startTally({ TALLY_STORE: db.url });
      try {
        const acknowledged: string[] = [];
        const statuses = new Map<number, number>();
        let next = 0;
        let stop = false;
        const client = async () => {
          while (!stop) {
            const body = Array.from({ length: 50 }, () => {
              const n = next++;
              return { device_id: `out-${n % 20}`, ts: new Date(Date.UTC(2024, 0, 1) + n).toISOString(), count: 1 };
            });
            const res = await t.tally.server.inject({ method: 'POST', url: '/v1/readings', payload: body });
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            if (res.statusCode === 200) {
              expect(res.json()).toEqual({ accepted: 50, duplicates: 0, rejected: [] });
              acknowledged.push(...body.map((r) => `${r.device_id} ${Date.parse(r.ts) * 1000}`));
            } else {
              expect(res.statusCode, res.body).toBe(503);
              expect(res.headers['retry-after']).toBeDefined();
            }
          }
        };
        const clients = Array.from({ length: 8 }, client);
        await db.killConnections(15, 50);
        stop = true;
        await Promise.all(clients);
        expect([...statuses.keys()].sort()).toEqual([200, 503]);
        const after = await post(t, '/v1/readings', [{ device_id: 'out-after', ts: '2024-01-02T00:00:00Z' }]);
        expect([after.status, after.json]).toEqual([200, { accepted: 1, duplicates: 0, rejected: [] }]);
        const stored = new Set(
          (await db.query<{ k: string }>(`SELECT device_id || ' ' || ts_us AS k FROM readings WHERE device_id LIKE 'out-%'`)).map((r) => r.k),
        );
        expect(acknowledged.filter((k) => !stored.has(k))).toEqual([]);
      } finally {
        await t.stop();
        await db.drop();
      }
    });
  });
});
