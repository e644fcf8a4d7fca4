import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';

/** /openapi.json names the surfaces as the README does and documents the errors each route can answer. */

let t: Awaited<ReturnType<typeof startTally>>;
let doc: any;
beforeAll(async () => {
  t = await startTally();
  doc = JSON.parse((await t.tally.server.inject({ method: 'GET', url: '/openapi.json' })).body);
});
afterAll(() => t.stop());

describe('OpenAPI document', () => {
  test('a Tally title, and the surfaces named as the README names them', () => {
    expect(doc.info.title).toBe('Tally');
    const tags = Object.fromEntries((doc.tags as Array<{ name: string; description: string }>).map((x) => [x.name, x.description]));
    expect(tags['bright-counter']).toMatch(/^Bright Counter/);
    expect(tags['device-readings']).toMatch(/^Device readings/);
    expect(tags['records']).toMatch(/^Records/);
    expect(tags['vital-data']).toMatch(/^Vital data/);
    expect(JSON.stringify(doc)).not.toMatch(/Seed 00\d/);
  });

  test.each([
    ['post', '/v1/readings', [400, 413, 415, 503]],
    ['get', '/v1/devices', [400]],
    ['get', '/v1/devices/{id}', [400, 404]],
    ['delete', '/v1/devices/{id}', [401, 403, 404]],
    ['get', '/v1/devices/{id}/readings', [400, 404]],
    ['get', '/v1/devices/{id}/aggregate', [400, 404]],
    ['post', '/api/device-readings/create', [400, 413, 415, 503]],
    ['get', '/api/device-readings/{id}/cumulative-count', [400, 404]],
    ['post', '/ingest', [400, 413, 415, 503]],
    ['get', '/devices/{deviceId}', [404]],
    ['get', '/records', [400]],
    ['post', '/vital-data', [400, 413, 415, 503]],
    ['get', '/vital-data', [400]],
  ] as const)('%s %s documents %j with a description and an example body', (method, path, statuses) => {
    const responses = doc.paths[path][method].responses as Record<string, { description: string; content?: Record<string, { schema?: unknown; example?: unknown; examples?: unknown }> }>;
    for (const status of statuses) {
      const entry = responses[String(status)];
      expect(entry, `${method} ${path} ${status}`).toBeDefined();
      expect(entry!.description.length).toBeGreaterThan(10);
      expect(JSON.stringify(entry!.content), `${method} ${path} ${status} example`).toMatch(/"example/);
    }
  });

  test('each surface documents its own error shape', () => {
    const example = (method: string, path: string, status: number) => JSON.stringify(doc.paths[path][method].responses[String(status)].content);
    expect(example('post', '/api/device-readings/create', 400)).toContain('error_message');
    expect(example('post', '/vital-data', 400)).toContain('Invalid payload');
    expect(example('get', '/v1/devices/{id}', 404)).toContain('"code"');
  });
});
