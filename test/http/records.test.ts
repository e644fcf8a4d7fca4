import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from './client.js';

/** Seed 000, the records API: GET /, POST /ingest {device_id, timestamp, data_payload}, /records, /check-buffer. */

let t: Harness;
beforeAll(async () => {
  t = await startTally({ TALLY_MAX_BATCH: '5000', TALLY_QUEUE_LIMIT: '50000' });
});
afterAll(() => t.stop());

const ingest = (body: unknown) => post(t, '/ingest', body);

function expectError(res: { status: number; json: any }, status: number, field: string, mentions: RegExp = new RegExp(field)) {
  expect(res.status).toBe(status);
  expect(res.json.error.field).toBe(field);
  expect(res.json.error.message).toMatch(mentions);
}

interface RecordOut {
  device_id: string;
  timestamp: string;
  data_payload: unknown;
  count: number | null;
}

test('GET / answers availability', async () => {
  const res = await get(t, '/');
  expect(res.status).toBe(200);
  expect(res.json.status).toBe('ok');
});

describe('POST /ingest (record body)', () => {
  test('a new record → 201 {"status":"ok"}; the same again → 200 {"status":"duplicate"} and nothing changes', async () => {
    const record = { device_id: 'rec-dup', timestamp: '2025-09-09T17:00:00Z', data_payload: { gene_count: 12, sample_quality: 0.98 } };
    const first = await ingest(record);
    expect(first.status).toBe(201);
    expect(first.json).toEqual({ status: 'ok' });

    const again = await ingest(record);
    expect(again.status).toBe(200);
    expect(again.json).toEqual({ status: 'duplicate' });

    // Same instant, other offset, other payload: a duplicate; the first payload stays.
    const rewritten = await ingest({ device_id: 'rec-dup', timestamp: '2025-09-09T19:00:00+02:00', data_payload: { gene_count: 99 } });
    expect(rewritten.status).toBe(200);
    expect(rewritten.json).toEqual({ status: 'duplicate' });

    const view = await get(t, '/devices/rec-dup');
    expect(view.json.data).toEqual({ '2025-09-09T17:00:00Z': null });
    const records = (await get(t, '/records?limit=1000')).json.records as RecordOut[];
    expect(records.filter((r) => r.device_id === 'rec-dup')).toEqual([
      { device_id: 'rec-dup', timestamp: '2025-09-09T17:00:00Z', data_payload: { gene_count: 12, sample_quality: 0.98 }, count: null },
    ]);
  });

  test('a body that fits neither shape → 400 describing both shapes', async () => {
    for (const body of [{}, { foo: 1 }, { deviceId: 'x', ts: '2025-09-09T17:00:00Z' }]) {
      const res = await ingest(body);
      expect(res.status).toBe(400);
      expect(res.json.error.field).toBe('body');
      for (const name of ['"id"', '"readings"', '"device_id"', '"timestamp"', '"data_payload"', '"count"']) {
        expect(res.json.error.message).toContain(name);
      }
    }
  });

  test('data_payload not an object → 400 naming data_payload', async () => {
    for (const data_payload of [[1, 2], 'text', 42, null, true]) {
      const res = await ingest({ device_id: 'rec-bad', timestamp: '2025-09-09T17:00:00Z', data_payload });
      expectError(res, 400, 'data_payload', /data_payload must be a JSON object/);
    }
    expectError(await ingest({ device_id: 'rec-bad', timestamp: '2025-09-09T17:00:00Z' }), 400, 'data_payload');
    expect((await get(t, '/devices/rec-bad')).status).toBe(404);
  });

  test('device_id and timestamp are checked and named', async () => {
    const data_payload = { a: 1 };
    expectError(await ingest({ timestamp: '2025-09-09T17:00:00Z', data_payload }), 400, 'device_id');
    expectError(await ingest({ device_id: 7, timestamp: '2025-09-09T17:00:00Z', data_payload }), 400, 'device_id');
    expectError(await ingest({ device_id: 'rec-bad', data_payload }), 400, 'timestamp');
    for (const timestamp of ['2025-09-09 17:00:00', '2025-09-09T17:00:00', '2025-02-29T00:00:00Z', '2025-09-09T17:60:00Z', 1757437200]) {
      expectError(await ingest({ device_id: 'rec-bad', timestamp, data_payload }), 400, 'timestamp');
    }
    expect((await get(t, '/devices/rec-bad')).status).toBe(404);
  });

  test('a payload over 64 KiB → 400 naming data_payload', async () => {
    const res = await ingest({ device_id: 'rec-big', timestamp: '2025-09-09T17:00:00Z', data_payload: { blob: 'x'.repeat(70_000) } });
    expectError(res, 400, 'data_payload', /larger than 65536 bytes/);
    expect((await get(t, '/devices/rec-big')).status).toBe(404);
  });
});

describe('GET /records', () => {
  // Fills a dedicated Tally so the listing is exactly known.
  let r: Harness;
  const expected: RecordOut[] = [];
  beforeAll(async () => {
    r = await startTally();
    const base = Date.UTC(2025, 0, 1);
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 250; i++) {
      // Five devices share each instant, so ordering ties must be broken consistently by the cursor.
      const device_id = `pg-${i % 5}`;
      const timestamp = new Date(base + Math.floor(i / 5) * 60_000).toISOString().replace('.000Z', 'Z');
      const data_payload = { i, nested: { list: [i, `s${i}`, { deep: i % 2 === 0 }], unicode: 'héllo ✓' }, float: i + 0.25 };
      expected.push({ device_id, timestamp, data_payload, count: null });
      writes.push(
        r.tally.server
          .inject({ method: 'POST', url: '/ingest', payload: { device_id, timestamp, data_payload } })
          .then((res) => expect(res.statusCode).toBe(201)),
      );
    }
    await Promise.all(writes);
  });
  afterAll(() => r.stop());

  const byTimeDesc = (a: RecordOut, b: RecordOut) => b.timestamp.localeCompare(a.timestamp);

  test('newest first, payload intact, default limit 100 with a next_cursor', async () => {
    const res = await get(r, '/records');
    expect(res.status).toBe(200);
    const records = res.json.records as RecordOut[];
    expect(records).toHaveLength(100);
    expect(typeof res.json.next_cursor).toBe('string');
    // Timestamps are non-increasing.
    for (let i = 1; i < records.length; i++) expect(records[i - 1]!.timestamp >= records[i]!.timestamp).toBe(true);
    expect(records[0]!.timestamp).toBe('2025-01-01T00:49:00Z');
    // Every record is exactly what was sent.
    const sent = new Map(expected.map((e) => [`${e.device_id} ${e.timestamp}`, e]));
    for (const rec of records) expect(rec).toEqual(sent.get(`${rec.device_id} ${rec.timestamp}`));
  });

  test('next_cursor pages over all 250 records, neither skipping nor repeating', async () => {
    for (const limit of [100, 50, 7]) {
      const seen: RecordOut[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/records?limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const res = await get(r, url);
        expect(res.status).toBe(200);
        const page = res.json.records as RecordOut[];
        expect(page.length).toBeLessThanOrEqual(limit);
        seen.push(...page);
        cursor = res.json.next_cursor;
        pages++;
        expect(pages).toBeLessThan(100);
      } while (cursor !== null);
      expect(seen).toHaveLength(250);
      expect(new Set(seen.map((s) => `${s.device_id} ${s.timestamp}`)).size).toBe(250);
      expect([...seen].sort((a, b) => byTimeDesc(a, b) || a.device_id.localeCompare(b.device_id)).map((s) => s.timestamp)).toEqual(
        seen.map((s) => s.timestamp),
      );
      expect(new Set(seen.map((s) => (s.data_payload as { i: number }).i))).toEqual(new Set(expected.map((_, i) => i)));
    }
  });

  test('the last full page is followed by an empty page with next_cursor null', async () => {
    let cursor: string | null = null;
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await get(r, `/records?limit=50${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      sizes.push(res.json.records.length);
      cursor = res.json.next_cursor;
      if (cursor === null) break;
    }
    expect(sizes).toEqual([50, 50, 50, 50, 50, 0]);
    expect(cursor).toBeNull();
  });

  test('limit 1000 is allowed; 1001, 0, -1 and "ten" → 400 naming limit', async () => {
    const max = await get(r, '/records?limit=1000');
    expect(max.status).toBe(200);
    expect(max.json.records).toHaveLength(250);
    expect(max.json.next_cursor).toBeNull();
    for (const limit of ['1001', '0', '-1', 'ten', '1.5']) {
      const res = await get(r, `/records?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(res.json.error.field).toBe('limit');
      expect(res.json.error.message).toMatch(/^limit /);
    }
  });

  test('a cursor this service did not issue → 400 naming cursor', async () => {
    for (const cursor of ['garbage', '!!!', Buffer.from('1:x').toString('base64url'), Buffer.from('1:2:3').toString('base64url'), '']) {
      const res = await get(r, `/records?cursor=${encodeURIComponent(cursor)}`);
      expect(res.status).toBe(400);
      expect(res.json.error.field).toBe('cursor');
      expect(res.json.error.message).toMatch(/cursor/);
    }
  });
});

describe('GET /check-buffer', () => {
  test('an idle buffer: size 0, the threshold and no records', async () => {
    const res = await get(t, '/check-buffer');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ size: 0, queued: 0, writing: 0, threshold: 5000, limit: 50000, records: [] });
  });

  test('readings accepted but not yet committed are listed with the buffer size', async () => {
    const readings = Array.from({ length: 5000 }, (_, i) => ({ timestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString(), count: 1 }));
    let done = false;
    const write = t.tally.server.inject({ method: 'POST', url: '/ingest', payload: { id: 'buffered', readings } }).then((res) => {
      done = true;
      return res;
    });
    let observed: any;
    for (let polls = 0; !done && observed === undefined && polls < 10_000; polls++) {
      await new Promise((resolve) => setImmediate(resolve));
      const res = await get(t, '/check-buffer');
      if (res.json.size > 0) observed = res.json;
    }
    expect((await write).statusCode).toBe(202);
    expect(observed).toBeDefined();
    expect(observed.size).toBe(5000);
    expect(observed.threshold).toBe(5000);
    expect(observed.records).toHaveLength(100);
    expect(observed.records[0]).toEqual({ device_id: 'buffered', timestamp: '2024-01-01T00:00:00.000Z', data_payload: null, count: 1 });
    // Once committed the buffer is empty again.
    expect((await get(t, '/check-buffer')).json).toMatchObject({ size: 0, records: [] });
  });
});
