import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from './client.js';

/** Seed 004, the device readings API: POST /ingest {id, readings}, GET /devices/:id/... */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

const ingest = (body: unknown) => post(t, '/ingest', body);
const device = () => `dev-${randomUUID()}`;

function expectNotFound(res: { status: number; json: any }, id: string) {
  expect(res.status).toBe(404);
  expect(typeof res.json.error.message).toBe('string');
  expect(res.json.error.message).toContain(id);
}

function expectBadBody(res: { status: number; json: any }, field: string) {
  expect(res.status).toBe(400);
  expect(res.json.results).toBeUndefined();
  expect(typeof res.json.error.message).toBe('string');
  expect(res.json.error.message).toContain(field);
  expect(res.json.error.field).toBe(field);
}

describe('POST /ingest (device readings body)', () => {
  test('all new → 202 with one success result per reading, in order', async () => {
    const id = device();
    const readings = [
      { timestamp: '2023-01-01T00:00:02Z', count: 2 },
      { timestamp: '2023-01-01T00:00:00Z', count: 3 },
      { timestamp: '2023-01-01T02:00:01+02:00', count: 0 },
    ];
    const res = await ingest({ id, readings });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({
      results: [
        { id, timestamp: '2023-01-01T00:00:02Z', success: true, status: 202 },
        { id, timestamp: '2023-01-01T00:00:00Z', success: true, status: 202 },
        { id, timestamp: '2023-01-01T02:00:01+02:00', success: true, status: 202 },
      ],
    });
    expect((await get(t, `/devices/${id}/cumulative_count`)).json).toEqual({ cumulative_count: 5 });
  });

  test('the seed example body is accepted as documented', async () => {
    const id = `${Date.now()}`;
    const res = await ingest({ id, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 3 }] });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ results: [{ id, timestamp: '2023-01-01T00:00:00Z', success: true, status: 202 }] });
  });

  test('duplicates across requests → 207 with status 409 "already recorded", counted once', async () => {
    const id = device();
    expect((await ingest({ id, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 3 }] })).status).toBe(202);

    const res = await ingest({
      id,
      readings: [
        { timestamp: '2023-01-01T00:00:00Z', count: 3 },
        { timestamp: '2023-01-01T00:00:01Z', count: 2 },
        // The first reading's instant, written with another offset: still a duplicate.
        { timestamp: '2023-01-01T01:00:00+01:00', count: 9 },
      ],
    });
    expect(res.status).toBe(207);
    expect(res.json.results).toHaveLength(3);
    expect(res.json.results[0]).toMatchObject({ id, timestamp: '2023-01-01T00:00:00Z', success: false, status: 409 });
    expect(res.json.results[0].error).toMatch(/already recorded/);
    expect(res.json.results[1]).toEqual({ id, timestamp: '2023-01-01T00:00:01Z', success: true, status: 202 });
    expect(res.json.results[2]).toMatchObject({ id, timestamp: '2023-01-01T01:00:00+01:00', success: false, status: 409 });
    expect(res.json.results[2].error).toMatch(/already recorded/);

    expect((await get(t, `/devices/${id}/cumulative_count`)).json).toEqual({ cumulative_count: 5 });
  });

  test('a duplicate within one request → 207, the first stored and the second a 409', async () => {
    const id = device();
    const res = await ingest({
      id,
      readings: [
        { timestamp: '2023-01-01T00:00:00Z', count: 1 },
        { timestamp: '2023-01-01T00:00:00.000Z', count: 4 },
      ],
    });
    expect(res.status).toBe(207);
    expect(res.json.results[0]).toEqual({ id, timestamp: '2023-01-01T00:00:00Z', success: true, status: 202 });
    expect(res.json.results[1]).toMatchObject({ id, timestamp: '2023-01-01T00:00:00.000Z', success: false, status: 409 });
    expect(res.json.results[1].error).toMatch(/already recorded/);
    expect((await get(t, `/devices/${id}/cumulative_count`)).json).toEqual({ cumulative_count: 1 });
  });

  test('invalid readings → their result is a 400 naming the field, valid ones are still stored', async () => {
    const id = device();
    const res = await ingest({
      id,
      readings: [
        { timestamp: '2023-01-01T00:00:00Z', count: 3 },
        { timestamp: '2023-01-01T00:00:01', count: 1 },
        { timestamp: '2023-01-01T00:00:02Z', count: -1 },
        { timestamp: '2023-01-01T00:00:03Z', count: '4' },
        { timestamp: '2023-02-30T00:00:04Z', count: 1 },
        'not an object',
        { count: 1 },
        { timestamp: '2023-01-01T00:00:07Z', count: 4 },
      ],
    });
    expect(res.status).toBe(207);
    const results = res.json.results as Array<Record<string, unknown>>;
    expect(results).toHaveLength(8);
    expect(results.map((r) => r.status)).toEqual([202, 400, 400, 400, 400, 400, 400, 202]);
    expect(results.map((r) => r.success)).toEqual([true, false, false, false, false, false, false, true]);
    expect(results.every((r) => r.id === id)).toBe(true);
    expect(results[1]).toMatchObject({ timestamp: '2023-01-01T00:00:01' });
    expect(results[1]!.error).toMatch(/readings\[1\]\.timestamp/);
    expect(results[2]!.error).toMatch(/readings\[2\]\.count/);
    expect(results[3]!.error).toMatch(/readings\[3\]\.count/);
    expect(results[4]!.error).toMatch(/readings\[4\]\.timestamp/);
    expect(results[5]!.error).toMatch(/readings\[5\]/);
    expect(results[6]!.error).toMatch(/readings\[6\]\.timestamp/);
    expect(results[7]).toEqual({ id, timestamp: '2023-01-01T00:00:07Z', success: true, status: 202 });

    const view = await get(t, `/devices/${id}`);
    expect(view.json).toEqual({
      data: { '2023-01-01T00:00:00Z': 3, '2023-01-01T00:00:07Z': 4 },
      latest_timestamp: '2023-01-01T00:00:07Z',
      cumulative_count: 7,
    });
  });

  test('when every reading is invalid nothing is stored and the answer is 207', async () => {
    const id = device();
    const res = await ingest({ id, readings: [{ timestamp: 'nope', count: 1 }] });
    expect(res.status).toBe(207);
    expect(res.json.results).toEqual([
      { id, timestamp: 'nope', success: false, status: 400, error: expect.stringMatching(/readings\[0\]\.timestamp/) },
    ]);
    expectNotFound(await get(t, `/devices/${encodeURIComponent(id)}`), id);
  });

  test('an unusable body → 400 naming the field, nothing stored', async () => {
    const id = device();
    expectBadBody(await ingest({ id, readings: 'lots' }), 'readings');
    expectBadBody(await ingest({ id, readings: { timestamp: '2023-01-01T00:00:00Z', count: 1 } }), 'readings');
    expectBadBody(await ingest({ id, readings: [] }), 'readings');
    expectBadBody(await ingest({ id }), 'readings');
    expectBadBody(await ingest({ readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 1 }] }), 'id');
    expectBadBody(await ingest({ id: 1234, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 1 }] }), 'id');
    expectBadBody(await ingest({ id: '', readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 1 }] }), 'id');
    expectBadBody(await ingest({ id: 'x'.repeat(257), readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 1 }] }), 'id');
    expectBadBody(await ingest({ id: 'a\nb', readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 1 }] }), 'id');
    expectNotFound(await get(t, `/devices/${id}`), id);
  });

  test('a body that is not an object → 400', async () => {
    for (const body of [[], [{ id: 'x', readings: [] }], 'text', 42, null]) {
      const res = await post(t, '/ingest', JSON.stringify(body));
      expect(res.status).toBe(400);
      expect(typeof res.json.error.message).toBe('string');
      expect(res.json.error.field).toBe('body');
    }
  });
});

describe('GET /devices/:id...', () => {
  test('timestamps come back exactly as sent; latest is the greatest instant, not the last to arrive', async () => {
    const id = device();
    await ingest({
      id,
      readings: [
        { timestamp: '2023-01-01T02:00:00.123456+02:00', count: 3 },
        { timestamp: '2023-01-01T00:00:01Z', count: 2 },
      ],
    });
    // A read makes the store compact what it has acknowledged before answering, so the older
    // reading below reaches the device's summary in a later compaction round than these (in one
    // round, a latest that followed arrival would still come out right).
    expect((await get(t, `/devices/${id}/latest_timestamp`)).json).toEqual({ latest_timestamp: '2023-01-01T00:00:01Z' });
    // Arrives last, is oldest.
    await ingest({ id, readings: [{ timestamp: '2022-12-31T23:59:59.5Z', count: 10 }] });

    const latest = await get(t, `/devices/${id}/latest_timestamp`);
    expect(latest.status).toBe(200);
    expect(latest.json).toEqual({ latest_timestamp: '2023-01-01T00:00:01Z' });

    const sum = await get(t, `/devices/${id}/cumulative_count`);
    expect(sum.status).toBe(200);
    expect(sum.json).toEqual({ cumulative_count: 15 });

    const view = await get(t, `/devices/${id}`);
    expect(view.status).toBe(200);
    expect(view.json).toEqual({
      data: {
        '2022-12-31T23:59:59.5Z': 10,
        '2023-01-01T02:00:00.123456+02:00': 3,
        '2023-01-01T00:00:01Z': 2,
      },
      latest_timestamp: '2023-01-01T00:00:01Z',
      cumulative_count: 15,
    });
    // In time order.
    expect(Object.keys(view.json.data)).toEqual(['2022-12-31T23:59:59.5Z', '2023-01-01T02:00:00.123456+02:00', '2023-01-01T00:00:01Z']);

    // A later reading sent with an offset is echoed with it.
    await ingest({ id, readings: [{ timestamp: '2023-01-01T05:30:02.25+05:30', count: 1 }] });
    expect((await get(t, `/devices/${id}/latest_timestamp`)).json).toEqual({ latest_timestamp: '2023-01-01T05:30:02.25+05:30' });
  });

  test('device ids with URL-significant characters round-trip through the path', async () => {
    const id = `room 1/sensor#2?x=${randomUUID()}`;
    expect((await ingest({ id, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 6 }] })).status).toBe(202);
    const sum = await get(t, `/devices/${encodeURIComponent(id)}/cumulative_count`);
    expect(sum.json).toEqual({ cumulative_count: 6 });
  });

  test('device ids of the full 256 characters are readable, ASCII or not', async () => {
    for (const id of ['L'.repeat(256), 'é'.repeat(128) + '✓'.repeat(128), '\u{1F600}'.repeat(128)]) {
      expect(id.length).toBe(256);
      const res = await ingest({ id, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 8 }] });
      expect(res.status).toBe(202);
      const path = `/devices/${encodeURIComponent(id)}`;
      expect((await get(t, `${path}/cumulative_count`)).json).toEqual({ cumulative_count: 8 });
      expect((await get(t, `${path}/latest_timestamp`)).json).toEqual({ latest_timestamp: '2023-01-01T00:00:00Z' });
      expect((await get(t, path)).json).toEqual({ data: { '2023-01-01T00:00:00Z': 8 }, latest_timestamp: '2023-01-01T00:00:00Z', cumulative_count: 8 });
    }
  });

  test('unknown device → 404 {"error":{"message"}} on each endpoint', async () => {
    const id = device();
    expectNotFound(await get(t, `/devices/${id}/latest_timestamp`), id);
    expectNotFound(await get(t, `/devices/${id}/cumulative_count`), id);
    expectNotFound(await get(t, `/devices/${id}`), id);
  });

  test('Bright Counter and device readings share one device namespace', async () => {
    const id = randomUUID();
    expect((await post(t, '/api/device-readings/create', { id, readings: [{ count: 4, timestamp: '2023-01-01T00:00:00Z' }] })).status).toBe(201);
    const res = await ingest({ id, readings: [{ timestamp: '2023-01-01T00:00:00Z', count: 4 }, { timestamp: '2023-01-01T00:00:01Z', count: 1 }] });
    expect(res.status).toBe(207);
    expect(res.json.results.map((r: { status: number }) => r.status)).toEqual([409, 202]);
    expect((await get(t, `/devices/${id}/cumulative_count`)).json).toEqual({ cumulative_count: 5 });
    expect((await get(t, `/api/device-readings/${id}/cumulative-count`)).json).toEqual({ cumulative_count: 5 });
  });
});
