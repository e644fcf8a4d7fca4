import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';

/**
 * Request ids and log lines, captured from a real Tally through a pino destination stream: the id
 * a client sends (when safe) or a new one, echoed and on every line of the request; the request
 * line only with TALLY_REQUEST_LOG=on; never a credential or a payload in a log line.
 */

type Harness = Awaited<ReturnType<typeof startTally>>;
/** Tally's own ids: a random prefix of the process and a counter. */
const NEW_ID = /^[0-9a-f]{12}-[0-9a-z]+$/;
const SECRET = 'Bearer very-secret-token-123';
const PAYLOAD = 'payload-contents-xyz';

function capture(): { lines: string[]; logged: () => any[]; stream: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, logged: () => lines.map((l) => JSON.parse(l)), stream: { write: (line: string) => void lines.push(line) } };
}

describe('request ids and the request log (TALLY_REQUEST_LOG=on)', () => {
  let t: Harness;
  const log = capture();
  beforeAll(async () => {
    t = await startTally({ TALLY_LOG_LEVEL: 'debug', TALLY_REQUEST_LOG: 'on', TALLY_ADMIN_TOKEN: 'an-admin-token-long-enough' }, { logStream: log.stream });
  });
  afterAll(() => t.stop());

  test("a safe X-Request-Id is echoed and is on the request's log line; no credential or payload is logged", async () => {
    const res = await t.tally.server.inject({
      method: 'POST',
      url: '/v1/readings?precision=ms',
      headers: { 'x-request-id': 'client-id.42', authorization: SECRET, 'content-type': 'application/json' },
      payload: JSON.stringify([{ device_id: 'log-1', ts: 1_700_000_000_000, payload: { note: PAYLOAD } }]),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe('client-id.42');
    const line = log.logged().find((l) => l.reqId === 'client-id.42' && l.msg === 'request');
    expect(line).toMatchObject({ level: 20, method: 'POST', url: '/v1/readings', route: '/v1/readings', statusCode: 200 });
    expect(line.responseTimeMs).toBeGreaterThanOrEqual(0);
    // An admin route with a wrong token: refused, and the token is not logged either.
    const denied = await t.tally.server.inject({ method: 'DELETE', url: '/v1/devices/log-1', headers: { authorization: SECRET } });
    expect(denied.statusCode).toBe(401);
    const all = log.lines.join('\n');
    expect(all).not.toContain('very-secret-token-123');
    expect(all).not.toContain(PAYLOAD);
  });

  test('an unsafe or over-long X-Request-Id is replaced by a new one; none given, one is made', async () => {
    for (const given of ['has space', 'semi;colon', 'x'.repeat(129), '<script>']) {
      const res = await t.tally.server.inject({ method: 'GET', url: '/api/ping', headers: { 'x-request-id': given } });
      expect(res.headers['x-request-id']).toMatch(NEW_ID);
      expect(log.lines.join('\n')).not.toContain(given);
    }
    const a = await t.tally.server.inject({ method: 'GET', url: '/api/ping' });
    const b = await t.tally.server.inject({ method: 'GET', url: '/api/ping' });
    expect(a.headers['x-request-id']).toMatch(NEW_ID);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    expect(log.logged().some((l) => l.reqId === a.headers['x-request-id'] && l.msg === 'request')).toBe(true);
    // 128 safe characters are kept as they are.
    const long = 'a'.repeat(120) + '-._:9876';
    expect((await t.tally.server.inject({ method: 'GET', url: '/api/ping', headers: { 'x-request-id': long } })).headers['x-request-id']).toBe(long);
  });

  test('credentials are redacted from any log line that would carry them', () => {
    t.tally.server.log.info({ headers: { authorization: SECRET }, req: { headers: { authorization: SECRET } } }, 'with headers');
    const line = log.logged().find((l) => l.msg === 'with headers');
    expect(line.headers.authorization).toBe('[Redacted]');
    expect(JSON.stringify(line)).not.toContain('very-secret-token-123');
  });

  test("a store failure is logged with the request's id and the error", async () => {
    // The store closed under the server: the write is refused with StorageUnavailableError.
    await t.tally.store.close();
    const res = await t.tally.server.inject({
      method: 'POST',
      url: '/v1/readings',
      headers: { 'x-request-id': 'failing-write' },
      payload: [{ device_id: 'log-2', ts: '2026-01-01T00:00:00Z' }],
    });
    expect(res.statusCode).toBe(503);
    expect(res.headers['x-request-id']).toBe('failing-write');
    const line = log.logged().find((l) => l.reqId === 'failing-write' && l.level === 40);
    expect(line).toMatchObject({ code: 'StorageUnavailable', err: { type: 'StorageUnavailableError', message: 'the store is closed' } });
    expect(typeof line.err.stack).toBe('string');
  });
});

describe('request log off (the default)', () => {
  let t: Harness;
  const log = capture();
  beforeAll(async () => {
    t = await startTally({ TALLY_LOG_LEVEL: 'debug' }, { logStream: log.stream });
  });
  afterAll(() => t.stop());

  test('no line per request, even at debug; the id is still echoed', async () => {
    const res = await t.tally.server.inject({ method: 'GET', url: '/api/ping', headers: { 'x-request-id': 'quiet-1' } });
    expect(res.headers['x-request-id']).toBe('quiet-1');
    expect(log.logged().filter((l) => l.msg === 'request')).toEqual([]);
  });
});
