import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from './client.js';

/** Seed 003, vital data: POST /vital-data (integer Unix seconds, numeric vitals), GET /vital-data (latest per device). */

const T0 = 1750240800; // 2025-06-18T10:00:00Z
const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');

interface Resource {
  deviceId: string;
  heartRate: number | null;
  breathRate: number | null;
  bloodPressureSystolic: number | null;
  bloodPressureDiastolic: number | null;
  lastUpdated: string;
  [extra: string]: unknown;
}

function expectInvalid(res: { status: number; json: any }, path: string) {
  expect(res.status).toBe(400);
  expect(res.json.status).toBe('error');
  expect(res.json.message).toBe('Invalid payload');
  expect(Array.isArray(res.json.issues)).toBe(true);
  expect(res.json.issues.length).toBeGreaterThan(0);
  const issue = res.json.issues.find((i: { path: unknown[] }) => i.path.join('.') === path);
  expect(issue, `an issue at ${path} in ${JSON.stringify(res.json.issues)}`).toBeDefined();
  expect(issue.message).toContain(path);
}

describe('POST /vital-data', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
  });
  afterAll(() => t.stop());
  const vital = (body: unknown) => post(t, '/vital-data', body);

  test('the seed examples → 202 {"status":"accepted"}, readable at once, extra numeric fields kept', async () => {
    const a = await vital({ device: 'fitband-alpha', timestamp: T0, heartRateValue: 88 });
    expect(a.status).toBe(202);
    expect(a.json).toEqual({ status: 'accepted' });
    const b = await vital({ device: 'smart-scale-beta', timestamp: T0 + 60, bloodPressureSystolic: 118, bloodPressureDiastolic: 78, spo2: 97.5, steps: 0 });
    expect(b.status).toBe(202);
    expect(b.json).toEqual({ status: 'accepted' });

    const list = await get(t, '/vital-data');
    expect(list.status).toBe(200);
    expect(list.json.total).toBe(2);
    expect(list.json.resources).toEqual([
      {
        deviceId: 'smart-scale-beta',
        heartRate: null,
        breathRate: null,
        bloodPressureSystolic: 118,
        bloodPressureDiastolic: 78,
        spo2: 97.5,
        steps: 0,
        lastUpdated: '2025-06-18T10:01:00Z',
      },
      {
        deviceId: 'fitband-alpha',
        heartRate: 88,
        breathRate: null,
        bloodPressureSystolic: null,
        bloodPressureDiastolic: null,
        lastUpdated: '2025-06-18T10:00:00Z',
      },
    ]);
  });

  test('the latest state is the newest timestamp, not the last arrival; a duplicate changes nothing', async () => {
    expect((await vital({ device: 'late', timestamp: T0 + 500, heartRateValue: 90, breathRateValue: 14 })).status).toBe(202);
    // A read makes the store compact what it has acknowledged before answering, so the older
    // measurement below reaches the latest state in a later compaction round (in one round, a
    // latest that followed arrival would still come out right).
    const first = (await get(t, '/vital-data?sortBy=deviceId&orderBy=asc&count=100')).json.resources as Resource[];
    expect(first.find((r) => r.deviceId === 'late')).toMatchObject({ heartRate: 90, lastUpdated: iso(T0 + 500) });
    expect((await vital({ device: 'late', timestamp: T0 + 100, heartRateValue: 50, breathRateValue: 10 })).status).toBe(202);
    // Same device, same second, other values: first write wins.
    expect((await vital({ device: 'late', timestamp: T0 + 500, heartRateValue: 200 })).status).toBe(202);

    const list = await get(t, '/vital-data?sortBy=deviceId&orderBy=asc&count=100');
    const late = (list.json.resources as Resource[]).find((r) => r.deviceId === 'late');
    expect(late).toEqual({
      deviceId: 'late',
      heartRate: 90,
      breathRate: 14,
      bloodPressureSystolic: null,
      bloodPressureDiastolic: null,
      lastUpdated: iso(T0 + 500),
    });
    // A newer one replaces it.
    expect((await vital({ device: 'late', timestamp: T0 + 501, heartRate: 77 })).status).toBe(202);
    const after = (await get(t, '/vital-data?sortBy=deviceId&orderBy=asc&count=100')).json.resources as Resource[];
    expect(after.find((r) => r.deviceId === 'late')).toMatchObject({ heartRate: 77, breathRate: null, lastUpdated: iso(T0 + 501) });
    // Three readings of one device are one device in the total.
    expect((await get(t, '/vital-data')).json.total).toBe(3);
  });

  test('timestamp as a string or a float → 400 Invalid payload with an issue at timestamp', async () => {
    expectInvalid(await vital({ device: 'bad', timestamp: String(T0), heartRateValue: 88 }), 'timestamp');
    expectInvalid(await vital({ device: 'bad', timestamp: '2025-06-18T10:00:00Z', heartRateValue: 88 }), 'timestamp');
    expectInvalid(await vital({ device: 'bad', timestamp: T0 + 0.5, heartRateValue: 88 }), 'timestamp');
    expectInvalid(await vital({ device: 'bad', timestamp: null }), 'timestamp');
    expectInvalid(await vital({ device: 'bad' }), 'timestamp');
    // An integer outside the supported years.
    expectInvalid(await vital({ device: 'bad', timestamp: 1e12 }), 'timestamp');
  });

  test('non-numeric vitals → 400 with an issue naming the field', async () => {
    expectInvalid(await vital({ device: 'bad', timestamp: T0, heartRateValue: '88' }), 'heartRateValue');
    expectInvalid(await vital({ device: 'bad', timestamp: T0, heartRateValue: null }), 'heartRateValue');
    expectInvalid(await vital({ device: 'bad', timestamp: T0, notes: { text: 'hi' } }), 'notes');
    expectInvalid(await vital({ device: 'bad', timestamp: T0, flags: [1, 2] }), 'flags');
    // Every wrong field is reported.
    const both = await vital({ device: 'bad', timestamp: T0, heartRateValue: 'x', breathRateValue: true });
    expectInvalid(both, 'heartRateValue');
    expectInvalid(both, 'breathRateValue');
  });

  test('a missing or unusable device → 400 with an issue at device', async () => {
    expectInvalid(await vital({ timestamp: T0, heartRateValue: 88 }), 'device');
    expectInvalid(await vital({ device: '', timestamp: T0 }), 'device');
    expectInvalid(await vital({ device: 42, timestamp: T0 }), 'device');
    expectInvalid(await vital({ device: 'a\u0000b', timestamp: T0 }), 'device');
  });

  test('a body that is not an object → 400 Invalid payload', async () => {
    for (const body of ['[]', '"text"', '7', 'null']) {
      const res = await post(t, '/vital-data', body);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ status: 'error', message: 'Invalid payload' });
      expect(res.json.issues.length).toBeGreaterThan(0);
    }
  });

  test('rejected posts store nothing', async () => {
    const list = await get(t, '/vital-data?count=100');
    expect((list.json.resources as Resource[]).some((r) => r.deviceId === 'bad' || r.deviceId === '')).toBe(false);
    expect(list.json.total).toBe(3);
  });
});

describe('GET /vital-data', () => {
  // 25 devices: d00..d24, timestamps T0+0..T0+24 sent in a shuffled order, heart and breath rates
  // in orders of their own.
  let t: Harness;
  const N = 25;
  const hr = (i: number) => 60 + ((i * 7) % N); // a permutation of 60..84
  const br = (i: number) => 10 + ((i * 11) % N); // a permutation of 10..34
  const name = (i: number) => `d${String(i).padStart(2, '0')}`;
  beforeAll(async () => {
    t = await startTally();
    const order = Array.from({ length: N }, (_, i) => (i * 9) % N);
    for (const i of order) {
      const res = await post(t, '/vital-data', { device: name(i), timestamp: T0 + i, heartRateValue: hr(i), breathRateValue: br(i) });
      expect(res.status).toBe(202);
    }
  });
  afterAll(() => t.stop());

  const ids = (res: { json: any }) => (res.json.resources as Resource[]).map((r) => r.deviceId);
  const all = Array.from({ length: N }, (_, i) => i);
  const sortedBy = (key: (i: number) => number | string, dir: 'asc' | 'desc') =>
    [...all].sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      const c = ka < kb ? -1 : ka > kb ? 1 : 0;
      return dir === 'asc' ? c : -c;
    }).map(name);

  test('defaults: 20 resources, newest timestamp first, total of all devices', async () => {
    const res = await get(t, '/vital-data');
    expect(res.status).toBe(200);
    expect(res.json.total).toBe(N);
    expect(res.json.resources).toHaveLength(20);
    expect(ids(res)).toEqual(sortedBy((i) => i, 'desc').slice(0, 20));
    expect(res.json.resources[0]).toEqual({
      deviceId: 'd24',
      heartRate: hr(24),
      breathRate: br(24),
      bloodPressureSystolic: null,
      bloodPressureDiastolic: null,
      lastUpdated: iso(T0 + 24),
    });
  });

  test('each sortBy value orders correctly, both ways', async () => {
    const keys: Record<string, (i: number) => number | string> = {
      deviceId: name,
      heartRate: hr,
      breathRate: br,
      timestamp: (i) => i,
    };
    for (const [sortBy, key] of Object.entries(keys)) {
      for (const orderBy of ['asc', 'desc'] as const) {
        const res = await get(t, `/vital-data?count=100&sortBy=${sortBy}&orderBy=${orderBy}`);
        expect(res.status).toBe(200);
        expect(ids(res), `${sortBy} ${orderBy}`).toEqual(sortedBy(key, orderBy));
      }
    }
  });

  test('count and offset paginate', async () => {
    const res = await get(t, '/vital-data?count=5&offset=3&sortBy=deviceId&orderBy=asc');
    expect(res.json.total).toBe(N);
    expect(ids(res)).toEqual(['d03', 'd04', 'd05', 'd06', 'd07']);
    const tail = await get(t, '/vital-data?count=10&offset=20&sortBy=deviceId&orderBy=asc');
    expect(ids(tail)).toEqual(['d20', 'd21', 'd22', 'd23', 'd24']);
    const beyond = await get(t, '/vital-data?offset=1000');
    expect(beyond.json).toEqual({ total: N, resources: [] });
    const edges = await get(t, '/vital-data?count=100');
    expect(edges.json.resources).toHaveLength(N);
    const one = await get(t, '/vital-data?count=1&sortBy=heartRate&orderBy=desc');
    expect(ids(one)).toEqual(sortedBy(hr, 'desc').slice(0, 1));
  });

  test('count 0 or 101, a negative offset, sortBy=foo, orderBy=up → 400 naming the parameter and what is allowed', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['count=0', 'count', /count must be >= 1/],
      ['count=101', 'count', /count must be <= 100/],
      ['count=ten', 'count', /count must be integer/],
      ['offset=-1', 'offset', /offset must be >= 0/],
      ['offset=99999999999999999999', 'offset', /offset must be <= 9007199254740991/],
      ['sortBy=foo', 'sortBy', /sortBy must be one of: deviceId, heartRate, breathRate, timestamp/],
      ['orderBy=up', 'orderBy', /orderBy must be one of: asc, desc/],
    ];
    for (const [query, field, message] of cases) {
      const res = await get(t, `/vital-data?${query}`);
      expectInvalid(res, field);
      expect(res.json.issues.map((i: { message: string }) => i.message).join(' | ')).toMatch(message);
    }
  });
});
