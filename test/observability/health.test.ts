import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { scrape, valueOf } from './exposition.js';

/**
 * /healthz and /readyz on a real Tally. The store is made unable to write the way it happens in
 * production: another connection holds the database's write lock (an exclusive transaction), so
 * the writer's BEGIN IMMEDIATE waits and then fails with SQLITE_BUSY.
 */

type Harness = Awaited<ReturnType<typeof startTally>>;

async function readyz(t: Harness): Promise<{ status: number; body: any }> {
  const res = await t.tally.server.inject({ method: 'GET', url: '/readyz' });
  return { status: res.statusCode, body: res.json() };
}

describe('/healthz', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
  });
  afterAll(() => t.stop());

  test('200 with the event-loop delay, an open route', async () => {
    const res = await t.tally.server.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.status).toBe('ok');
    expect(body.uptimeSeconds).toBeGreaterThanOrEqual(0);
    for (const key of ['mean', 'p99', 'max']) expect(body.eventLoopDelayMs[key]).toBeGreaterThanOrEqual(0);
  });

  test('reports a blocked event loop', async () => {
    await t.tally.server.inject({ method: 'GET', url: '/healthz' }); // starts a new window
    // Node's monitor drops the first interval after a reset: let one pass before blocking.
    await new Promise((r) => setTimeout(r, 60));
    const until = Date.now() + 150;
    while (Date.now() < until); // block the loop
    await new Promise((r) => setTimeout(r, 60));
    const body = (await t.tally.server.inject({ method: 'GET', url: '/healthz' })).json();
    expect(body.eventLoopDelayMs.max).toBeGreaterThanOrEqual(100);
  });
});

describe('/readyz', () => {
  let t: Harness;
  let file: string;
  beforeAll(async () => {
    // A queue of 10 readings, so that one stuck write fills it.
    t = await startTally({ TALLY_MAX_READINGS: '10', TALLY_QUEUE_LIMIT: '10' });
    file = join(t.dir, 'tally.db');
  });
  afterAll(() => t.stop());

  test('200 {status: "ready"} when the store can write and the queue has room', async () => {
    expect(await readyz(t)).toEqual({ status: 200, body: { status: 'ready' } });
  });

  test('503 with the reasons while the store cannot write and the queue is full; 200 again once it can', async () => {
    const other = new Database(file, { timeout: 0 });
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      other.exec('ROLLBACK');
      other.close();
    };
    try {
      other.exec('BEGIN EXCLUSIVE');

      const locked = await readyz(t);
      expect(locked.status).toBe(503);
      expect(locked.body.status).toBe('not ready');
      expect(locked.body.reasons).toEqual([expect.stringMatching(/^store: .*database is locked/)]);

      // A write now waits for the lock, holding the whole queue; the next one is refused at once.
      const stuck = t.tally.server.inject({
        method: 'POST',
        url: '/v1/readings',
        payload: Array.from({ length: 10 }, (_, i) => ({ device_id: `stuck-${i}`, ts: '2026-01-01T00:00:00Z' })),
      });
      for (let i = 0; i < 100 && t.tally.batcher.stats().writing < 10; i++) await new Promise((r) => setTimeout(r, 10));
      expect(t.tally.batcher.stats().writing).toBe(10);
      const refused = await t.tally.server.inject({ method: 'POST', url: '/v1/readings', payload: [{ device_id: 'late', ts: '2026-01-01T00:00:00Z' }] });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');

      const full = await readyz(t);
      expect(full.status).toBe(503);
      expect(full.body.reasons).toContain('queue: full (10 of 10 readings waiting to commit)');
      expect(full.body.reasons.some((r: string) => r.startsWith('store: '))).toBe(true);

      release();
      expect((await stuck).statusCode).toBe(200);
      const { samples } = await scrape(t.tally);
      expect(valueOf(samples, 'tally_backpressure_rejections_total', { transport: 'http' })).toBe(1);
      expect(valueOf(samples, 'tally_readings_rejected_total', { transport: 'http', surface: 'v1', reason: 'queue_full' })).toBe(1);
      expect(valueOf(samples, 'tally_readings_accepted_total', { transport: 'http', surface: 'v1' })).toBe(10);
      expect(valueOf(samples, 'tally_store_errors_total', { backend: 'sqlite', op: 'probe' })).toBeGreaterThanOrEqual(1);
    } finally {
      release();
    }
    expect(await readyz(t)).toEqual({ status: 200, body: { status: 'ready' } });
  }, 20_000);
});
