import Ajv from 'ajv';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { send, type Answer, type Harness, type Sent } from '../http/client.js';
import { bearer, createKey, revokeKey } from './keys.js';

/**
 * The auth matrix: every route x {no key, malformed, wrong scope, wrong device, revoked, valid},
 * with auth on. Each refusal is checked against the route's own documented error schema in
 * /openapi.json, so every surface answers 401/403 in its own shape.
 */

/** A device-bound key's prefix, and devices inside and outside it (bright counter ids are UUIDs). */
const PREFIX = '5a';
const MINE = { plain: '5a-meter', uuid: '5a000000-0000-4000-8000-000000000001' };
const OTHER = { plain: '6b-meter', uuid: '6b000000-0000-4000-8000-000000000001' };
type Devices = typeof MINE;

type Needs = 'open' | 'ingest' | 'read' | 'admin';
/** How a route meets a device-bound key: a device in its path or body, a listing, or the whole fleet. */
type DeviceUse = 'param' | 'body' | 'list' | 'fleet' | 'none';

interface RouteCase {
  readonly route: string;
  readonly needs: Needs;
  readonly devices: DeviceUse;
  readonly request: (d: Devices) => Sent;
  /** Statuses of a valid request (for a device with readings). */
  readonly ok: readonly number[];
}

const ts = '2026-01-01T00:00:00Z';
const lp = (device: string) => ({ body: `m,device=${device} count=1i,v=2 1767225600000000000`, headers: { 'content-type': 'text/plain' } });

const ROUTES: readonly RouteCase[] = [
  { route: 'GET /', needs: 'open', devices: 'none', request: () => ({ method: 'GET', url: '/' }), ok: [200] },
  { route: 'GET /api/ping', needs: 'open', devices: 'none', request: () => ({ method: 'GET', url: '/api/ping' }), ok: [200] },
  { route: 'GET /healthz', needs: 'open', devices: 'none', request: () => ({ method: 'GET', url: '/healthz' }), ok: [200] },
  { route: 'GET /readyz', needs: 'open', devices: 'none', request: () => ({ method: 'GET', url: '/readyz' }), ok: [200] },
  { route: 'GET /metrics', needs: 'read', devices: 'fleet', request: () => ({ method: 'GET', url: '/metrics' }), ok: [200] },
  { route: 'GET /check-buffer', needs: 'read', devices: 'fleet', request: () => ({ method: 'GET', url: '/check-buffer' }), ok: [200] },
  { route: 'GET /records', needs: 'read', devices: 'list', request: () => ({ method: 'GET', url: '/records' }), ok: [200] },
  { route: 'GET /vital-data', needs: 'read', devices: 'list', request: () => ({ method: 'GET', url: '/vital-data' }), ok: [200] },
  { route: 'GET /v1/devices', needs: 'read', devices: 'list', request: () => ({ method: 'GET', url: '/v1/devices' }), ok: [200] },
  { route: 'GET /v1/export', needs: 'read', devices: 'list', request: () => ({ method: 'GET', url: '/v1/export' }), ok: [200] },
  { route: 'GET /v1/devices/{id}', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/v1/devices/${d.plain}` }), ok: [200] },
  { route: 'GET /v1/devices/{id}/readings', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/v1/devices/${d.plain}/readings` }), ok: [200] },
  { route: 'GET /v1/devices/{id}/aggregate', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/v1/devices/${d.plain}/aggregate?every=1h` }), ok: [200] },
  { route: 'DELETE /v1/devices/{id}', needs: 'admin', devices: 'param', request: (d) => ({ method: 'DELETE', url: `/v1/devices/${d.plain}-gone` }), ok: [404] },
  { route: 'GET /devices/{deviceId}', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/devices/${d.plain}` }), ok: [200] },
  { route: 'GET /devices/{deviceId}/latest_timestamp', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/devices/${d.plain}/latest_timestamp` }), ok: [200] },
  { route: 'GET /devices/{deviceId}/cumulative_count', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/devices/${d.plain}/cumulative_count` }), ok: [200] },
  { route: 'GET /api/device-readings/{id}/latest-timestamp', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/api/device-readings/${d.uuid}/latest-timestamp` }), ok: [200] },
  { route: 'GET /api/device-readings/{id}/cumulative-count', needs: 'read', devices: 'param', request: (d) => ({ method: 'GET', url: `/api/device-readings/${d.uuid}/cumulative-count` }), ok: [200] },
  { route: 'POST /v1/readings', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/v1/readings', body: [{ device_id: d.plain, ts, count: 1 }] }), ok: [200] },
  { route: 'POST /api/device-readings/create', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/api/device-readings/create', body: { id: d.uuid, readings: [{ timestamp: '2026-01-01T00:00:00+01:00', count: 1 }] } }), ok: [201] },
  { route: 'POST /ingest', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/ingest', body: { id: d.plain, readings: [{ timestamp: ts, count: 1 }] } }), ok: [202, 207] },
  { route: 'POST /vital-data', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/vital-data', body: { device: d.plain, timestamp: 1767225600, heartRateValue: 70 } }), ok: [202] },
  { route: 'POST /write', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/write?db=x', ...lp(d.plain) }), ok: [204] },
  { route: 'POST /api/v2/write', needs: 'ingest', devices: 'body', request: (d) => ({ method: 'POST', url: '/api/v2/write?org=o&bucket=b', ...lp(d.plain) }), ok: [204] },
];

const OTHER_SCOPE: Record<Exclude<Needs, 'open'>, 'ingest' | 'read'> = { ingest: 'read', read: 'ingest', admin: 'read' };

let t: Harness;
let openapi: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };
const keys: Record<string, string> = {};
const ajv = new Ajv.default({ strict: false, allErrors: true });

/** Checks a refusal: its status, its challenge, and its body against the route's documented schema. */
function expectRefusal(c: RouteCase, res: Answer, status: 401 | 403, what: string): void {
  expect(res.status, `${c.route} ${what}: ${res.text.slice(0, 200)}`).toBe(status);
  if (status === 401) expect(res.headers['www-authenticate'], `${c.route} ${what}`).toBe('Bearer realm="tally"');
  const [method, path] = c.route.split(' ') as [string, string];
  const documented = openapi.paths[path]?.[method.toLowerCase()]?.responses[String(status)];
  expect(documented, `${c.route} documents ${status}`).toBeDefined();
  const schema = documented!.content?.['application/json']?.schema;
  expect(schema, `${c.route} documents a JSON body for ${status}`).toBeDefined();
  const valid = ajv.validate(schema!, res.json);
  expect(valid, `${c.route} ${what}: ${res.text} against ${JSON.stringify(schema)}: ${ajv.errorsText()}`).toBe(true);
}

/** Sends a case's request; answers that are not JSON (metrics, NDJSON exports) keep `json` undefined. */
async function call(c: RouteCase, d: Devices, headers: Record<string, string> = {}): Promise<Answer> {
  return sendAny(c.request(d), headers);
}

async function sendAny(req: Sent, headers: Record<string, string>): Promise<Answer> {
  const raw = typeof req.body === 'string';
  const res = await t.tally.server.inject({
    method: req.method,
    url: req.url,
    ...(req.body === undefined ? {} : { payload: raw ? (req.body as string) : JSON.stringify(req.body) }),
    headers: { ...(req.body === undefined ? {} : { 'content-type': 'application/json' }), ...req.headers, ...headers },
  });
  expect(res.statusCode, `${req.method} ${req.url}: ${res.body.slice(0, 200)}`).toBeLessThan(500);
  const json = String(res.headers['content-type']).startsWith('application/json') ? JSON.parse(res.body) : undefined;
  return { status: res.statusCode, headers: res.headers, text: res.body, json };
}

beforeAll(async () => {
  t = await startTally({ TALLY_AUTH: 'on' });
  keys.admin = await createKey(t.tally, 'ops', ['admin']);
  keys.ingest = await createKey(t.tally, 'writer', ['ingest']);
  keys.read = await createKey(t.tally, 'reader', ['read']);
  keys.boundIngest = await createKey(t.tally, 'bound-writer', ['ingest'], PREFIX);
  keys.boundRead = await createKey(t.tally, 'bound-reader', ['read'], PREFIX);
  keys.revoked = await createKey(t.tally, 'gone', ['admin']);
  await revokeKey(t.tally, 'gone');
  // Every device the reads ask for has readings.
  for (const d of [MINE, OTHER]) {
    for (const c of ROUTES.filter((r) => r.needs === 'ingest')) {
      const res = await call(c, d, bearer(keys.admin));
      expect(c.ok, `${c.route} seeding: ${res.text}`).toContain(res.status);
    }
  }
  openapi = (await send(t, { method: 'GET', url: '/openapi.json', headers: bearer(keys.read) })).json;
});
afterAll(() => t.stop());

describe('auth on: every route x every kind of credential', () => {
  test('the table covers every documented route', () => {
    const documented = Object.entries(openapi.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(ROUTES.map((c) => c.route).sort()).toEqual(documented.sort());
  });

  test.each(ROUTES.map((c) => [c.route, c] as const))('%s', async (_route, c) => {
    const credentials: Array<[string, Record<string, string>]> = [
      ['no key', {}],
      ['malformed key', bearer('not-a-key')],
      ['well-formed unknown key', bearer(`tally_000000000000_${'A'.repeat(43)}`)],
      ['revoked key', bearer(keys.revoked!)],
      ['revoked key as X-API-Key', { 'x-api-key': keys.revoked! }],
    ];
    for (const [what, headers] of credentials) {
      const res = await call(c, MINE, headers);
      if (c.needs === 'open') expect(c.ok, `${c.route} ${what}`).toContain(res.status);
      else expectRefusal(c, res, 401, what);
    }
    if (c.needs === 'open') return;

    expectRefusal(c, await call(c, MINE, bearer(keys[OTHER_SCOPE[c.needs]]!)), 403, 'wrong scope');

    // Valid: the right scope (admin holds every scope), by either header.
    const right = c.needs === 'admin' ? keys.admin! : keys[c.needs]!;
    for (const headers of [bearer(right), { 'x-api-key': right }, bearer(keys.admin!)]) {
      const res = await call(c, MINE, headers);
      expect(c.ok, `${c.route} valid key: ${res.text.slice(0, 200)}`).toContain(res.status);
    }

    // A device-bound key of the right scope: its own device passes, another's is refused.
    const bound = c.needs === 'ingest' ? keys.boundIngest! : keys.boundRead!;
    if (c.needs === 'admin') return;
    if (c.devices === 'fleet') expectRefusal(c, await call(c, MINE, bearer(bound)), 403, 'device-bound key on a fleet route');
    if (c.devices === 'param' || c.devices === 'body') {
      const mine = await call(c, MINE, bearer(bound));
      expect(c.ok, `${c.route} bound key, own device: ${mine.text.slice(0, 200)}`).toContain(mine.status);
      const other = await call(c, OTHER, bearer(bound));
      if (c.route === 'POST /ingest') {
        // Per reading: 207, the reading's own status 403.
        expect(other.status).toBe(207);
        expect(other.json.results[0]).toMatchObject({ success: false, status: 403 });
      } else if (c.route === 'POST /v1/readings') {
        expect(other.status).toBe(403);
        expect(other.json.rejected[0]).toMatchObject({ index: 0, field: 'device_id', status: 403 });
      } else expectRefusal(c, other, 403, 'device-bound key, another device');
    }
  });
});

describe('device-bound keys see only their devices in every listing', () => {
  const listed = async (url: string, key: string): Promise<string[]> => {
    const res = await sendAny({ method: 'GET', url }, bearer(key));
    expect(res.status, res.text).toBe(200);
    if (url.startsWith('/v1/devices')) return res.json.items.map((i: { device_id: string }) => i.device_id);
    if (url.startsWith('/vital-data')) {
      expect(res.json.total).toBe(res.json.resources.length);
      return res.json.resources.map((r: { deviceId: string }) => r.deviceId);
    }
    if (url.startsWith('/records')) return res.json.records.map((r: { device_id: string }) => r.device_id);
    return res.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l).device_id);
  };

  test.each(['/v1/devices', '/vital-data', '/records', '/v1/export'])('%s', async (url) => {
    const everyone = new Set(await listed(url, keys.read!));
    expect([...everyone].some((d) => !d.startsWith(PREFIX))).toBe(true);
    const mine = await listed(url, keys.boundRead!);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((d) => d.startsWith(PREFIX)), mine.join()).toBe(true);
    expect(new Set(mine)).toEqual(new Set([...everyone].filter((d) => d.startsWith(PREFIX))));
  });

  test('a prefix asked for narrows within the key, and one outside it lists nothing', async () => {
    expect(await listed('/v1/devices?prefix=5a0', keys.boundRead!)).toEqual([MINE.uuid]);
    expect(await listed('/v1/devices?prefix=6b', keys.boundRead!)).toEqual([]);
    expect(await listed('/v1/devices?prefix=5', keys.boundRead!)).toEqual(expect.arrayContaining([MINE.plain, MINE.uuid]));
    expect(await listed('/v1/export?prefix=6b', keys.boundRead!)).toEqual([]);
    expect((await listed('/v1/devices?prefix=5', keys.boundRead!)).every((d) => d.startsWith(PREFIX))).toBe(true);
  });
});
