import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { formatUtc } from '../../src/domain/timestamp.js';
import { startTally } from '../helpers.js';
import { get, postReadings, type Harness } from '../http/client.js';

/** Readings out as NDJSON and CSV: exact text, streamed in bounded memory, and back in unchanged. */

let t: Harness;
let address: string;
const BASE_MS = Date.UTC(2024, 0, 1);
const BIG = 300_000;

beforeAll(async () => {
  t = await startTally();
  address = await t.tally.listen();
  await postReadings(t, [
    { device_id: 'exp-a', ts: '2024-01-01T00:00:00Z', count: 1, payload: { temp: 1.5, note: 'x,"y"' } },
    { device_id: 'exp-a', ts: '2024-01-01T00:01:00+01:00', count: 2, payload: { hum: 40 } },
    { device_id: 'exp-b', ts: '2024-01-01T00:00:30Z', payload: { temp: 2, nested: { k: 1 } } },
    { device_id: 'other', ts: '2024-01-01T00:00:30Z', count: 9 },
  ]);
  for (let start = 0; start < BIG; start += 10_000) {
    const batch: Reading[] = [];
    for (let i = start; i < start + 10_000; i++) {
      const tsUs = (BASE_MS + i * 1000) * 1000;
      batch.push({ deviceId: 'exp-big', tsUs, tsText: formatUtc(tsUs), count: i % 4, payload: `{"t":${i % 50}}` });
    }
    await t.tally.store.appendBatch(batch);
  }
}, 120_000);
afterAll(() => t.stop());

const text = async (url: string, headers: Record<string, string> = {}) => {
  const res = await t.tally.server.inject({ method: 'GET', url, headers });
  return { status: res.statusCode, type: String(res.headers['content-type']), body: res.body };
};

describe('export', () => {
  test('one device as CSV: a header, payload fields as columns (the union seen), values escaped', async () => {
    const res = await text('/v1/devices/exp-a/readings?format=csv');
    expect(res.type).toMatch(/^text\/csv/);
    expect(res.body).toBe(
      'device_id,ts,count,payload.hum,payload.temp,payload.note\n' +
        'exp-a,2023-12-31T23:01:00Z,2,40,,\n' +
        'exp-a,2024-01-01T00:00:00Z,1,,1.5,"x,""y"""\n',
    );
    expect((await text('/v1/devices/exp-a/readings?fields=hum', { accept: 'text/csv' })).body).toBe(
      'device_id,ts,count,payload.hum\nexp-a,2023-12-31T23:01:00Z,2,40\nexp-a,2024-01-01T00:00:00Z,1,\n',
    );
  });

  test('fleet-wide as NDJSON, by prefix and range, device by device', async () => {
    const res = await text('/v1/export?prefix=exp-&from=2024-01-01T00:00:00Z&to=2024-01-01T00:00:31Z');
    expect(res.type).toMatch(/^application\/x-ndjson/);
    expect(res.body.split('\n').filter(Boolean).map((l) => JSON.parse(l))).toEqual([
      { device_id: 'exp-a', ts: '2024-01-01T00:00:00Z', count: 1, payload: { temp: 1.5, note: 'x,"y"' } },
      { device_id: 'exp-b', ts: '2024-01-01T00:00:30Z', count: null, payload: { temp: 2, nested: { k: 1 } } },
      { device_id: 'exp-big', ts: '2024-01-01T00:00:00Z', count: 0, payload: { t: 0 } },
    ].concat(Array.from({ length: 30 }, (_, i) => ({ device_id: 'exp-big', ts: formatUtc((BASE_MS + (i + 1) * 1000) * 1000), count: (i + 1) % 4, payload: { t: i + 1 } })).slice(0, 30)));
    // JSON pages stay the default.
    expect((await get(t, '/v1/devices/exp-a/readings?limit=1')).json.items).toHaveLength(1);
    expect((await get(t, '/v1/export?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z')).status).toBe(400);
  });

  test(`${BIG.toLocaleString('en-US')} readings stream out in bounded memory and back into an empty Tally unchanged`, async () => {
    const heap = () => process.memoryUsage().heapUsed;
    const before = heap();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, heap())), 2);
    const chunks: Buffer[] = [];
    try {
      const res = await fetch(`${address}/v1/devices/exp-big/readings?format=ndjson`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
    } finally {
      clearInterval(sampler);
    }
    const ndjson = Buffer.concat(chunks);
    // The test itself keeps the whole answer (to send it back), so the server's share is what the
    // heap grew by beyond those bytes.
    expect(ndjson.length).toBeGreaterThan(20_000_000);
    expect(peak - before - ndjson.length, `heap grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB for ${(ndjson.length / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(48 * 2 ** 20);

    const fresh = await startTally();
    try {
      const res = await fresh.tally.server.inject({ method: 'POST', url: '/v1/readings', payload: ndjson, headers: { 'content-type': 'application/x-ndjson' } });
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      expect(res.json()).toMatchObject({ accepted: BIG, duplicates: 0, rejected: [] });
      const original = (await get(t, '/v1/devices/exp-big')).json;
      const copy = (await fresh.tally.server.inject({ method: 'GET', url: '/v1/devices/exp-big' })).json();
      expect(copy).toEqual(original);
      const agg = '/v1/devices/exp-big/aggregate?every=1d&field=payload.t&fn=count,sum,min,max';
      expect((await fresh.tally.server.inject({ method: 'GET', url: agg })).json()).toEqual((await get(t, agg)).json);
    } finally {
      await fresh.stop();
    }
  });
});
