/**
 * What the fuzz test (fuzz.test.ts) found, each a 5xx for something a client sent, kept as plain
 * regression tests so they never depend on a seed.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { send, type Harness } from '../http/client.js';

let t: Harness;
beforeAll(async () => {
  t = await startTally();
});
afterAll(() => t.stop());

test.each([
  // Line protocol without a body (Fastify parses none, the handler got undefined): a 500.
  ['POST', '/write?precision=ms', undefined, {}, 204],
  ['POST', '/api/v2/write', '', { 'content-type': 'text/plain' }, 204],
  // Line protocol labelled JSON went to the JSON parser: an object handed on (a 500), or valid lines refused.
  ['POST', '/write', '{}', { 'content-type': 'application/json' }, 400],
  ['POST', '/api/v2/write', 'm,device=lp-json count=1i 1700000000000000000', { 'content-type': 'application/json' }, 204],
  // Ajv coerced 1e309 to Infinity after its type check and skipped the bounds of a non-finite
  // number: the store got Infinity (a 503, "datatype mismatch").
  ['GET', '/vital-data?count=1e309', undefined, {}, 400],
  ['GET', '/vital-data?offset=-1e309', undefined, {}, 400],
  ['GET', '/v1/devices?limit=1e309', undefined, {}, 400],
  ['GET', '/records?limit=1e309', undefined, {}, 400],
] as const)('%s %s (%j) is a %i', async (method, url, body, headers, status) => {
  const res = await send(t, { method, url, body, headers }, { errorShape: false });
  expect(res.status, res.text).toBe(status);
  if (status === 400 && url.includes('1e309')) expect(res.text).toMatch(/must be a finite number/);
});

test('the line written with a JSON content type is stored', async () => {
  const res = await send(t, { method: 'GET', url: '/v1/devices/lp-json' });
  expect(res.json).toMatchObject({ device_id: 'lp-json', reading_count: 1, cumulative_count: 1 });
});
