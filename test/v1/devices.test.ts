import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { allPages, get, postReadings, RFC3339_UTC, rng, utc, type Harness } from '../http/client.js';

/** GET /v1/devices and GET /v1/devices/:id. */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

interface Expected {
  device_id: string;
  first_ts: string;
  latest_ts: string;
  reading_count: number;
  cumulative_count: number;
  latest_payload: unknown;
  firstMs: number;
  latestMs: number;
  temp: number | undefined;
}

function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const N = 25;
const BASE = Date.UTC(2024, 6, 1, 0, 0, 0);
const expected: Expected[] = [];

/**
 * 25 devices `dev-00`…`dev-24` whose every sortable value is distinct (seeded permutations), so
 * every order is fully determined; 5 of them have no `temp` in their latest payload. Readings are
 * posted shuffled across several requests, so arrival order says nothing about timestamps.
 */
beforeAll(async () => {
  const random = rng(20240701);
  const perm = () => shuffle(Array.from({ length: N }, (_, i) => i), random);
  const [rc, firsts, latests, cums, temps] = [perm(), perm(), perm(), perm(), perm()];
  const noTemp = new Set(shuffle(Array.from({ length: N }, (_, i) => i), random).slice(0, 5));
  const readings: object[] = [];
  for (let i = 0; i < N; i++) {
    const id = `dev-${String(i).padStart(2, '0')}`;
    const readingCount = rc[i]! + 1;
    const latestMs = BASE + 10 * 3600_000 + latests[i]! * 60_000;
    const firstMs = readingCount === 1 ? latestMs : BASE + firsts[i]! * 60_000;
    const bigCount = (cums[i]! + 1) * 100;
    const temp = noTemp.has(i) ? undefined : temps[i]! * 1.5 - 12.25;
    const latestPayload = temp === undefined ? { other: i } : { temp, other: i };
    // The earliest readings carry a temp far outside the range: sorting must use the latest payload.
    for (let k = 0; k < readingCount - 1; k++) {
      readings.push({ device_id: id, ts: utc(firstMs + k * 1000), count: 1, payload: { temp: 1e6 + i } });
    }
    readings.push({ device_id: id, ts: utc(latestMs), count: bigCount, payload: latestPayload });
    expected.push({
      device_id: id,
      first_ts: utc(firstMs),
      latest_ts: utc(latestMs),
      reading_count: readingCount,
      cumulative_count: bigCount + readingCount - 1,
      latest_payload: latestPayload,
      firstMs,
      latestMs,
      temp,
    });
  }
  const shuffled = shuffle(readings, random);
  for (let i = 0; i < shuffled.length; i += 40) {
    const res = await postReadings(t, shuffled.slice(i, i + 40));
    expect(res.status, res.text).toBe(200);
  }
  // Devices outside the dev- prefix, some with LIKE wildcards in their ids.
  const others = ['sensor-a', 'a_b', 'axb', 'a%c', 'dev', 'dev_x', 'développeur', 'Dev-upper'];
  const res = await postReadings(
    t,
    others.map((id) => ({ device_id: id, ts: '2024-07-01T00:00:00Z', count: 1 })),
  );
  expect(res.json.accepted).toBe(others.length);
});

const ids = (items: Array<{ device_id: string }>) => items.map((d) => d.device_id);
const strip = ({ firstMs: _f, latestMs: _l, temp: _t, ...item }: Expected) => item;

describe('GET /v1/devices', () => {
  test('item shape: every field, RFC 3339 UTC timestamps', async () => {
    const res = await get(t, '/v1/devices?prefix=dev-&limit=1000');
    expect(res.status).toBe(200);
    expect(res.json.next_cursor).toBeNull();
    expect(res.json.items).toEqual(expected.map(strip));
    for (const item of res.json.items) {
      expect(Object.keys(item).sort()).toEqual(['cumulative_count', 'device_id', 'first_ts', 'latest_payload', 'latest_ts', 'reading_count']);
      expect(item.first_ts).toMatch(RFC3339_UTC);
      expect(item.latest_ts).toMatch(RFC3339_UTC);
    }
  });

  test('default: sorted by device_id ascending, limit 100', async () => {
    const res = await get(t, '/v1/devices');
    expect(res.status).toBe(200);
    const all = [...expected.map((e) => e.device_id), 'sensor-a', 'a_b', 'axb', 'a%c', 'dev', 'dev_x', 'développeur', 'Dev-upper'];
    // Binary (code point) order, as SQLite compares text.
    expect(ids(res.json.items)).toEqual([...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(res.json.next_cursor).toBeNull();
  });

  const columns: Array<[string, (e: Expected) => number | string]> = [
    ['device_id', (e) => e.device_id],
    ['latest_ts', (e) => e.latestMs],
    ['first_ts', (e) => e.firstMs],
    ['reading_count', (e) => e.reading_count],
    ['cumulative_count', (e) => e.cumulative_count],
  ];
  for (const [sort, key] of columns) {
    for (const order of ['asc', 'desc'] as const) {
      test(`sort=${sort}&order=${order}, paged 7 at a time`, async () => {
        const want = [...expected].sort((a, b) => {
          const [x, y] = [key(a), key(b)];
          const c = x < y ? -1 : x > y ? 1 : 0;
          return order === 'asc' ? c : -c;
        });
        const { items, pages } = await allPages(t, `/v1/devices?prefix=dev-&sort=${sort}&order=${order}&limit=7`);
        expect(pages).toBe(4);
        expect(items).toEqual(want.map(strip));
      });
    }
  }

  for (const order of ['asc', 'desc'] as const) {
    test(`sort=payload.temp&order=${order}: by the latest payload, devices without it last`, async () => {
      const withTemp = expected.filter((e) => e.temp !== undefined);
      withTemp.sort((a, b) => (order === 'asc' ? a.temp! - b.temp! : b.temp! - a.temp!));
      const without = expected.filter((e) => e.temp === undefined).map((e) => e.device_id);
      const { items } = await allPages(t, `/v1/devices?prefix=dev-&sort=payload.temp&order=${order}&limit=3`);
      expect(items).toHaveLength(N);
      expect(ids(items.slice(0, 20))).toEqual(ids(withTemp));
      expect(items.slice(0, 20).map((d: any) => d.latest_payload.temp)).toEqual(withTemp.map((e) => e.temp));
      expect(ids(items.slice(20)).sort()).toEqual(without.sort());
      // Without a prefix, the other devices (no temp at all) also go after every device with one.
      const everything = await allPages(t, `/v1/devices?sort=payload.temp&order=${order}&limit=4`);
      expect(everything.items).toHaveLength(N + 8);
      expect(ids(everything.items.slice(0, 20))).toEqual(ids(withTemp));
      expect(new Set(ids(everything.items)).size).toBe(N + 8);
    });
  }

  test('prefix filter: exact, case-sensitive, LIKE wildcards are literal', async () => {
    expect(ids((await get(t, '/v1/devices?prefix=dev-1')).json.items)).toEqual(
      Array.from({ length: 10 }, (_, i) => `dev-1${i}`),
    );
    expect(ids((await get(t, '/v1/devices?prefix=a_')).json.items)).toEqual(['a_b']);
    expect(ids((await get(t, '/v1/devices?prefix=a%25')).json.items)).toEqual(['a%c']);
    expect(ids((await get(t, '/v1/devices?prefix=dev_')).json.items)).toEqual(['dev_x']);
    expect(ids((await get(t, `/v1/devices?prefix=${encodeURIComponent('dév')}`)).json.items)).toEqual(['développeur']);
    expect(ids((await get(t, '/v1/devices?prefix=Dev')).json.items)).toEqual(['Dev-upper']);
    expect(ids((await get(t, '/v1/devices?prefix=dev&limit=1000')).json.items)).toHaveLength(N + 2);
    const none = await get(t, '/v1/devices?prefix=zzz');
    expect(none.json).toEqual({ items: [], next_cursor: null });
  });

  test('prefix with paging and a non-default sort', async () => {
    const want = expected.filter((e) => e.device_id.startsWith('dev-2')).sort((a, b) => b.cumulative_count - a.cumulative_count);
    const { items } = await allPages(t, '/v1/devices?prefix=dev-2&sort=cumulative_count&order=desc&limit=2');
    expect(ids(items)).toEqual(ids(want));
  });

  test('limit: 1 and 1000 accepted, 0, 1001 and text refused naming limit', async () => {
    const one = await get(t, '/v1/devices?limit=1');
    expect(one.json.items).toHaveLength(1);
    expect(typeof one.json.next_cursor).toBe('string');
    expect((await get(t, '/v1/devices?limit=1000')).json.items).toHaveLength(N + 8);
    for (const limit of ['0', '1001', '-1', 'ten', '1.5']) {
      const res = await get(t, `/v1/devices?limit=${limit}`);
      expect(res.status, limit).toBe(400);
      expect(res.json.error.code).toBe('InvalidInput');
      expect(res.json.error.field).toBe('limit');
    }
  });

  test('bad sort and order are 400s naming the field', async () => {
    for (const sort of ['color', 'payload.', 'payload.bad-name', 'payload.a.b', 'DEVICE_ID', "payload.x'--"]) {
      const res = await get(t, `/v1/devices?sort=${encodeURIComponent(sort)}`);
      expect(res.status, sort).toBe(400);
      expect(res.json.error.field).toBe('sort');
      expect(res.json.error.message).toContain('sort');
    }
    const order = await get(t, '/v1/devices?order=up');
    expect(order.status).toBe(400);
    expect(order.json.error.field).toBe('order');
  });

  test('a cursor this service did not issue is a 400 naming cursor', async () => {
    const forged = [
      'garbage!!',
      'AAAA',
      Buffer.from('{"v":1}').toString('base64url'),
      Buffer.from('{"v":1,"k":"x"}').toString('base64url'),
      Buffer.from('{"v":{},"k":1}').toString('base64url'),
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from('null').toString('base64url'),
    ];
    for (const cursor of forged) {
      const res = await get(t, `/v1/devices?cursor=${encodeURIComponent(cursor)}`);
      expect(res.status, cursor).toBe(400);
      expect(res.json.error.code).toBe('InvalidInput');
      expect(res.json.error.field).toBe('cursor');
    }
  });

  test('a cursor reused for another sort, order or prefix is a 400, not a silent gap', async () => {
    const first = await get(t, '/v1/devices?limit=3&sort=device_id');
    const cursor = encodeURIComponent(first.json.next_cursor);
    expect((await get(t, `/v1/devices?limit=3&sort=device_id&cursor=${cursor}`)).status).toBe(200);
    for (const other of ['sort=reading_count', 'sort=device_id&order=desc', 'sort=device_id&prefix=dev-1']) {
      const res = await get(t, `/v1/devices?limit=3&${other}&cursor=${cursor}`);
      expect(res.status, other).toBe(400);
      expect(res.json.error.field).toBe('cursor');
    }
  });
});

describe('paging while devices are inserted', () => {
  const PRE = 300;
  const preIds = Array.from({ length: PRE }, (_, i) => `pg-${String(i * 10).padStart(5, '0')}`);
  beforeAll(async () => {
    const res = await postReadings(
      t,
      preIds.map((id, i) => ({ device_id: id, ts: utc(BASE + i * 1000), count: i + 1 })),
    );
    expect(res.json.accepted).toBe(PRE);
  });

  test('sort=device_id: every device that existed before paging appears exactly once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let page = 0;
    let inserted = 0;
    do {
      const res = await get(t, `/v1/devices?prefix=pg-&limit=25${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...ids(res.json.items));
      cursor = res.json.next_cursor;
      // Between pages: new devices sorting before, inside and after the current page, and new
      // readings for devices already seen and not yet seen (which change their summaries).
      const batch = [
        { device_id: `pg-${String(page * 250 + 5).padStart(5, '0')}`, ts: utc(BASE), count: 1 },
        { device_id: `pg-${String(2990 - page * 10 + 1).padStart(5, '0')}`, ts: utc(BASE), count: 1 },
        { device_id: `pg-00000-new-${page}`, ts: utc(BASE), count: 1 },
        { device_id: `pg-${String(page * 123 + 7).padStart(5, '0')}a`, ts: utc(BASE), count: 1 },
        { device_id: preIds[(page * 37) % PRE]!, ts: utc(BASE + 86_400_000 + page * 1000), count: 5 },
        { device_id: preIds[(page * 53 + 200) % PRE]!, ts: utc(BASE + 86_400_000 + page * 1000), count: 5 },
      ];
      const res2 = await postReadings(t, batch);
      expect(res2.status).toBe(200);
      inserted += res2.json.accepted;
      page++;
    } while (cursor !== null);
    expect(inserted).toBeGreaterThan(page * 4);
    // No device twice, every pre-existing device once, and the order never went backwards.
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of preIds) expect(seen.filter((s) => s === id), id).toHaveLength(1);
    expect([...seen].sort()).toEqual(seen);
  });

  test('sort=reading_count&order=desc with concurrent inserts of new devices: none skipped or repeated', async () => {
    // Before: the pg- devices and their reading counts, as they stand now.
    const before = await allPages(t, '/v1/devices?prefix=pg-&limit=1000');
    const existing = ids(before.items);
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const res = await postReadings(t, [
          { device_id: `pg-concurrent-${String(n).padStart(5, '0')}`, ts: utc(BASE), count: 1 },
          { device_id: `pg-concurrent-${String(n + 1).padStart(5, '0')}`, ts: utc(BASE), count: 1 },
        ]);
        expect(res.status).toBe(200);
        n += 2;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    let seen: string[];
    try {
      seen = ids((await allPages(t, '/v1/devices?prefix=pg-&sort=reading_count&order=desc&limit=10')).items);
    } finally {
      stop = true;
      await writer;
    }
    expect(n).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of existing) expect(seen.filter((s) => s === id), id).toHaveLength(1);
  });
});

describe('GET /v1/devices/:id', () => {
  test('the summary of one device', async () => {
    const e = expected[7]!;
    const res = await get(t, `/v1/devices/${e.device_id}`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual(strip(e));
  });

  test('ids with spaces, slashes and non-ASCII characters round-trip through the path', async () => {
    for (const id of ['room 1/ß', 'a?b#c', 'x%20y', '😀']) {
      const post = await postReadings(t, [{ device_id: id, ts: '2024-07-02T00:00:00Z', count: 2, payload: { id } }]);
      expect(post.json.accepted, id).toBe(1);
      const res = await get(t, `/v1/devices/${encodeURIComponent(id)}`);
      expect(res.status, id).toBe(200);
      expect(res.json.device_id).toBe(id);
      expect(res.json.latest_payload).toEqual({ id });
    }
  });

  test('unknown device: 404 NotFound', async () => {
    const res = await get(t, '/v1/devices/no-such-device');
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('NotFound');
    expect(res.json.error.message).toContain('no-such-device');
  });
});
