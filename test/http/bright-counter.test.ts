import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from './client.js';

/** Seed 002, Bright Counter: /api/ping, /api/device-readings/... */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

const create = (body: unknown) => post(t, '/api/device-readings/create', body);
const latest = (id: string) => get(t, `/api/device-readings/${id}/latest-timestamp`);
const cumulative = (id: string) => get(t, `/api/device-readings/${id}/cumulative-count`);

function expectSeedError(res: { status: number; json: any }, status: number, mentions: RegExp) {
  expect(res.status).toBe(status);
  expect(Object.keys(res.json).sort()).toEqual(['error_message', 'status', 'status_code']);
  expect(res.json.status).toBe('error');
  expect(res.json.status_code).toBe(status);
  expect(typeof res.json.error_message).toBe('string');
  expect(res.json.error_message).toMatch(mentions);
}

test('GET /api/ping answers {"status":"ok"}', async () => {
  const res = await get(t, '/api/ping');
  expect(res.status).toBe(200);
  expect(res.json).toEqual({ status: 'ok' });
});

describe('POST /api/device-readings/create', () => {
  test('stores readings: 201 {"status":"ok"}, then latest timestamp and cumulative count answer', async () => {
    const id = randomUUID();
    const res = await create({
      id,
      readings: [
        { count: 2, timestamp: '2021-09-29T16:08:15+01:00' },
        { count: 3, timestamp: '2021-09-29T16:09:15+01:00' },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ status: 'ok' });

    const ts = await latest(id);
    expect(ts.status).toBe(200);
    expect(ts.json).toEqual({ timestamp: '2021-09-29T16:09:15+0100' });

    const sum = await cumulative(id);
    expect(sum.status).toBe(200);
    expect(sum.json).toEqual({ cumulative_count: 5 });
  });

  test('latest timestamp keeps the offset it was sent with, in %Y-%m-%dT%H:%M:%S%z form', async () => {
    const cases: Array<[string, string]> = [
      ['2021-09-29T16:09:15+01:00', '2021-09-29T16:09:15+0100'],
      ['2021-09-29T16:09:15-0530', '2021-09-29T16:09:15-0530'],
      ['2021-09-29T16:09:15Z', '2021-09-29T16:09:15+0000'],
      // No fraction in the seed's form.
      ['2021-09-29T16:09:15.987654+02:00', '2021-09-29T16:09:15+0200'],
    ];
    for (const [sent, expected] of cases) {
      const id = randomUUID();
      expect((await create({ id, readings: [{ count: 1, timestamp: sent }] })).status).toBe(201);
      expect((await latest(id)).json).toEqual({ timestamp: expected });
    }
  });

  test('an older reading arriving later counts but does not replace the latest timestamp', async () => {
    const id = randomUUID();
    expect((await create({ id, readings: [{ count: 4, timestamp: '2021-09-29T16:09:15+01:00' }] })).status).toBe(201);
    // A read makes the store compact what it has acknowledged before answering, so the older
    // reading below reaches the summary in a later compaction round (in one round, a latest that
    // followed arrival would still come out right).
    expect((await latest(id)).json).toEqual({ timestamp: '2021-09-29T16:09:15+0100' });
    // Later in arrival, earlier in time (and sent with another offset).
    expect((await create({ id, readings: [{ count: 6, timestamp: '2021-09-29T10:00:00-04:00' }] })).status).toBe(201);
    expect((await latest(id)).json).toEqual({ timestamp: '2021-09-29T16:09:15+0100' });
    expect((await cumulative(id)).json).toEqual({ cumulative_count: 10 });

    // A newer one does replace it, in its own offset.
    expect((await create({ id, readings: [{ count: 1, timestamp: '2021-09-29T15:09:16Z' }] })).status).toBe(201);
    expect((await latest(id)).json).toEqual({ timestamp: '2021-09-29T15:09:16+0000' });
    expect((await cumulative(id)).json).toEqual({ cumulative_count: 11 });
  });

  test('duplicates (same instant, even written with another offset) are ignored and the request still succeeds', async () => {
    const id = randomUUID();
    expect((await create({ id, readings: [{ count: 5, timestamp: '2021-09-29T16:09:15+01:00' }] })).status).toBe(201);

    // Exact retry.
    const retry = await create({ id, readings: [{ count: 5, timestamp: '2021-09-29T16:09:15+01:00' }] });
    expect(retry.status).toBe(201);
    expect(retry.json).toEqual({ status: 'ok' });
    // Same instant in UTC, with a different count: first write wins.
    const sameInstant = await create({ id, readings: [{ count: 100, timestamp: '2021-09-29T15:09:15Z' }] });
    expect(sameInstant.status).toBe(201);
    expect((await cumulative(id)).json).toEqual({ cumulative_count: 5 });
    // The latest still echoes the first write's offset.
    expect((await latest(id)).json).toEqual({ timestamp: '2021-09-29T16:09:15+0100' });

    // A mixed batch: one duplicate, one new, and the new one twice in the same request.
    const mixed = await create({
      id,
      readings: [
        { count: 7, timestamp: '2021-09-29T16:09:15+0100' },
        { count: 2, timestamp: '2021-09-29T16:10:00+01:00' },
        { count: 2, timestamp: '2021-09-29T15:10:00Z' },
      ],
    });
    expect(mixed.status).toBe(201);
    expect((await cumulative(id)).json).toEqual({ cumulative_count: 7 });
  });

  test('a UUID names the same device in upper and lower case', async () => {
    const id = randomUUID();
    expect((await create({ id: id.toUpperCase(), readings: [{ count: 3, timestamp: '2021-09-29T16:09:15Z' }] })).status).toBe(201);
    expect((await cumulative(id)).json).toEqual({ cumulative_count: 3 });
    expect((await cumulative(id.toUpperCase())).json).toEqual({ cumulative_count: 3 });
  });

  test('an id that is not a UUID → 400 in the seed error shape, naming id', async () => {
    for (const id of ['1234', 'not-a-uuid', '063c5957-8905-45f9-bfe3-96071378891', '', 42, null]) {
      const res = await create({ id, readings: [{ count: 1, timestamp: '2021-09-29T16:09:15+01:00' }] });
      expectSeedError(res, 400, /\bid\b/);
    }
  });

  test('missing id or readings → 400 naming the field', async () => {
    expectSeedError(await create({ readings: [{ count: 1, timestamp: '2021-09-29T16:09:15Z' }] }), 400, /\bid\b/);
    expectSeedError(await create({ id: randomUUID() }), 400, /readings/);
    expectSeedError(await create({ id: randomUUID(), readings: 'many' }), 400, /readings/);
  });

  test('count 0, negative, 1.5, "9", missing, or too large → 400 naming readings[i].count, nothing stored', async () => {
    for (const count of [0, -1, 1.5, '9', null, 2 ** 31, undefined]) {
      const id = randomUUID();
      const reading: Record<string, unknown> = { timestamp: '2021-09-29T16:09:15+01:00' };
      if (count !== undefined) reading.count = count;
      const res = await create({ id, readings: [reading] });
      expectSeedError(res, 400, /readings\[0\]\.count/);
      expectSeedError(await cumulative(id), 404, new RegExp(id));
    }
  });

  test('invalid timestamps → 400 naming readings[i].timestamp', async () => {
    for (const timestamp of ['2021-09-29T16:09:15', '2021-02-30T10:00:00Z', '2021-09-29T24:00:00Z', 'yesterday', 1632928155, '']) {
      const res = await create({ id: randomUUID(), readings: [{ count: 1, timestamp }] });
      expectSeedError(res, 400, /readings\[0\]\.timestamp/);
    }
  });

  test('empty readings → 400', async () => {
    const id = randomUUID();
    expectSeedError(await create({ id, readings: [] }), 400, /readings/);
    expectSeedError(await cumulative(id), 404, /no stored readings/);
  });

  test('one invalid reading among valid ones → 400 and nothing from that request is stored', async () => {
    // A device that already has readings: its count must not move.
    const id = randomUUID();
    expect((await create({ id, readings: [{ count: 10, timestamp: '2021-09-29T16:00:00Z' }] })).status).toBe(201);

    const badTimestamp = await create({
      id,
      readings: [
        { count: 1, timestamp: '2021-09-29T17:00:00Z' },
        { count: 1, timestamp: '2021-09-29T17:00:01Z' },
        { count: 1, timestamp: '2021-02-30T17:00:02Z' },
      ],
    });
    expectSeedError(badTimestamp, 400, /readings\[2\]\.timestamp/);

    const badCount = await create({
      id,
      readings: [
        { count: 1, timestamp: '2021-09-29T18:00:00Z' },
        { count: 0, timestamp: '2021-09-29T18:00:01Z' },
      ],
    });
    expectSeedError(badCount, 400, /readings\[1\]\.count/);

    const schemaLevel = await create({
      id,
      readings: [
        { count: 1, timestamp: '2021-09-29T19:00:00Z' },
        { count: 1.5, timestamp: '2021-09-29T19:00:01Z' },
      ],
    });
    expectSeedError(schemaLevel, 400, /readings\[1\]\.count/);

    expect((await cumulative(id)).json).toEqual({ cumulative_count: 10 });
    expect((await latest(id)).json).toEqual({ timestamp: '2021-09-29T16:00:00+0000' });

    // A new device whose only request was rejected does not exist afterwards.
    const fresh = randomUUID();
    const rejected = await create({
      id: fresh,
      readings: [
        { count: 1, timestamp: '2021-09-29T17:00:00Z' },
        { count: 1, timestamp: 'not a time' },
      ],
    });
    expectSeedError(rejected, 400, /readings\[1\]\.timestamp/);
    expectSeedError(await cumulative(fresh), 404, new RegExp(fresh));
    expectSeedError(await latest(fresh), 404, new RegExp(fresh));
  });
});

describe('GET /api/device-readings/<id>/...', () => {
  test('unknown device → 404 in the seed error shape', async () => {
    const id = randomUUID();
    expectSeedError(await latest(id), 404, /no stored readings/);
    expectSeedError(await cumulative(id), 404, /no stored readings/);
  });

  test('a path id that is not a UUID → 400 in the seed error shape, naming id', async () => {
    for (const id of ['1234', 'not-a-uuid', encodeURIComponent('063c5957-8905-45f9-bfe3-96071378891Z'), 'f'.repeat(300)]) {
      expectSeedError(await latest(id), 400, /\bid\b.*UUID/);
      expectSeedError(await cumulative(id), 400, /\bid\b.*UUID/);
    }
  });
});
