import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTally } from './helpers.js';

let t: Awaited<ReturnType<typeof startTally>>;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

test('200 concurrent single-reading posts for one device count exactly 200', async () => {
  const id = '063c5957-8905-45f9-bfe3-960713788919';
  const base = Date.UTC(2024, 0, 1);
  const responses = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      t.tally.server.inject({
        method: 'POST',
        url: '/api/device-readings/create',
        payload: { id, readings: [{ count: 1, timestamp: new Date(base + i * 1000).toISOString() }] },
      }),
    ),
  );
  expect(responses.every((r) => r.statusCode === 201)).toBe(true);
  const res = await t.tally.server.inject({ method: 'GET', url: `/api/device-readings/${id}/cumulative-count` });
  expect(res.json()).toEqual({ cumulative_count: 200 });
});
