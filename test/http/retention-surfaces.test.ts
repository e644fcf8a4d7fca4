import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, postNdjson, postReadings, utc, type Answer, type Harness } from './client.js';

/**
 * TALLY_RETENTION on every ingest surface: a reading older than the window is refused (it would be
 * deleted at once), each surface answering in its own documented shape and naming the field, and
 * nothing of the refused reading is stored. A reading inside the window, sent the same way, is
 * stored, so the refusal is the window's and not some other check's.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let t: Harness;
let now: number;
beforeAll(async () => {
  t = await startTally({ TALLY_RETENTION: '1d' });
  now = Date.now();
});
afterAll(() => t.stop());

/** Times relative to the start, well clear of the window's edge on either side. */
const old = () => now - 2 * DAY;
const recent = () => now - HOUR;
const device = (label: string) => `${label}-${randomUUID()}`;
const MENTIONS_WINDOW = /retention window \(1d\)/;

/** The device as /v1 sees it: its summary, or 404. */
const summary = (id: string) => get(t, `/v1/devices/${encodeURIComponent(id)}`);

async function expectNothingStored(id: string): Promise<void> {
  const res = await summary(id);
  expect(res.status, `${id} should have no stored readings: ${res.text}`).toBe(404);
}

/** Total readings stored, over every device (the /records listing counts them all). */
async function storedTotal(): Promise<number> {
  const res = await get(t, '/records?limit=1000');
  expect(res.status).toBe(200);
  expect(res.json.next_cursor).toBeNull();
  return res.json.records.length;
}

describe('POST /v1/readings: refused per reading in `rejected`, by index, naming ts', () => {
  test('JSON array: the old reading is rejected; the recent ones of the request are stored', async () => {
    const kept = device('v1-kept');
    const refused = device('v1-refused');
    const before = await storedTotal();
    const res = await postReadings(t, [
      { device_id: kept, ts: utc(recent()), count: 1 },
      { device_id: refused, ts: utc(old()), count: 5 },
      { device_id: kept, ts: utc(old()), count: 7 },
    ]);
    expect(res.status).toBe(207);
    expect(res.json.accepted).toBe(1);
    expect(res.json.duplicates).toBe(0);
    expect(res.json.rejected.map((r: any) => [r.index, r.field])).toEqual([
      [1, 'ts'],
      [2, 'ts'],
    ]);
    for (const r of res.json.rejected) expect(r.message).toMatch(MENTIONS_WINDOW);

    await expectNothingStored(refused);
    const k = (await summary(kept)).json;
    expect(k).toMatchObject({ reading_count: 1, cumulative_count: 1, first_ts: utc(recent()), latest_ts: utc(recent()) });
    expect(await storedTotal()).toBe(before + 1);

    // Numeric timestamps are held to the same window; every reading refused is a 400.
    const numeric = await postReadings(t, [{ device_id: refused, ts: old(), count: 1 }], '?precision=ms');
    expect(numeric.status).toBe(400);
    expect(numeric.json).toMatchObject({ accepted: 0, duplicates: 0, rejected: [{ index: 0, field: 'ts' }] });
    expect(numeric.json.rejected[0].message).toMatch(MENTIONS_WINDOW);
    await expectNothingStored(refused);
  });

  test('NDJSON: the old line is rejected by its index; the recent one is stored', async () => {
    const kept = device('nd-kept');
    const refused = device('nd-refused');
    const before = await storedTotal();
    const lines = [
      { device_id: refused, ts: utc(old()), count: 5 },
      { device_id: kept, ts: utc(recent()), count: 2 },
    ];
    const res = await postNdjson(t, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    expect(res.status).toBe(207);
    expect(res.json).toMatchObject({ accepted: 1, duplicates: 0, rejected: [{ index: 0, field: 'ts' }] });
    expect(res.json.rejected).toHaveLength(1);
    expect(res.json.rejected[0].message).toMatch(MENTIONS_WINDOW);

    await expectNothingStored(refused);
    expect((await summary(kept)).json).toMatchObject({ reading_count: 1, cumulative_count: 2 });
    expect(await storedTotal()).toBe(before + 1);
  });
});

describe('POST /api/device-readings/create (Bright Counter): all or nothing', () => {
  test('one old reading refuses the request: 400 in the seed shape naming readings[i].timestamp; nothing stored', async () => {
    const id = randomUUID();
    const before = await storedTotal();
    const res = await post(t, '/api/device-readings/create', {
      id,
      readings: [
        { count: 1, timestamp: utc(recent()) },
        { count: 2, timestamp: utc(old()) },
      ],
    });
    expect(res.status).toBe(400);
    expect(Object.keys(res.json).sort()).toEqual(['error_message', 'status', 'status_code']);
    expect(res.json.status).toBe('error');
    expect(res.json.status_code).toBe(400);
    expect(res.json.error_message).toContain('readings[1].timestamp');
    expect(res.json.error_message).toMatch(MENTIONS_WINDOW);

    // Not even the recent reading of the refused request.
    expect((await get(t, `/api/device-readings/${id}/cumulative-count`)).status).toBe(404);
    await expectNothingStored(id);
    expect(await storedTotal()).toBe(before);

    // The recent reading alone is stored.
    expect((await post(t, '/api/device-readings/create', { id, readings: [{ count: 1, timestamp: utc(recent()) }] })).status).toBe(201);
    expect((await get(t, `/api/device-readings/${id}/cumulative-count`)).json).toEqual({ cumulative_count: 1 });
  });
});

describe('POST /ingest', () => {
  /** The result of each reading, by index, in the seed-004 shape. */
  function resultAt(res: Answer, i: number): any {
    expect(Array.isArray(res.json.results), res.text).toBe(true);
    return res.json.results[i];
  }

  test('device-readings body: the old reading is answered status 400 in `results`, naming it; the others are stored (207)', async () => {
    const id = device('ingest-dr');
    const before = await storedTotal();
    const oldTs = utc(old());
    const res = await post(t, '/ingest', {
      id,
      readings: [
        { timestamp: utc(recent()), count: 3 },
        { timestamp: oldTs, count: 40 },
      ],
    });
    expect(res.status).toBe(207);
    expect(res.json.results).toHaveLength(2);
    expect(resultAt(res, 0)).toMatchObject({ id, timestamp: utc(recent()), success: true });
    const refused = resultAt(res, 1);
    expect(refused).toMatchObject({ id, timestamp: oldTs, success: false, status: 400 });
    expect(refused.error).toContain('readings[1].timestamp');
    expect(refused.error).toMatch(MENTIONS_WINDOW);

    // Only the recent reading is the device's.
    const view = await get(t, `/devices/${id}`);
    expect(view.status).toBe(200);
    expect(view.json).toEqual({ data: { [utc(recent())]: 3 }, latest_timestamp: utc(recent()), cumulative_count: 3 });
    expect(await storedTotal()).toBe(before + 1);
  });

  test('device-readings body with only old readings: each refused, nothing stored', async () => {
    const id = device('ingest-dr-old');
    const before = await storedTotal();
    const res = await post(t, '/ingest', { id, readings: [{ timestamp: utc(old()), count: 1 }] });
    expect(res.status).toBe(207);
    expect(res.json.results).toHaveLength(1);
    expect(resultAt(res, 0)).toMatchObject({ id, success: false, status: 400 });
    expect(resultAt(res, 0).error).toContain('readings[0].timestamp');
    expect(resultAt(res, 0).error).toMatch(MENTIONS_WINDOW);
    expect((await get(t, `/devices/${id}`)).status).toBe(404);
    expect(await storedTotal()).toBe(before);
  });

  test('record body: 400 {"error":{code, message, field: "timestamp"}}; nothing stored', async () => {
    const id = device('ingest-rec');
    const before = await storedTotal();
    const res = await post(t, '/ingest', { device_id: id, timestamp: utc(old()), data_payload: { gene_count: 12 } });
    expect(res.status).toBe(400);
    expect(Object.keys(res.json)).toEqual(['error']);
    expect(res.json.error.code).toBe('InvalidInput');
    expect(res.json.error.field).toBe('timestamp');
    expect(res.json.error.message).toMatch(MENTIONS_WINDOW);
    expect((await get(t, `/devices/${id}`)).status).toBe(404);
    expect(await storedTotal()).toBe(before);

    // A recent record of the same device is stored.
    expect((await post(t, '/ingest', { device_id: id, timestamp: utc(recent()), data_payload: { gene_count: 12 } })).status).toBe(201);
    expect(await storedTotal()).toBe(before + 1);
  });
});

describe('POST /vital-data', () => {
  test('epoch seconds older than the window: 400 Invalid payload with an issue at timestamp; nothing stored', async () => {
    const id = device('vital');
    const devicesBefore = (await get(t, '/vital-data?count=100')).json.total;
    const before = await storedTotal();
    const res = await post(t, '/vital-data', { device: id, timestamp: Math.floor(old() / 1000), heartRateValue: 88 });
    expect(res.status).toBe(400);
    expect(res.json.status).toBe('error');
    expect(res.json.message).toBe('Invalid payload');
    expect(res.json.issues).toHaveLength(1);
    expect(res.json.issues[0].path).toEqual(['timestamp']);
    expect(res.json.issues[0].message).toMatch(MENTIONS_WINDOW);

    const list = await get(t, '/vital-data?count=100');
    expect(list.json.total).toBe(devicesBefore);
    expect(list.json.resources.map((r: any) => r.deviceId)).not.toContain(id);
    await expectNothingStored(id);
    expect(await storedTotal()).toBe(before);

    // A recent measurement of the same device is stored.
    expect((await post(t, '/vital-data', { device: id, timestamp: Math.floor(recent() / 1000), heartRateValue: 88 })).status).toBe(202);
    expect((await get(t, '/vital-data?count=100')).json.total).toBe(devicesBefore + 1);
  });
});
