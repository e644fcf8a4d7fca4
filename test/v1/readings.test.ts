import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, postReadings, type Harness } from '../http/client.js';

/** POST /v1/readings with a JSON array body. */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

async function history(id: string, query = ''): Promise<any[]> {
  const res = await get(t, `/v1/devices/${encodeURIComponent(id)}/readings?limit=1000${query}`);
  expect(res.status, res.text).toBe(200);
  return res.json.items;
}

describe('JSON array', () => {
  test('many devices in one request: 200, every reading stored with its count and payload', async () => {
    const res = await postReadings(t, [
      { device_id: 'ra-1', ts: '2024-05-01T10:00:00Z', count: 3, payload: { heartRateValue: 88, nested: { a: [1, 'x', null, true] } } },
      { device_id: 'ra-2', ts: '2024-05-01T10:00:00.123456+02:00', count: 0 },
      { device_id: 'ra-1', ts: '2024-05-01T09:00:00Z' },
      { device_id: 'ra-3', ts: '2024-05-01T10:00:00+0100', payload: { unicode: 'ß→😀' } },
    ]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ accepted: 4, duplicates: 0, rejected: [] });

    expect(await history('ra-1')).toEqual([
      { device_id: 'ra-1', ts: '2024-05-01T09:00:00Z', count: null, payload: null },
      { device_id: 'ra-1', ts: '2024-05-01T10:00:00Z', count: 3, payload: { heartRateValue: 88, nested: { a: [1, 'x', null, true] } } },
    ]);
    expect(await history('ra-2')).toEqual([{ device_id: 'ra-2', ts: '2024-05-01T08:00:00.123456Z', count: 0, payload: null }]);
    expect(await history('ra-3')).toEqual([{ device_id: 'ra-3', ts: '2024-05-01T09:00:00Z', count: null, payload: { unicode: 'ß→😀' } }]);

    const d1 = await get(t, '/v1/devices/ra-1');
    // count is optional: a reading without one adds nothing to the cumulative count.
    expect(d1.json).toEqual({
      device_id: 'ra-1',
      first_ts: '2024-05-01T09:00:00Z',
      latest_ts: '2024-05-01T10:00:00Z',
      reading_count: 2,
      cumulative_count: 3,
      latest_payload: { heartRateValue: 88, nested: { a: [1, 'x', null, true] } },
    });
  });

  test('some readings rejected: 207, each by index and field, the valid ones stored', async () => {
    const res = await postReadings(t, [
      { device_id: 'rb-1', ts: '2024-05-02T00:00:00Z', count: 1 }, // 0 ok
      { ts: '2024-05-02T00:00:00Z' }, // 1 no device_id
      { device_id: 'rb-1', ts: '2024-05-02T00:00:00' }, // 2 no zone
      { device_id: 'rb-1', ts: '2021-02-30T00:00:00Z' }, // 3 impossible date
      { device_id: 'rb-1', ts: '2024-05-02T00:00:01Z', count: -1 }, // 4 negative count
      { device_id: 'rb-1', ts: '2024-05-02T00:00:02Z', count: '3' }, // 5 count as text
      { device_id: 'rb-1', ts: '2024-05-02T00:00:03Z', payload: [1, 2] }, // 6 payload not an object
      7, // 7 not an object
      { device_id: 'rb-2', ts: '2024-05-02T00:00:00Z', count: 5 }, // 8 ok
      { device_id: 'x'.repeat(257), ts: '2024-05-02T00:00:00Z' }, // 9 id too long
      { device_id: 'rb-1', ts: 'yesterday' }, // 10 free-form
      { device_id: 'rb-1', ts: '2024-05-02T00:00:04Z', count: 1.5 }, // 11 fractional count
    ]);
    expect(res.status).toBe(207);
    expect(res.json.accepted).toBe(2);
    expect(res.json.duplicates).toBe(0);
    const rejected = res.json.rejected as Array<{ index: number; field: string; message: string }>;
    expect(rejected.map((r) => [r.index, r.field])).toEqual([
      [1, 'device_id'],
      [2, 'ts'],
      [3, 'ts'],
      [4, 'count'],
      [5, 'count'],
      [6, 'payload'],
      [7, 'reading'],
      [9, 'device_id'],
      [10, 'ts'],
      [11, 'count'],
    ]);
    for (const r of rejected) {
      expect(Object.keys(r).sort()).toEqual(['field', 'index', 'message', 'status']);
      expect(r).toHaveProperty('status', 400);
      expect(r.message).toContain(r.field === 'reading' ? 'object' : r.field);
    }
    expect(rejected[2]!.message).toContain('2021-02-30');
    expect((await history('rb-1')).map((r) => r.ts)).toEqual(['2024-05-02T00:00:00Z']);
    expect((await get(t, '/v1/devices/rb-2')).json.cumulative_count).toBe(5);
  });

  test('every reading rejected: 400 with the per-reading list, nothing stored', async () => {
    const res = await postReadings(t, [
      { device_id: 'rc-1', ts: 'not a time' },
      { device_id: '', ts: '2024-05-02T00:00:00Z' },
      { device_id: 'rc-1\u0007', ts: '2024-05-02T00:00:00Z' },
    ]);
    expect(res.status).toBe(400);
    expect(res.json.accepted).toBe(0);
    expect(res.json.duplicates).toBe(0);
    expect(res.json.rejected.map((r: any) => [r.index, r.field])).toEqual([
      [0, 'ts'],
      [1, 'device_id'],
      [2, 'device_id'],
    ]);
    expect((await get(t, '/v1/devices/rc-1')).status).toBe(404);
  });

  test('atomic=true: one bad reading stores none of them', async () => {
    const batch = [
      { device_id: 'rd-1', ts: '2024-05-03T00:00:00Z', count: 1 },
      { device_id: 'rd-2', ts: '2024-05-03T00:00:00Z', count: 1 },
      { device_id: 'rd-1', ts: '2024-05-03T00:00:01', count: 1 },
    ];
    const res = await postReadings(t, batch, '?atomic=true');
    expect(res.status).toBe(400);
    expect(res.json.accepted).toBe(0);
    expect(res.json.duplicates).toBe(0);
    expect(res.json.rejected).toHaveLength(1);
    expect(res.json.rejected[0]).toMatchObject({ index: 2, field: 'ts' });
    expect((await get(t, '/v1/devices/rd-1')).status).toBe(404);
    expect((await get(t, '/v1/devices/rd-2')).status).toBe(404);

    // The same request without the bad reading goes through whole, and atomic=false is partial.
    const ok = await postReadings(t, batch.slice(0, 2), '?atomic=true');
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    const partial = await postReadings(t, [{ device_id: 'rd-3', ts: '2024-05-03T00:00:00Z' }, { device_id: 'rd-3' }], '?atomic=false');
    expect(partial.status).toBe(207);
    expect(partial.json.accepted).toBe(1);

    const bad = await postReadings(t, batch, '?atomic=perhaps');
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('atomic');
  });

  test('duplicates are counted, never stored twice; the first write wins', async () => {
    const first = await postReadings(t, [{ device_id: 're-1', ts: '2024-05-04T12:00:00Z', count: 7, payload: { v: 1 } }]);
    expect(first.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    // The same instant with another offset is the same reading; so is a second copy in one request.
    const again = await postReadings(t, [
      { device_id: 're-1', ts: '2024-05-04T14:00:00+02:00', count: 100, payload: { v: 2 } },
      { device_id: 're-1', ts: '2024-05-04T12:00:00.000000Z', count: 100, payload: { v: 3 } },
      { device_id: 're-1', ts: '2024-05-04T12:00:01Z', count: 2, payload: { v: 4 } },
      { device_id: 're-1', ts: '2024-05-04T12:00:01Z', count: 50, payload: { v: 5 } },
    ]);
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ accepted: 1, duplicates: 3, rejected: [] });
    expect(await history('re-1')).toEqual([
      { device_id: 're-1', ts: '2024-05-04T12:00:00Z', count: 7, payload: { v: 1 } },
      { device_id: 're-1', ts: '2024-05-04T12:00:01Z', count: 2, payload: { v: 4 } },
    ]);
    const d = (await get(t, '/v1/devices/re-1')).json;
    expect(d.reading_count).toBe(2);
    expect(d.cumulative_count).toBe(9);
    expect(d.latest_payload).toEqual({ v: 4 });
  });

  test('out of order: a late older reading counts but does not become the latest', async () => {
    await postReadings(t, [{ device_id: 'rf-1', ts: '2024-05-05T12:00:00Z', count: 1, payload: { p: 'new' } }]);
    // A read makes the store compact what it has acknowledged before answering, so the older
    // reading below reaches the summary in a later compaction round (in one round, a latest that
    // followed arrival would still come out right).
    expect((await get(t, '/v1/devices/rf-1')).json.latest_ts).toBe('2024-05-05T12:00:00Z');
    await postReadings(t, [{ device_id: 'rf-1', ts: '2024-05-05T11:00:00Z', count: 10, payload: { p: 'old' } }]);
    expect((await get(t, '/v1/devices/rf-1')).json).toEqual({
      device_id: 'rf-1',
      first_ts: '2024-05-05T11:00:00Z',
      latest_ts: '2024-05-05T12:00:00Z',
      reading_count: 2,
      cumulative_count: 11,
      latest_payload: { p: 'new' },
    });
  });
});

describe('numeric ts and precision', () => {
  test('a number without ?precision is refused, naming ts and precision', async () => {
    const res = await postReadings(t, [{ device_id: 'rp-0', ts: 1714550400 }]);
    expect(res.status).toBe(400);
    expect(res.json.rejected).toHaveLength(1);
    expect(res.json.rejected[0].index).toBe(0);
    expect(res.json.rejected[0].field).toBe('ts');
    expect(res.json.rejected[0].message).toContain('precision');
    expect((await get(t, '/v1/devices/rp-0')).status).toBe(404);
  });

  test.each([
    ['s', 1714550400, '2024-05-01T08:00:00Z'],
    ['s', 1714550400.25, '2024-05-01T08:00:00.250Z'],
    ['ms', 1714550400123, '2024-05-01T08:00:00.123Z'],
    ['ms', 1714550400123.5, '2024-05-01T08:00:00.123500Z'],
    ['us', 1714550400123456, '2024-05-01T08:00:00.123456Z'],
    ['us', 1714550400000001, '2024-05-01T08:00:00.000001Z'],
  ] as const)('precision=%s: %s is stored as %s', async (precision, ts, expected) => {
    const id = `rp-${precision}-${ts}`;
    const res = await postReadings(t, [{ device_id: id, ts, count: 1 }], `?precision=${precision}`);
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await history(id)).toEqual([{ device_id: id, ts: expected, count: 1, payload: null }]);
    // The same instant sent as RFC 3339 is the same reading.
    const dup = await postReadings(t, [{ device_id: id, ts: expected }]);
    expect(dup.json).toEqual({ accepted: 0, duplicates: 1, rejected: [] });
  });

  test('precision applies to numbers only; strings in the same request stay RFC 3339', async () => {
    const res = await postReadings(
      t,
      [
        { device_id: 'rp-mix', ts: 1714550400000 },
        { device_id: 'rp-mix', ts: '2024-05-01T08:00:01Z' },
        { device_id: 'rp-mix', ts: 1714550400000 + 2 ** -12 }, // 0.244 us: finer than a microsecond
        { device_id: 'rp-mix', ts: 1e30 }, // out of range
      ],
      '?precision=ms',
    );
    expect(res.status).toBe(207);
    expect(res.json.accepted).toBe(2);
    expect(res.json.rejected.map((r: any) => [r.index, r.field])).toEqual([
      [2, 'ts'],
      [3, 'ts'],
    ]);
    expect((await history('rp-mix')).map((r) => r.ts)).toEqual(['2024-05-01T08:00:00Z', '2024-05-01T08:00:01Z']);
  });

  test('an unknown precision is a 400 naming precision', async () => {
    const res = await postReadings(t, [{ device_id: 'rp-ns', ts: 1 }], '?precision=ns');
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('InvalidInput');
    expect(res.json.error.field).toBe('precision');
    expect(res.json.error.message).toContain('s, ms, us');
  });
});

describe('request-level errors', () => {
  test('a body that is not an array is a 400 naming body', async () => {
    for (const body of [{ device_id: 'rg-1', ts: '2024-05-01T00:00:00Z' }, 'text', 42, null]) {
      const res = await postReadings(t, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.code).toBe('InvalidInput');
      expect(res.json.error.field).toBe('body');
    }
    expect((await get(t, '/v1/devices/rg-1')).status).toBe(404);
  });

  test('an empty array is a 400 naming body', async () => {
    const res = await postReadings(t, []);
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe('body');
  });

  test('malformed JSON is a 400', async () => {
    const res = await postReadings(t, '[{"device_id": "rh-1", "ts": ');
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('InvalidInput');
    expect(res.json.error.message).toMatch(/^body is not valid JSON/);
  });

  test('content types with parameters are accepted', async () => {
    const body = JSON.stringify([{ device_id: 'rj-1', ts: '2024-05-01T00:00:00Z', count: 1 }]);
    const json = await post(t, '/v1/readings', body, { 'content-type': 'application/json; charset=utf-8' });
    expect(json.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    const nd = await post(t, '/v1/readings', '{"device_id":"rj-1","ts":"2024-05-01T00:00:01Z","count":1}\n', {
      'content-type': 'application/x-ndjson; charset=utf-8',
    });
    expect(nd.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect((await get(t, '/v1/devices/rj-1')).json.reading_count).toBe(2);
  });

  test('a wrong content type is a 415', async () => {
    const body = JSON.stringify([{ device_id: 'ri-1', ts: '2024-05-01T00:00:00Z' }]);
    for (const contentType of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
      const res = await post(t, '/v1/readings', body, { 'content-type': contentType });
      expect(res.status, contentType).toBe(415);
      expect(res.json.error.code).toBe('UnsupportedMediaType');
    }
    expect((await get(t, '/v1/devices/ri-1')).status).toBe(404);
  });
});

describe('TALLY_MAX_READINGS', () => {
  let small: Harness;
  beforeAll(async () => {
    small = await startTally({ TALLY_MAX_READINGS: '5', TALLY_BODY_LIMIT: '2KiB' });
  });
  afterAll(() => small.stop());

  const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ device_id: 'rm-1', ts: `2024-05-01T00:00:0${i}Z`, count: 1 }));

  test('more readings than the limit is a 413 and stores nothing', async () => {
    const res = await postReadings(small, batch(6));
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe('TooManyReadings');
    expect(res.json.error.message).toContain('at most 5');
    expect((await get(small, '/v1/devices/rm-1')).status).toBe(404);
    // Invalid readings count toward the limit too: the check comes before any per-reading work.
    expect((await postReadings(small, [...batch(5), 1])).status).toBe(413);
  });

  test('a JSON body over TALLY_BODY_LIMIT is a 413 and stores nothing', async () => {
    const res = await postReadings(small, [{ device_id: 'rm-2', ts: '2024-05-01T00:00:00Z', payload: { pad: 'x'.repeat(3000) } }]);
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe('PayloadTooLarge');
    expect((await get(small, '/v1/devices/rm-2')).status).toBe(404);
  });

  test('exactly the limit is accepted', async () => {
    const res = await postReadings(small, batch(5));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ accepted: 5, duplicates: 0, rejected: [] });
    expect((await get(small, '/v1/devices/rm-1')).json.cumulative_count).toBe(5);
  });
});
