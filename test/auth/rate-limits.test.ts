import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, send, type Harness } from '../http/client.js';
import { bearer, createKey } from './keys.js';

/** TALLY_RATE_KEY (requests per key) and TALLY_RATE_DEVICE (readings per device, any transport). */

const metric = async (t: Harness, key: string, name: string): Promise<number> => {
  const text = (await t.tally.server.inject({ method: 'GET', url: '/metrics', headers: bearer(key) })).body;
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
};

describe('per key', () => {
  let t: Harness;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    // A slow refill, so the test's own pace never earns a token back.
    t = await startTally({ TALLY_AUTH: 'on', TALLY_RATE_KEY: '1/m,burst=5' });
    keys.a = await createKey(t.tally, 'limited-a', ['read', 'ingest']);
    keys.b = await createKey(t.tally, 'limited-b', ['read']);
    keys.ops = await createKey(t.tally, 'ops-metrics', ['admin']);
  });
  afterAll(() => t.stop());

  test('the burst passes, then 429 with Retry-After and RateLimit-* in the surface own shape; another key is unaffected', async () => {
    for (let i = 0; i < 5; i++) expect((await get(t, '/v1/devices', bearer(keys.a!))).status).toBe(200);
    const refused = await get(t, '/v1/devices', bearer(keys.a!));
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('TooManyRequests');
    expect(refused.json.error.message).toContain('limited-a');
    expect(refused.json.error.message).not.toContain(keys.a);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['ratelimit-limit']).toBe('5');
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    // Every surface, its own error shape: the Vital data surface's {status, message}.
    const vital = await send(t, { method: 'POST', url: '/vital-data', body: { device: 'v-1', timestamp: 1767225600, heartRateValue: 70 }, headers: bearer(keys.a!) }, { errorShape: false });
    expect(vital.status).toBe(429);
    expect(vital.json.status).toBe('error');
    expect((await get(t, '/v1/devices', bearer(keys.b!))).status).toBe(200);
    expect(await metric(t, keys.ops!, 'tally_rate_limited_total{limit="key"}')).toBe(2);
  });
});

describe('per device, over every surface', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally({ TALLY_RATE_DEVICE: '1/m,burst=3' });
  });
  afterAll(() => t.stop());
  const ts = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

  test('/v1/readings: readings beyond the rate refused one by one with status 429, other devices untouched', async () => {
    const body = [0, 1, 2, 3, 4].map((s) => ({ device_id: 'chatty', ts: ts(s), count: 1 })).concat([{ device_id: 'quiet', ts: ts(0), count: 1 }]);
    const res = await send(t, { method: 'POST', url: '/v1/readings', body });
    expect(res.status).toBe(207);
    expect(res.json.accepted).toBe(4);
    expect(res.json.rejected).toEqual([
      expect.objectContaining({ index: 3, field: 'device_id', status: 429 }),
      expect.objectContaining({ index: 4, field: 'device_id', status: 429 }),
    ]);
    expect((await get(t, '/v1/devices/chatty')).json.reading_count).toBe(3);
    // Only readings over the rate: 429 with Retry-After, nothing stored.
    const again = await send(t, { method: 'POST', url: '/v1/readings', body: [{ device_id: 'chatty', ts: ts(9), count: 1 }] });
    expect(again.status).toBe(429);
    expect(Number(again.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await get(t, '/v1/devices/chatty')).json.reading_count).toBe(3);
  });

  test('a single-reading surface answers 429 in its own shape; line protocol 429 with Retry-After', async () => {
    for (let i = 0; i < 3; i++) {
      const ok = await send(t, { method: 'POST', url: '/vital-data', body: { device: 'band', timestamp: 1767225600 + i, heartRateValue: 70 } }, { errorShape: false });
      expect(ok.status).toBe(202);
    }
    const refused = await send(t, { method: 'POST', url: '/vital-data', body: { device: 'band', timestamp: 1767225700, heartRateValue: 70 } }, { errorShape: false });
    expect(refused.status).toBe(429);
    expect(refused.json.status).toBe('error');
    expect(refused.headers['retry-after']).toBeDefined();
    const lines = [0, 1, 2, 3].map((s) => `m,device=lp-dev v=1 ${1767225600 + s}000000000`).join('\n');
    expect((await t.tally.server.inject({ method: 'POST', url: '/write?db=x', payload: lines, headers: { 'content-type': 'text/plain' } })).statusCode).toBe(400);
    const over = await t.tally.server.inject({ method: 'POST', url: '/write?db=x', payload: 'm,device=lp-dev v=1 1767225700000000000', headers: { 'content-type': 'text/plain' } });
    expect(over.statusCode).toBe(429);
    expect(over.headers['retry-after']).toBeDefined();
    expect((await get(t, '/v1/devices/lp-dev')).json.reading_count).toBe(3);
    const text = (await t.tally.server.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/tally_rate_limited_total\{limit="device"\} [1-9]/);
    expect(text).toMatch(/tally_readings_rejected_total\{transport="http",surface="v1",reason="rate_limited"\} 3/);
  });
});
