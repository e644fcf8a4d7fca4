import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Reading } from '../../src/domain/reading.js';
import { formatUtc } from '../../src/domain/timestamp.js';
import { startTally } from '../helpers.js';
import { get, post, type Harness } from './client.js';

/**
 * Reads that touch a whole large device: answered off the event loop that parses requests, and
 * streamed in bounded memory where a surface's answer is "every reading".
 */

const BIG = 'big-device';
const BIG_READINGS = 400_000;
const BASE_MS = Date.UTC(2024, 0, 1);

let t: Harness;
let address: string;
beforeAll(async () => {
  t = await startTally({ TALLY_LOG_LEVEL: 'silent' });
  address = await t.tally.listen();
  // Written straight to the store in time order (the fastest path), one reading a second.
  for (let start = 0; start < BIG_READINGS; start += 10_000) {
    const batch: Reading[] = [];
    for (let i = start; i < start + 10_000; i++) {
      const tsUs = (BASE_MS + i * 1000) * 1000;
      batch.push({ deviceId: BIG, tsUs, tsText: formatUtc(tsUs), count: i % 7, payload: null });
    }
    await t.tally.store.appendBatch(batch);
  }
}, 120_000);
afterAll(() => t.stop());

describe('GET /devices/:id streams every reading', () => {
  test('the streamed answer is byte for byte the object the surface documents, across page boundaries', async () => {
    const id = 'stream-small';
    // 12,003 readings (more than two pages), some with offsets kept as sent, some without a count.
    const readings = Array.from({ length: 12_003 }, (_, i) => ({
      timestamp: i % 5 === 0 ? new Date(BASE_MS + i * 1000).toISOString().replace('Z', '+00:00') : new Date(BASE_MS + i * 1000).toISOString(),
      count: i % 3,
    }));
    for (let i = 0; i < readings.length; i += 5000) {
      expect((await post(t, '/ingest', { id, readings: readings.slice(i, i + 5000) })).status).toBe(202);
    }
    const expected: Record<string, number> = {};
    for (const r of readings) expected[r.timestamp] = r.count;
    const res = await t.tally.server.inject({ method: 'GET', url: `/devices/${id}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const latest = readings[readings.length - 1]!.timestamp;
    const cumulative = readings.reduce((sum, r) => sum + r.count, 0);
    expect(res.body).toBe(JSON.stringify({ data: expected, latest_timestamp: latest, cumulative_count: cumulative }));
    // A device without readings is still the documented 404.
    expect((await get(t, '/devices/nobody-here')).status).toBe(404);
  });

  test(`${BIG_READINGS.toLocaleString('en-US')} readings stream with bounded memory: the heap grows by far less than the answer`, async () => {
    const heap = () => process.memoryUsage().heapUsed;
    const before = heap();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, heap())), 2);
    let bytes = 0;
    try {
      const res = await fetch(`${address}/devices/${BIG}`);
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      let tail = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        tail = (tail + Buffer.from(value).toString()).slice(-200);
      }
      expect(tail).toMatch(/"cumulative_count":\d+\}$/);
    } finally {
      clearInterval(sampler);
    }
    // Holding the readings whole (as objects, then as one object map) takes several times the
    // answer's bytes; a page at a time takes a small fraction of them.
    expect(bytes).toBeGreaterThan(8_000_000);
    expect(peak - before, `heap grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB streaming ${(bytes / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(40 * 2 ** 20);
  });

  test('a client that goes away mid-stream stops the reads', async () => {
    const store = t.tally.store;
    const original = store.deviceReadings.bind(store);
    let pages = 0;
    store.deviceReadings = (...args: Parameters<typeof original>) => {
      pages++;
      return original(...args);
    };
    try {
      // A real disconnect: the socket closes after the first bytes of the answer.
      await new Promise<void>((resolve, reject) => {
        const req = request(`${address}/devices/${BIG}`, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.once('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const seen = pages;
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(pages).toBe(seen);
      expect(seen).toBeLessThan(BIG_READINGS / 5000);
    } finally {
      store.deviceReadings = original;
    }
  });
});

describe('reads run off the event loop', () => {
  test('while aggregates over the large device run, the event loop stays free for other requests', async () => {
    const url = `/v1/devices/${BIG}/aggregate?every=1h&fn=count,sum,min,max,avg`;
    const started = performance.now();
    const first = await get(t, url);
    const oneAggregateMs = performance.now() - started;
    expect(first.status).toBe(200);
    expect(first.json.buckets.reduce((n: number, b: { count: number }) => n + b.count, 0)).toBe(BIG_READINGS);

    // The longest gap between ticks of a 5 ms timer: how long the event loop was held at once.
    let last = performance.now();
    let maxGapMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    }, 5);
    const writes: number[] = [];
    const aggregates = Promise.all(Array.from({ length: 3 }, () => get(t, url)));
    try {
      for (let i = 0; i < 20; i++) {
        const sent = performance.now();
        const res = await post(t, '/v1/readings', [{ device_id: 'during-aggregates', ts: formatUtc((BASE_MS + i * 1000) * 1000), count: 1 }]);
        expect(res.status).toBe(200);
        writes.push(performance.now() - sent);
      }
      await aggregates;
      await new Promise((resolve) => setTimeout(resolve, 20)); // the tick after the last aggregate
    } finally {
      clearInterval(ticker);
    }
    // A query on the event loop would hold it, and every write behind it, for as long as the query
    // takes; off it, both stay a small part of one aggregate (loose: a guard, not a benchmark).
    const bound = Math.max(100, oneAggregateMs / 2);
    const slowestWrite = Math.max(...writes);
    const context = `longest event-loop hold ${maxGapMs.toFixed(1)} ms, slowest write ${slowestWrite.toFixed(1)} ms; one aggregate ${oneAggregateMs.toFixed(1)} ms`;
    expect(maxGapMs, context).toBeLessThan(bound);
    expect(slowestWrite, context).toBeLessThan(bound);
    expect((await get(t, '/v1/devices/during-aggregates')).json.reading_count).toBe(20);
  });
});
