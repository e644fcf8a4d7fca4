import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { del, get, postReadings, type Harness } from '../http/client.js';

/** DELETE /v1/devices/:id: admin only, removes the device and its readings and nothing else. */

const TOKEN = 'admin-token-0123456789abcdef';

describe('without TALLY_ADMIN_TOKEN', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
    await postReadings(t, [{ device_id: 'keep-1', ts: '2024-01-01T00:00:00Z', count: 1 }]);
  });
  afterAll(() => t.stop());

  test('DELETE needs an admin key even while other routes are open: 401 whatever the header says, and deletes nothing', async () => {
    const variants: Array<Record<string, string>> = [{}, { authorization: `Bearer ${TOKEN}` }, { authorization: 'Bearer ' }];
    for (const headers of variants) {
      const res = await del(t, '/v1/devices/keep-1', headers);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="tally"');
      expect(res.json.error.code).toBe('Unauthorized');
    }
    expect((await del(t, '/v1/devices/keep-1')).json.error.message).toContain('tally keys create');
    expect((await get(t, '/v1/devices/keep-1')).json.reading_count).toBe(1);
  });
});

describe('with TALLY_ADMIN_TOKEN', () => {
  let t: Harness;
  const auth = { authorization: `Bearer ${TOKEN}` };
  beforeAll(async () => {
    t = await startTally({ TALLY_ADMIN_TOKEN: TOKEN });
    const res = await postReadings(t, [
      { device_id: 'del-1', ts: '2024-01-01T00:00:00Z', count: 3, payload: { a: 1 } },
      { device_id: 'del-1', ts: '2024-01-01T00:01:00Z', count: 4 },
      { device_id: 'del-10', ts: '2024-01-01T00:00:00Z', count: 5 },
      { device_id: 'other', ts: '2024-01-01T00:00:00Z', count: 6 },
      { device_id: 'other', ts: '2024-01-01T00:02:00Z', count: 7 },
    ]);
    expect(res.json.accepted).toBe(5);
  });
  afterAll(() => t.stop());

  test('missing or wrong bearer: 401, nothing deleted', async () => {
    const wrong: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `bearer${TOKEN}` },
    ];
    for (const headers of wrong) {
      const res = await del(t, '/v1/devices/del-1', headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.json.error.code).toBe('Unauthorized');
    }
    // Unauthenticated callers cannot probe which devices exist: an unknown one is also a 401.
    expect((await del(t, '/v1/devices/nobody')).status).toBe(401);
    expect((await get(t, '/v1/devices/del-1')).json.reading_count).toBe(2);
  });

  test('204, then the device and its readings are gone; other devices untouched', async () => {
    const res = await del(t, '/v1/devices/del-1', auth);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');

    const summary = await get(t, '/v1/devices/del-1');
    expect(summary.status).toBe(404);
    expect(summary.json.error.code).toBe('NotFound');
    expect((await get(t, '/v1/devices/del-1/readings')).status).toBe(404);
    expect((await get(t, '/v1/devices/del-1/aggregate')).status).toBe(404);
    // The seed surfaces no longer see it either.
    expect((await t.tally.server.inject({ method: 'GET', url: '/devices/del-1/cumulative_count' })).statusCode).toBe(404);
    const records = JSON.parse((await t.tally.server.inject({ method: 'GET', url: '/records?limit=1000' })).body);
    expect(records.records.map((r: any) => r.device_id).sort()).toEqual(['del-10', 'other', 'other']);

    // Same-prefix device and an unrelated one are unchanged.
    expect((await get(t, '/v1/devices/del-10')).json).toMatchObject({ reading_count: 1, cumulative_count: 5 });
    expect((await get(t, '/v1/devices/other')).json).toMatchObject({ reading_count: 2, cumulative_count: 13, latest_ts: '2024-01-01T00:02:00Z' });
    expect((await get(t, '/v1/devices/other/readings')).json.items).toHaveLength(2);
    expect((await get(t, '/v1/devices?prefix=del')).json.items.map((d: any) => d.device_id)).toEqual(['del-10']);
  });

  test('deleting it again, or an unknown device, is 404', async () => {
    for (const id of ['del-1', 'nobody']) {
      const res = await del(t, `/v1/devices/${id}`, auth);
      expect(res.status, id).toBe(404);
      expect(res.json.error.code).toBe('NotFound');
    }
  });

  test('a deleted device starts from scratch when it sends again; its old readings are not duplicates', async () => {
    const res = await postReadings(t, [{ device_id: 'del-1', ts: '2024-01-01T00:00:00Z', count: 9 }]);
    expect(res.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await get(t, '/v1/devices/del-1').then((r) => r.json)).toEqual({
      device_id: 'del-1',
      first_ts: '2024-01-01T00:00:00Z',
      latest_ts: '2024-01-01T00:00:00Z',
      reading_count: 1,
      cumulative_count: 9,
      latest_payload: null,
    });
  });
});
