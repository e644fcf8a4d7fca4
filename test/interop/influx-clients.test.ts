import { gzipSync } from 'node:zlib';
import { InfluxDB, Point } from '@influxdata/influxdb-client';
import { FieldType, InfluxDB as InfluxV1 } from 'influx';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from '../http/client.js';

/**
 * The official InfluxDB clients write to Tally unchanged: the 2.x client (gzip on) on /api/v2/write
 * and the 1.x client `influx` on /write. What they wrote is read back over /v1, exactly.
 */

let t: Harness;
let address: string;
const encodings: string[] = [];
/** Write requests answered: the client's close() does not wait for batches already sent. */
let answered = 0;
beforeAll(async () => {
  t = await startTally();
  address = await t.tally.listen();
  t.tally.server.server.on('request', (req, res) => {
    if (!req.url?.startsWith('/api/v2/write')) return;
    encodings.push(String(req.headers['content-encoding'] ?? 'identity'));
    res.once('finish', () => answered++);
  });
});
afterAll(() => t.stop());

const BASE_MS = Date.UTC(2025, 5, 18, 10);

describe('@influxdata/influxdb-client (2.x write API, gzip)', () => {
  async function writeAll(points: Point[]): Promise<void> {
    const failures: unknown[] = [];
    // Retries are safe: a resent point is a duplicate. A slow, shared machine gets a long timeout.
    const api = new InfluxDB({ url: address, token: 'not-checked', timeout: 120_000 }).getWriteApi('my-org', 'my-bucket', 'ns', {
      gzipThreshold: 1, // every body gzipped, as Telegraf and the clients do for anything sizeable
      batchSize: 500,
      flushInterval: 0,
      maxRetries: 3,
      writeFailed: (error) => {
        failures.push(error);
      },
    });
    const before = answered;
    api.writePoints(points);
    await api.close();
    // Every batch (500 points each) answered before anything is read back.
    const deadline = Date.now() + 60_000;
    while (answered - before < Math.ceil(points.length / 500)) {
      if (Date.now() > deadline) throw new Error('the client\'s writes were not all answered');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(failures).toEqual([]);
  }
  const points = () =>
    Array.from({ length: 1200 }, (_, i) =>
      new Point('meters')
        .tag('device', `v2-meter-${i % 3}`)
        .tag('site', 'oslo')
        .intField('count', 1 + (i % 4))
        .floatField('temp', 20 + (i % 10) / 10)
        .booleanField('ok', i % 2 === 0)
        .stringField('note', 'a, "quoted" = note')
        .timestamp(new Date(BASE_MS + Math.floor(i / 3) * 1000)),
    );

  test('1,200 points in gzipped batches are stored exactly; a resend changes nothing', async () => {
    await writeAll(points());
    expect(encodings.length).toBeGreaterThanOrEqual(3);
    expect(encodings.every((e) => e === 'gzip')).toBe(true);
    for (let d = 0; d < 3; d++) {
      const device = (await get(t, `/v1/devices/v2-meter-${d}`)).json;
      let cumulative = 0;
      for (let i = d; i < 1200; i += 3) cumulative += 1 + (i % 4);
      expect(device).toMatchObject({ reading_count: 400, cumulative_count: cumulative });
    }
    const first = (await get(t, '/v1/devices/v2-meter-0/readings?limit=1')).json.items[0];
    expect(first).toEqual({
      device_id: 'v2-meter-0',
      ts: new Date(BASE_MS).toISOString().replace('.000Z', 'Z'),
      count: 1,
      payload: { measurement: 'meters', site: 'oslo', temp: 20, ok: true, note: 'a, "quoted" = note' },
    });
    await writeAll(points());
    expect((await get(t, '/v1/devices/v2-meter-1')).json.reading_count).toBe(400);
  });
});

describe('influx (the 1.x client)', () => {
  test('points with an integer count schema are stored exactly; a resend changes nothing', async () => {
    const influx = new InfluxV1({
      host: '127.0.0.1',
      port: Number(new URL(address).port),
      database: 'tally',
      schema: [{ measurement: 'boiler', fields: { count: FieldType.INTEGER, pressure: FieldType.FLOAT }, tags: ['device'] }],
    });
    const batch = Array.from({ length: 300 }, (_, i) => ({
      measurement: 'boiler',
      tags: { device: `v1-boiler-${i % 2}` },
      fields: { count: 2, pressure: 1 + i / 100 },
      timestamp: new Date(BASE_MS + i * 60_000),
    }));
    await influx.writePoints(batch, { precision: 's' });
    await influx.writePoints(batch, { precision: 's' });
    for (const d of [0, 1]) {
      expect((await get(t, `/v1/devices/v1-boiler-${d}`)).json).toMatchObject({ reading_count: 150, cumulative_count: 300 });
    }
    const buckets = (await get(t, `/v1/devices/v1-boiler-0/aggregate?every=1d&field=payload.pressure&fn=count,min,max`)).json.buckets;
    expect(buckets).toEqual([{ start: '2025-06-18T00:00:00Z', count: 150, min: 1, max: 3.98 }]);
  });
});

describe('line protocol answers', () => {
  test('a bad line is a 400 naming it, while the good lines are stored; a line without a timestamp gets the server time', async () => {
    const before = Date.now();
    const res = await t.tally.server.inject({
      method: 'POST',
      url: '/write?db=x&precision=ms',
      payload: `plant,device=lp-1 count=1i ${BASE_MS}\nplant,device=lp-1 count=1i,temp=hot ${BASE_MS + 1}\nplant,device=lp-1 count=2i\n`,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'invalid', line: 2 });
    expect(res.json().message).toMatch(/^line 2: field "temp" has an invalid value/);
    const device = (await get(t, '/v1/devices/lp-1')).json;
    expect(device).toMatchObject({ reading_count: 2, cumulative_count: 3 });
    expect(Date.parse(device.latest_ts)).toBeGreaterThanOrEqual(before - 1000);
  });

  test('an invalid reading (a count over the limit, a timestamp out of range) is reported by its line', async () => {
    const res = await t.tally.server.inject({
      method: 'POST',
      url: '/api/v2/write?bucket=b&precision=s',
      payload: `m,device=lp-2 count=1i 1700000000\nm,device=lp-2 count=99999999999i 1700000001\nm,device=lp-2 v=1 99999999999\n`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'invalid', line: 2 });
    expect(res.json().message).toMatch(/2 lines rejected, 1 written/);
  });

  test('everything written → 204 with no body; the device tag falls back to the measurement', async () => {
    const res = await t.tally.server.inject({ method: 'POST', url: '/api/v2/write?precision=s', payload: 'lonely v=1 1700000000\n' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect((await get(t, '/v1/devices/lonely')).json.reading_count).toBe(1);
  });
});

describe('compressed bodies on every JSON ingest route', () => {
  const gz = (value: unknown) => gzipSync(JSON.stringify(value));
  const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip' };

  test.each([
    ['/v1/readings', [{ device_id: 'gz-v1', ts: '2024-01-01T00:00:00Z', count: 1 }], 200, 'gz-v1'],
    ['/api/device-readings/create', { id: '9d6f1d8e-0c36-4a5b-9a55-0c4f6f1d7a10', readings: [{ count: 1, timestamp: '2024-01-01T00:00:00Z' }] }, 201, '9d6f1d8e-0c36-4a5b-9a55-0c4f6f1d7a10'],
    ['/ingest', { id: 'gz-ingest', readings: [{ timestamp: '2024-01-01T00:00:00Z', count: 1 }] }, 202, 'gz-ingest'],
    ['/ingest', { device_id: 'gz-record', timestamp: '2024-01-01T00:00:00Z', data_payload: { a: 1 } }, 201, 'gz-record'],
    ['/vital-data', { device: 'gz-vital', timestamp: 1704067200, heartRate: 70 }, 202, 'gz-vital'],
  ])('%s accepts a gzip body', async (url, body, status, device) => {
    const res = await t.tally.server.inject({ method: 'POST', url, payload: gz(body), headers });
    expect(res.statusCode, res.body).toBe(status);
    expect((await get(t, `/v1/devices/${device}`)).status).toBe(200);
  });

  test('NDJSON, gzipped or deflated', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => JSON.stringify({ device_id: 'gz-nd', ts: new Date(BASE_MS + i * 1000).toISOString(), count: 1 })).join('\n');
    const { deflateSync } = await import('node:zlib');
    for (const [encoding, payload] of [['gzip', gzipSync(lines)], ['deflate', deflateSync(lines)]] as const) {
      const res = await t.tally.server.inject({
        method: 'POST',
        url: '/v1/readings',
        payload,
        headers: { 'content-type': 'application/x-ndjson', 'content-encoding': encoding },
      });
      expect(res.statusCode, res.body).toBe(200);
    }
    expect((await get(t, '/v1/devices/gz-nd')).json.reading_count).toBe(100);
  });

  test('a gzip bomb (50 KiB that inflate to 200 MiB) is a 413, and the heap does not take it in', async () => {
    const bomb = gzipSync(Buffer.alloc(200 * 2 ** 20, 0x20));
    expect(bomb.length).toBeLessThan(300 * 1024);
    const before = process.memoryUsage().heapUsed;
    for (const url of ['/v1/readings', '/write']) {
      const res = await t.tally.server.inject({ method: 'POST', url, payload: bomb, headers: { ...headers, 'content-type': url === '/write' ? 'text/plain' : 'application/json' } });
      expect(res.statusCode, url).toBe(413);
    }
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 2 ** 20);
  });

  test('a body that is not gzip though it says so is a 400; an unknown encoding a 415', async () => {
    const bad = await post(t, '/v1/readings', [{ device_id: 'x', ts: '2024-01-01T00:00:00Z' }], { 'content-encoding': 'gzip' });
    expect(bad.status).toBe(400);
    const unknown = await post(t, '/v1/readings', [{ device_id: 'x', ts: '2024-01-01T00:00:00Z' }], { 'content-encoding': 'snappy' });
    expect(unknown.status).toBe(415);
  });
});
