import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { get, nestedObject, nestedObjectText, post, send, type Answer, type Harness } from './client.js';

/**
 * Bad input on every surface: a clear JSON error naming what is wrong, nothing stored, never a 5xx,
 * and the server keeps answering. `send` asserts < 500 and a JSON body on every answer.
 */

const UUID = '063c5957-8905-45f9-bfe3-960713788919';
const JSON_TYPE = { 'content-type': 'application/json' };

/** The three error shapes, keyed by surface, reduced to (message, field-if-any). */
type Surface = 'bright' | 'ingest' | 'vital';
const URL_OF: Record<Surface, string> = { bright: '/api/device-readings/create', ingest: '/ingest', vital: '/vital-data' };

function errorOf(surface: Surface, res: Answer): { message: string; field?: string } {
  const body = res.json;
  if (surface === 'bright') {
    expect(Object.keys(body).sort()).toEqual(['error_message', 'status', 'status_code']);
    expect(body.status).toBe('error');
    expect(body.status_code).toBe(res.status);
    return { message: body.error_message };
  }
  if (surface === 'vital') {
    expect(body.status).toBe('error');
    if (res.status === 400) {
      expect(body.message).toBe('Invalid payload');
      expect(body.issues.length).toBeGreaterThan(0);
      return { message: body.issues[0].message, field: body.issues[0].path.join('.') };
    }
    return { message: body.message };
  }
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.code).toBe('string');
  return { message: body.error.message, field: body.error.field };
}

describe('default limits', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
  });
  afterAll(() => t.stop());

  test('malformed JSON → 400 JSON error on every surface', async () => {
    for (const surface of ['bright', 'ingest', 'vital'] as const) {
      for (const text of ['{bad', '{"id": "x",}', '{"id": "x"', "{'id': 1}"]) {
        const res = await send(t, { method: 'POST', url: URL_OF[surface], body: text, headers: JSON_TYPE });
        expect(res.status).toBe(400);
        const error = errorOf(surface, res);
        expect(error.message).toMatch(/^body is not valid JSON/);
        if (surface !== 'bright') expect(error.field).toBe('body');
      }
    }
  });

  test('an empty body with a JSON content type → 400 naming body', async () => {
    const res = await send(t, { method: 'POST', url: '/ingest', body: '', headers: JSON_TYPE });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe('body');
    expect(res.json.error.message).toMatch(/empty/i);
  });

  test('text/plain, a form or no content type → 415 naming content-type', async () => {
    const body = JSON.stringify({ id: UUID, readings: [{ count: 1, timestamp: '2021-09-29T16:09:15Z' }] });
    for (const surface of ['bright', 'ingest', 'vital'] as const) {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'text/csv']) {
        const res = await send(t, { method: 'POST', url: URL_OF[surface], body, headers: { 'content-type': type } });
        expect(res.status).toBe(415);
        const error = errorOf(surface, res);
        expect(error.message).toMatch(/media type/i);
        if (surface === 'ingest') expect(error.field).toBe('content-type');
      }
    }
    const untyped = await t.tally.server.inject({ method: 'POST', url: '/ingest', payload: body, headers: { 'content-type': '' } });
    expect(untyped.statusCode).toBe(415);
    expect(untyped.json().error.field).toBe('content-type');
    // Nothing was stored by any of them.
    expect((await get(t, `/api/device-readings/${UUID}/cumulative-count`)).status).toBe(404);
  });

  test('JSON with a charset parameter is accepted', async () => {
    const id = randomUUID();
    const res = await send(t, {
      method: 'POST',
      url: '/api/device-readings/create',
      body: JSON.stringify({ id, readings: [{ count: 2, timestamp: '2021-09-29T16:09:15Z' }] }),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(res.status).toBe(201);
  });

  test("a raw '['.repeat(100000) body → 400 on every surface, and the server keeps answering", async () => {
    for (const surface of ['bright', 'ingest', 'vital'] as const) {
      const open = await send(t, { method: 'POST', url: URL_OF[surface], body: '['.repeat(100_000), headers: JSON_TYPE });
      expect(open.status).toBe(400);
      expect(errorOf(surface, open).message).toMatch(/^body is not valid JSON/);
      // Well-formed but 100,000 deep: valid JSON, not an object.
      const closed = await send(t, { method: 'POST', url: URL_OF[surface], body: '['.repeat(100_000) + ']'.repeat(100_000), headers: JSON_TYPE });
      expect(closed.status).toBe(400);
      expect(errorOf(surface, closed).message).toMatch(/body must be object/);
    }
    expect((await get(t, '/api/ping')).json).toEqual({ status: 'ok' });
  });

  test('a data_payload nested 10,000 levels deep → 400 naming data_payload, nothing stored', async () => {
    const body = `{"device_id":"deep-rec","timestamp":"2025-01-01T00:00:00Z","data_payload":${nestedObjectText(10_000)}}`;
    const res = await send(t, { method: 'POST', url: '/ingest', body, headers: JSON_TYPE });
    expect(res.status).toBe(400);
    expect(res.json.error).toEqual({ code: 'InvalidInput', message: 'data_payload is nested deeper than 32 levels', field: 'data_payload' });
    expect((await get(t, '/devices/deep-rec')).status).toBe(404);
    expect((await get(t, '/api/ping')).status).toBe(200);
  });

  test('deep values anywhere else in a body → 400 naming the field, never a 500', async () => {
    const deep = nestedObjectText(10_000);
    const deepArray = '['.repeat(100_000) + ']'.repeat(100_000);

    // Device readings: a deeply nested timestamp is that reading's 400 (not echoed back).
    for (const [k, value] of [deep, deepArray].entries()) {
      const res = await send(t, {
        method: 'POST',
        url: '/ingest',
        body: `{"id":"deep-dev","readings":[{"timestamp":${value},"count":1},{"timestamp":"2025-01-01T00:00:0${k}Z","count":1}]}`,
        headers: JSON_TYPE,
      });
      expect(res.status).toBe(207);
      expect(res.json.results[0]).toMatchObject({ id: 'deep-dev', success: false, status: 400, timestamp: null });
      expect(res.json.results[0].error).toMatch(/readings\[0\]\.timestamp/);
      expect(res.json.results[1]).toMatchObject({ success: true, status: 202 });
    }
    for (const [json, field] of [
      [`{"id":${deep},"readings":[{"timestamp":"2025-01-01T00:00:00Z","count":1}]}`, 'id'],
      [`{"id":"deep-dev2","readings":${deepArray}}`, 'readings[0]'],
      [`{"id":"deep-dev2","readings":[{"timestamp":"2025-01-01T00:00:00Z","count":${deep}}]}`, 'readings[0].count'],
      [`{"device_id":${deep},"timestamp":"2025-01-01T00:00:00Z","data_payload":{}}`, 'device_id'],
      [`{"device_id":"deep-rec2","timestamp":${deep},"data_payload":{}}`, 'timestamp'],
    ] as const) {
      const res = await send(t, { method: 'POST', url: '/ingest', body: json, headers: JSON_TYPE });
      if (res.status === 207) {
        expect(res.json.results[0].status).toBe(400);
        expect(res.json.results[0].error).toContain(field);
      } else {
        expect(res.status).toBe(400);
        expect(res.json.error.field).toBe(field);
      }
    }

    const bright = await send(t, {
      method: 'POST',
      url: '/api/device-readings/create',
      body: `{"id":"${UUID}","readings":[{"timestamp":${deep},"count":1}]}`,
      headers: JSON_TYPE,
    });
    expect(bright.status).toBe(400);
    expect(errorOf('bright', bright).message).toMatch(/readings\[0\]\.timestamp/);

    const vital = await send(t, { method: 'POST', url: '/vital-data', body: `{"device":"deep-v","timestamp":1750240800,"extra":${deep}}`, headers: JSON_TYPE });
    expect(vital.status).toBe(400);
    expect(errorOf('vital', vital)).toEqual({ message: 'extra must be number', field: 'extra' });

    expect((await get(t, '/devices/deep-dev2')).status).toBe(404);
    expect((await get(t, '/devices/deep-rec2')).status).toBe(404);
    expect((await get(t, '/devices/deep-v')).status).toBe(404);
    expect((await get(t, '/devices/deep-dev/cumulative_count')).json).toEqual({ cumulative_count: 2 });
  });

  test('a payload nested 32 deep is stored; 33 deep → 400 naming data_payload', async () => {
    const ok = await post(t, '/ingest', { device_id: 'depth', timestamp: '2025-01-01T00:00:00Z', data_payload: nestedObject(32) });
    expect(ok.status).toBe(201);
    const tooDeep = await post(t, '/ingest', { device_id: 'depth', timestamp: '2025-01-01T00:00:01Z', data_payload: nestedObject(33) });
    expect(tooDeep.status).toBe(400);
    expect(tooDeep.json.error.field).toBe('data_payload');
    expect(tooDeep.json.error.message).toMatch(/nested deeper than 32/);
    // Arrays count as levels too.
    let arrays: unknown = 1;
    for (let i = 0; i < 32; i++) arrays = [arrays];
    const viaArrays = await post(t, '/ingest', { device_id: 'depth', timestamp: '2025-01-01T00:00:02Z', data_payload: { a: arrays } });
    expect(viaArrays.status).toBe(400);
    expect(viaArrays.json.error.field).toBe('data_payload');
    expect((await get(t, '/devices/depth/cumulative_count')).status).toBe(200);
    expect(Object.keys((await get(t, '/devices/depth')).json.data)).toEqual(['2025-01-01T00:00:00Z']);
  });

  test('__proto__ and constructor.prototype keys → 400 on every surface, nothing stored, no pollution', async () => {
    const bodies: Array<[Surface, string]> = [
      ['bright', `{"__proto__":{"polluted":1},"id":"${UUID}","readings":[{"count":1,"timestamp":"2021-09-29T16:09:15Z"}]}`],
      ['bright', `{"id":"${UUID}","readings":[{"count":1,"timestamp":"2021-09-29T16:09:15Z","__proto__":{"polluted":1}}]}`],
      ['ingest', `{"id":"proto-dev","readings":[{"timestamp":"2025-01-01T00:00:00Z","count":1,"__proto__":{"polluted":1}}]}`],
      ['ingest', `{"device_id":"proto-rec","timestamp":"2025-01-01T00:00:00Z","data_payload":{"x":{"__proto__":{"polluted":1}}}}`],
      ['ingest', `{"device_id":"proto-rec","timestamp":"2025-01-01T00:00:00Z","data_payload":{"constructor":{"prototype":{"polluted":1}}}}`],
      ['vital', `{"device":"proto-v","timestamp":1750240800,"__proto__":{"polluted":1}}`],
    ];
    for (const [surface, body] of bodies) {
      const res = await send(t, { method: 'POST', url: URL_OF[surface], body, headers: JSON_TYPE });
      expect(res.status, body).toBe(400);
      const error = errorOf(surface, res);
      expect(error.message.length).toBeGreaterThan(0);
      if (surface !== 'bright') expect(error.field).toBe('body');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await get(t, `/api/device-readings/${UUID}/cumulative-count`)).status).toBe(404);
    expect((await get(t, '/devices/proto-dev')).status).toBe(404);
    expect((await get(t, '/devices/proto-rec')).status).toBe(404);
    expect((await get(t, '/devices/proto-v')).status).toBe(404);
  });

  test('unknown routes and methods → 404 JSON', async () => {
    for (const [method, url] of [
      ['GET', '/nope'],
      ['GET', '/api/device-readings'],
      ['POST', '/records'],
      ['DELETE', '/ingest'],
      ['PUT', '/vital-data'],
    ] as const) {
      const res = await send(t, { method, url });
      expect(res.status).toBe(404);
      expect(res.json.error.code).toBe('NotFound');
      expect(res.json.error.message).toContain(url);
    }
    const withBody = await post(t, '/nowhere', { a: 1 });
    expect(withBody.status).toBe(404);
  });

  test('a malformed percent-escape in a path → 400 JSON', async () => {
    for (const url of ['/devices/%ZZ', '/api/device-readings/%E0%A4%A/cumulative-count']) {
      const res = await get(t, url);
      expect(res.status).toBe(400);
      expect(res.text).toContain('not a valid url');
    }
  });

  test('impossible dates and strings where numbers belong → 400 on every surface', async () => {
    const cases: Array<[Surface, unknown, string]> = [
      ['bright', { id: UUID, readings: [{ count: 1, timestamp: '2021-09-29T24:00:00Z' }] }, 'readings[0].timestamp'],
      ['bright', { id: UUID, readings: [{ count: '1', timestamp: '2021-09-29T16:00:00Z' }] }, 'readings[0].count'],
      ['ingest', { device_id: 'imp', timestamp: '2021-04-31T00:00:00Z', data_payload: {} }, 'timestamp'],
      ['ingest', { device_id: 'imp', timestamp: '2021-04-30T00:00:00+24:00', data_payload: {} }, 'timestamp'],
      ['vital', { device: 'imp', timestamp: '1750240800' }, 'timestamp'],
      ['vital', { device: 'imp', timestamp: 1750240800, heartRateValue: '80' }, 'heartRateValue'],
    ];
    for (const [surface, body, field] of cases) {
      const res = await post(t, URL_OF[surface], body);
      expect(res.status).toBe(400);
      const error = errorOf(surface, res);
      expect(error.message).toContain(field);
      if (surface !== 'bright') expect(error.field).toBe(field);
    }
  });
});

describe('configured limits', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally({ TALLY_BODY_LIMIT: '2KiB', TALLY_MAX_READINGS: '3' });
  });
  afterAll(() => t.stop());

  const readings = (n: number, count = 1) =>
    Array.from({ length: n }, (_, i) => ({ count, timestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString() }));

  test('a body over TALLY_BODY_LIMIT → 413 on every surface, nothing stored', async () => {
    const bodies: Record<Surface, unknown> = {
      bright: { id: UUID, readings: [{ count: 1, timestamp: '2024-01-01T00:00:00Z', pad: 'x'.repeat(3000) }] },
      ingest: { device_id: 'big', timestamp: '2024-01-01T00:00:00Z', data_payload: { pad: 'x'.repeat(3000) } },
      vital: { device: 'x'.repeat(3000), timestamp: 1750240800 },
    };
    for (const surface of ['bright', 'ingest', 'vital'] as const) {
      const res = await post(t, URL_OF[surface], bodies[surface]);
      expect(res.status).toBe(413);
      expect(errorOf(surface, res).message).toMatch(/too large/i);
      if (surface === 'ingest') expect(res.json.error.field).toBe('body');
    }
    // Just under the limit is fine.
    const fits = await post(t, '/ingest', { device_id: 'big', timestamp: '2024-01-01T00:00:00Z', data_payload: { pad: 'x'.repeat(1900) } });
    expect(fits.status).toBe(201);
    expect((await get(t, `/api/device-readings/${UUID}/cumulative-count`)).status).toBe(404);
  });

  test('more readings than TALLY_MAX_READINGS → 413 naming readings, nothing stored; exactly the limit is fine', async () => {
    const id = randomUUID();
    const bright = await post(t, '/api/device-readings/create', { id, readings: readings(4) });
    expect(bright.status).toBe(413);
    expect(errorOf('bright', bright).message).toMatch(/readings holds 4 readings; at most 3/);
    // Even when the excess readings are themselves invalid, the limit is what is reported.
    const invalid = await post(t, '/api/device-readings/create', { id, readings: [1, 2, 3, 4] });
    expect(invalid.status).toBe(413);

    const ingest = await post(t, '/ingest', { id, readings: readings(4) });
    expect(ingest.status).toBe(413);
    expect(ingest.json.error).toMatchObject({ code: 'TooManyReadings', field: 'readings' });
    expect(ingest.json.error.message).toMatch(/at most 3/);

    expect((await get(t, `/devices/${id}`)).status).toBe(404);

    expect((await post(t, '/api/device-readings/create', { id, readings: readings(3, 2) })).status).toBe(201);
    expect((await get(t, `/api/device-readings/${id}/cumulative-count`)).json).toEqual({ cumulative_count: 6 });
  });
});

describe('a full write queue', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally({ TALLY_QUEUE_LIMIT: '10', TALLY_MAX_READINGS: '10' });
  });
  afterAll(() => t.stop());

  test('→ 503 with Retry-After and a JSON body; what was acknowledged is counted exactly', async () => {
    const id = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, r) =>
        t.tally.server.inject({
          method: 'POST',
          url: '/api/device-readings/create',
          payload: {
            id,
            readings: Array.from({ length: 10 }, (_, i) => ({ count: 1, timestamp: new Date(Date.UTC(2024, 0, 1) + (r * 10 + i) * 1000).toISOString() })),
          },
        }),
      ),
    );
    const statuses = responses.map((r) => r.statusCode);
    expect(statuses.every((s) => s === 201 || s === 503)).toBe(true);
    const accepted = statuses.filter((s) => s === 201).length;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(20);
    for (const res of responses.filter((r) => r.statusCode === 503)) {
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json()).toEqual({ status: 'error', error_message: expect.stringMatching(/queue is full/), status_code: 503 });
    }
    expect((await get(t, `/api/device-readings/${id}/cumulative-count`)).json).toEqual({ cumulative_count: accepted * 10 });
  });
});
