import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { createTally, type Tally } from '../../src/app/tally.js';
import { tempDir } from '../helpers.js';
import { utc } from '../http/client.js';

/**
 * TALLY_RETENTION: readings are first stored by a Tally that keeps everything; a Tally with a 1-day
 * window then opens the same data directory and prunes. History loses the old readings; the device
 * totals stay all-time. Old readings are then refused at ingest.
 */

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const OLD_BULK = 4500; // more than two of the pruner's 2,000-reading batches

let dir: ReturnType<typeof tempDir>;
let tally: Tally;
let now: number;

const env = (extra: Record<string, string> = {}) =>
  loadConfig({ TALLY_DATA_DIR: dir.dir, TALLY_PORT: '0', TALLY_LOG_LEVEL: 'silent', ...extra });

async function json(method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await tally.server.inject({ method, url, ...(body === undefined ? {} : { payload: body as object }) });
  expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
  return { status: res.statusCode, json: JSON.parse(res.body) };
}

beforeAll(async () => {
  dir = tempDir('tally-retention-');
  now = Date.now();
  const keepAll = await createTally(env());
  try {
    expect(keepAll.pruner).toBeUndefined();
    tally = keepAll;
    const readings = [
      { device_id: 'ret-1', ts: utc(now - 3 * DAY), count: 1, payload: { p: 'oldest' } },
      { device_id: 'ret-1', ts: utc(now - 2 * DAY), count: 2 },
      { device_id: 'ret-1', ts: utc(now - 36 * HOUR), count: 3 },
      { device_id: 'ret-1', ts: utc(now - HOUR), count: 4 },
      { device_id: 'ret-1', ts: utc(now - 10 * 60_000), count: 5, payload: { p: 'latest' } },
      { device_id: 'ret-new', ts: utc(now - 23 * HOUR), count: 10 },
      ...Array.from({ length: OLD_BULK }, (_, i) => ({ device_id: `ret-old-${i % 3}`, ts: utc(now - 5 * DAY + i * 1000), count: 1, payload: { i } })),
    ];
    const res = await json('POST', '/v1/readings', readings);
    expect(res.json).toEqual({ accepted: OLD_BULK + 6, duplicates: 0, rejected: [] });
    expect((await json('GET', '/v1/devices/ret-1/readings')).json.items).toHaveLength(5);
  } finally {
    await keepAll.close();
  }

  tally = await createTally(env({ TALLY_RETENTION: '1d' }));
  await tally.server.ready();
  expect(tally.pruner).toBeDefined();
  await tally.pruner!.sweep();
});

afterAll(async () => {
  await tally?.close();
  dir?.cleanup();
});

describe('retention 1d over readings stored without it', () => {
  test('old readings are gone from history; the device totals are unchanged', async () => {
    const history = await json('GET', '/v1/devices/ret-1/readings');
    expect(history.json.items.map((r: any) => [r.ts, r.count])).toEqual([
      [utc(now - HOUR), 4],
      [utc(now - 10 * 60_000), 5],
    ]);
    expect((await json('GET', '/v1/devices/ret-1')).json).toEqual({
      device_id: 'ret-1',
      first_ts: utc(now - 3 * DAY),
      latest_ts: utc(now - 10 * 60_000),
      reading_count: 5,
      cumulative_count: 15,
      latest_payload: { p: 'latest' },
    });
    // The seed surfaces read the same all-time totals.
    expect((await json('GET', '/devices/ret-1/cumulative_count')).json).toEqual({ cumulative_count: 15 });
  });

  test('a device whose readings all aged out keeps its summary and has an empty history', async () => {
    let total = 0;
    for (let k = 0; k < 3; k++) {
      const summary = (await json('GET', `/v1/devices/ret-old-${k}`)).json;
      expect(summary.reading_count).toBe(OLD_BULK / 3);
      expect(summary.cumulative_count).toBe(OLD_BULK / 3);
      total += summary.cumulative_count;
      expect((await json('GET', `/v1/devices/ret-old-${k}/readings`)).json).toEqual({ items: [], next_cursor: null });
      expect((await json('GET', `/v1/devices/ret-old-${k}/aggregate?every=1d&from=${utc(now - 6 * DAY)}&to=${utc(now)}`)).json).toEqual({ buckets: [] });
    }
    expect(total).toBe(OLD_BULK);
  });

  test('/records lists only the retained readings', async () => {
    const res = await json('GET', '/records?limit=1000');
    expect(res.json.records.map((r: any) => [r.device_id, r.count])).toEqual([
      ['ret-1', 5],
      ['ret-1', 4],
      ['ret-new', 10],
    ]);
    expect(res.json.next_cursor).toBeNull();
  });

  test('aggregates only see retained readings', async () => {
    const res = await json('GET', `/v1/devices/ret-1/aggregate?every=1w&fn=count,sum&from=${utc(now - 7 * DAY)}&to=${utc(now + 1000)}`);
    const buckets = res.json.buckets as Array<{ count: number; sum: number }>;
    expect(buckets.reduce((a, b) => a + b.count, 0)).toBe(2);
    expect(buckets.reduce((a, b) => a + b.sum, 0)).toBe(9);
  });

  test('a reading older than the window is refused by index, naming ts; newer ones in the request are stored', async () => {
    const res2 = await json('POST', '/v1/readings?precision=ms', [
      { device_id: 'ret-1', ts: utc(now - 2 * DAY), count: 100 }, // pruned already: must not come back
      { device_id: 'ret-1', ts: utc(now - 30 * 60_000), count: 6 },
      { device_id: 'ret-2', ts: now - 25 * HOUR }, // numeric, same window
    ]);
    expect(res2.status).toBe(207);
    expect(res2.json.accepted).toBe(1);
    expect(res2.json.rejected.map((r: any) => [r.index, r.field])).toEqual([
      [0, 'ts'],
      [2, 'ts'],
    ]);
    expect(res2.json.rejected[0].message).toContain('retention window (1d)');
    const summary = (await json('GET', '/v1/devices/ret-1')).json;
    expect(summary.reading_count).toBe(6);
    expect(summary.cumulative_count).toBe(21);
    expect((await json('GET', '/v1/devices/ret-2')).status).toBe(404);

    // NDJSON is held to the same window.
    const nd = await tally.server.inject({
      method: 'POST',
      url: '/v1/readings',
      headers: { 'content-type': 'application/x-ndjson' },
      payload: `${JSON.stringify({ device_id: 'ret-3', ts: utc(now - 3 * DAY) })}\n`,
    });
    expect(nd.statusCode).toBe(400);
    expect(JSON.parse(nd.body).rejected).toEqual([expect.objectContaining({ index: 0, field: 'ts' })]);
  });

  test('Bright Counter: one reading older than the window refuses the whole request, naming it', async () => {
    const id = '8d3f0c59-6f43-4b7e-9a51-2c1f0e6d7a10';
    const res = await json('POST', '/api/device-readings/create', {
      id,
      readings: [
        { count: 1, timestamp: utc(now - HOUR) },
        { count: 2, timestamp: utc(now - 2 * DAY) },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.json.error_message).toContain('readings[1].timestamp');
    expect(res.json.error_message).toContain('retention window (1d)');
    expect((await json('GET', `/api/device-readings/${id}/cumulative-count`)).status).toBe(404);
    expect((await json('POST', '/api/device-readings/create', { id, readings: [{ count: 1, timestamp: utc(now - HOUR) }] })).status).toBe(201);
  });
});
