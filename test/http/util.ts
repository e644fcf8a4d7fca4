import { expect } from 'vitest';
import { startTally } from '../helpers.js';

export type Harness = Awaited<ReturnType<typeof startTally>>;

export interface Sent {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly url: string;
  /** A JS value sent as JSON, or a string/Buffer sent verbatim. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly text: string;
  /** The parsed body (every Tally answer is JSON; asserted here). */
  readonly json: any;
}

/**
 * Sends one request in-process and checks the invariants every answer to client input must hold:
 * never a 5xx, always a JSON body with a JSON content type.
 */
export async function send(t: Harness, req: Sent): Promise<Answer> {
  const raw = typeof req.body === 'string' || Buffer.isBuffer(req.body);
  const res = await t.tally.server.inject({
    method: req.method,
    url: req.url,
    ...(req.body === undefined ? {} : { payload: raw ? (req.body as string | Buffer) : JSON.stringify(req.body) }),
    headers: { ...(req.body === undefined ? {} : { 'content-type': 'application/json' }), ...req.headers },
  });
  expect(res.statusCode, `${req.method} ${req.url} answered ${res.statusCode}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  expect(String(res.headers['content-type']), `${req.method} ${req.url} content type`).toMatch(/^application\/json/);
  let json: unknown;
  expect(() => (json = JSON.parse(res.body)), `${req.method} ${req.url} body is JSON: ${res.body.slice(0, 300)}`).not.toThrow();
  return { status: res.statusCode, headers: res.headers, text: res.body, json };
}

export const get = (t: Harness, url: string, headers?: Record<string, string>) => send(t, { method: 'GET', url, headers });
export const post = (t: Harness, url: string, body: unknown, headers?: Record<string, string>) =>
  send(t, { method: 'POST', url, body, headers });

/** `{"a":{"a":...{"a":leaf}}}` with `depth` objects. */
export function nestedObject(depth: number, leaf: unknown = 1): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value as Record<string, unknown>;
}

/** The JSON text of `depth` nested objects, built without recursion so any depth is cheap. */
export function nestedObjectText(depth: number, leaf = '1'): string {
  return '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);
}
