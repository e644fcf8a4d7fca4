import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import type { Harness } from '../http/client.js';

/** GET /openapi.json and the browsable reference at /docs, with no external CDN. */

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

async function fetchText(url: string) {
  const res = await t.tally.server.inject({ method: 'GET', url });
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), body: res.body };
}

/** Every route Tally serves: /v1 and the seed surfaces. */
const ROUTES: Array<[string, string]> = [
  ['post', '/v1/readings'],
  ['get', '/v1/devices'],
  ['get', '/v1/devices/{id}'],
  ['delete', '/v1/devices/{id}'],
  ['get', '/v1/devices/{id}/readings'],
  ['get', '/v1/devices/{id}/aggregate'],
  ['get', '/v1/export'],
  // Seed 000: records
  ['get', '/'],
  ['get', '/records'],
  ['get', '/check-buffer'],
  // Seed 001: /ingest
  ['post', '/ingest'],
  // Seed 002: Bright Counter
  ['get', '/api/ping'],
  ['post', '/api/device-readings/create'],
  ['get', '/api/device-readings/{id}/latest-timestamp'],
  ['get', '/api/device-readings/{id}/cumulative-count'],
  // Seed 003: vital data
  ['post', '/vital-data'],
  ['get', '/vital-data'],
  // Seed 004: device readings
  ['get', '/devices/{deviceId}'],
  ['get', '/devices/{deviceId}/latest_timestamp'],
  ['get', '/devices/{deviceId}/cumulative_count'],
  // InfluxDB line protocol
  ['post', '/write'],
  ['post', '/api/v2/write'],
  // Operations: metrics, liveness, readiness
  ['get', '/metrics'],
  ['get', '/healthz'],
  ['get', '/readyz'],
];

describe('GET /openapi.json', () => {
  let doc: any;
  beforeAll(async () => {
    const res = await fetchText('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/json/);
    doc = JSON.parse(res.body);
  });

  test('is an OpenAPI 3 document about Tally', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info.title).toBe('Tally');
    expect(typeof doc.info.version).toBe('string');
  });

  test('lists every route, /v1 and seed, and nothing that is not served', () => {
    const listed = Object.entries<Record<string, unknown>>(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m)).map((m) => `${m} ${path}`))
      .sort();
    expect(listed).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
    for (const [method, path] of ROUTES) {
      const url = path.replace(/\{(\w+)\}/g, ':$1');
      expect(t.tally.server.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${method} ${path} is served`).toBe(true);
    }
  });

  test('the /v1 operations describe their parameters', () => {
    const params = (path: string, method: string) =>
      (doc.paths[path][method].parameters as Array<{ name: string; in: string }>).map((p) => `${p.in}:${p.name}`).sort();
    expect(params('/v1/devices', 'get')).toEqual(['query:cursor', 'query:limit', 'query:order', 'query:prefix', 'query:sort']);
    expect(params('/v1/devices/{id}/readings', 'get')).toEqual(['path:id', 'query:cursor', 'query:fields', 'query:format', 'query:from', 'query:limit', 'query:order', 'query:to']);
    expect(params('/v1/devices/{id}/aggregate', 'get')).toEqual(['path:id', 'query:every', 'query:field', 'query:fn', 'query:from', 'query:to']);
    expect(params('/v1/readings', 'post')).toEqual(['query:atomic', 'query:precision']);
    const limit = (doc.paths['/v1/devices'].get.parameters as any[]).find((p) => p.name === 'limit');
    expect(limit.schema).toMatchObject({ minimum: 1, maximum: 1000 });
  });

  test('POST /v1/readings documents both body types, with examples; so do the seed write routes', () => {
    const content = doc.paths['/v1/readings'].post.requestBody.content;
    expect(Object.keys(content).sort()).toEqual(['application/json', 'application/x-ndjson']);
    expect(content['application/json'].schema.type).toBe('array');
    expect(JSON.stringify(content['application/json'])).toContain('"examples"');
    for (const path of ['/api/device-readings/create', '/ingest', '/vital-data']) {
      expect(JSON.stringify(doc.paths[path].post.requestBody), path).toMatch(/"examples?"/);
    }
  });

  test('/docs/json serves the same document the UI loads', async () => {
    const res = await fetchText('/docs/json');
    expect(res.status).toBe(200);
    expect(Object.keys(JSON.parse(res.body).paths).sort()).toEqual(Object.keys(doc.paths).sort());
  });
});

describe('GET /docs/', () => {
  test('serves HTML whose scripts and styles all come from this server', async () => {
    const res = await fetchText('/docs/');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/html/);
    expect(res.body).toContain('<div id="swagger-ui">');
    const refs = [...res.body.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((m) => m[1]!);
    expect(refs.filter((r) => r.endsWith('.js'))).toHaveLength(3);
    expect(refs.filter((r) => r.endsWith('.css')).length).toBeGreaterThanOrEqual(1);
    for (const ref of refs) {
      const external = /^(https?:)?\/\//i.test(ref) && !/^(https?:)?\/\/(localhost|127\.0\.0\.1)([:/]|$)/i.test(ref);
      expect(external, `external reference ${ref}`).toBe(false);
      // Each asset is shipped in the package and served here.
      const asset = await fetchText(new URL(ref, 'http://localhost/docs/').pathname);
      expect(asset.status, ref).toBe(200);
      expect(asset.body.length, ref).toBeGreaterThan(0);
    }
    // The big bundle really is the Swagger UI code, not a stub.
    const bundle = await fetchText('/docs/static/swagger-ui-bundle.js');
    expect(bundle.body.length).toBeGreaterThan(500_000);
    // The stylesheets pull nothing from elsewhere either.
    for (const css of refs.filter((r) => r.endsWith('.css'))) {
      const sheet = await fetchText(new URL(css, 'http://localhost/docs/').pathname);
      expect(sheet.body, css).not.toMatch(/@import|url\(\s*["']?(https?:)?\/\//i);
    }
    // The UI loads the spec from this server.
    const init = await fetchText('/docs/static/swagger-initializer.js');
    expect(init.body).toContain("resolveUrl('./json')");
    expect(init.body).not.toMatch(/url:\s*["']https?:/);
  });

  test('/docs without the slash also answers with the UI', async () => {
    const res = await fetchText('/docs');
    expect([200, 301, 302]).toContain(res.status);
    if (res.status === 200) expect(res.body).toContain('swagger-ui-bundle.js');
  });
});
