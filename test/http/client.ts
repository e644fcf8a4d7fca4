import { expect } from 'vitest';
import { startTally } from '../helpers.js';

/**
 * The one in-process HTTP client of the tests (through `tally.server.inject`), shared by the seed
 * surfaces' tests (test/http) and /v1's (test/v1), with the small request-building helpers they use.
 */

export type Harness = Awaited<ReturnType<typeof startTally>>;

export interface Sent {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly url: string;
  /** A JS value sent as JSON, or a string/Buffer sent verbatim. */
  readonly body?: unknown;
  /** `content-type` defaults to application/json when there is a body; these override it. */
  readonly headers?: Record<string, string>;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly text: string;
  /** The parsed body (undefined for a 204, which has none). */
  readonly json: any;
}

export interface Checks {
  /**
   * Error answers (4xx) must be Tally's `{"error": {"code", "message", "field"?}}`, except POST
   * /v1/readings' own `{accepted, duplicates, rejected}` when it refused readings. Default: on for
   * /v1 URLs, where that shape is documented; the seed surfaces each have their own.
   */
  readonly errorShape?: boolean;
}

const isV1 = (url: string) => url === '/v1' || url.startsWith('/v1/') || url.startsWith('/v1?');

/**
 * Sends one request in-process and checks what every answer to client input must hold: never a
 * 5xx; a JSON body with a JSON content type (a 204 has no body); and, where it applies (see
 * `Checks`), the /v1 error shape.
 */
export async function send(t: Harness, req: Sent, checks: Checks = {}): Promise<Answer> {
  const raw = typeof req.body === 'string' || Buffer.isBuffer(req.body);
  const res = await t.tally.server.inject({
    method: req.method,
    url: req.url,
    ...(req.body === undefined ? {} : { payload: raw ? (req.body as string | Buffer) : JSON.stringify(req.body) }),
    headers: { ...(req.body === undefined ? {} : { 'content-type': 'application/json' }), ...req.headers },
  });
  const what = `${req.method} ${req.url}`;
  expect(res.statusCode, `${what} answered ${res.statusCode}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  if (res.statusCode === 204) return { status: 204, headers: res.headers, text: res.body, json: undefined };
  expect(String(res.headers['content-type']), `${what} content type`).toMatch(/^application\/json/);
  let json: any;
  expect(() => (json = JSON.parse(res.body)), `${what} body is JSON: ${res.body.slice(0, 300)}`).not.toThrow();
  if ((checks.errorShape ?? isV1(req.url)) && res.statusCode >= 400 && !(typeof json === 'object' && json !== null && 'rejected' in json)) {
    expect(typeof json?.error?.code, `${what} error body ${res.body.slice(0, 300)}`).toBe('string');
    expect(typeof json?.error?.message, `${what} error body ${res.body.slice(0, 300)}`).toBe('string');
  }
  return { status: res.statusCode, headers: res.headers, text: res.body, json };
}

export const get = (t: Harness, url: string, headers?: Record<string, string>) => send(t, { method: 'GET', url, headers });
export const post = (t: Harness, url: string, body: unknown, headers?: Record<string, string>) =>
  send(t, { method: 'POST', url, body, headers });
export const del = (t: Harness, url: string, headers?: Record<string, string>) => send(t, { method: 'DELETE', url, headers });

/** POST /v1/readings with a JSON array (or any JSON value, or a string sent verbatim). */
export const postReadings = (t: Harness, body: unknown, query = '') => post(t, `/v1/readings${query}`, body);
/** POST /v1/readings with an NDJSON body. */
export const postNdjson = (t: Harness, text: string, query = '') =>
  post(t, `/v1/readings${query}`, text, { 'content-type': 'application/x-ndjson' });

/** Follows next_cursor from `url` until it is null; returns every item and the page count. */
export async function allPages(t: Harness, url: string): Promise<{ items: any[]; pages: number }> {
  const items: any[] = [];
  let cursor: string | null = null;
  let pages = 0;
  const sep = url.includes('?') ? '&' : '?';
  do {
    const res = await get(t, cursor === null ? url : `${url}${sep}cursor=${encodeURIComponent(cursor)}`);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual(['items', 'next_cursor']);
    items.push(...res.json.items);
    cursor = res.json.next_cursor;
    pages++;
    if (pages > 10_000) throw new Error('paging did not end');
  } while (cursor !== null);
  return { items, pages };
}

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

/** Deterministic pseudo-random numbers (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** RFC 3339 UTC text of epoch milliseconds, without a fraction when there is none (Tally's form). */
export function utc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, 19)}Z` : iso;
}

/** Matches an RFC 3339 UTC timestamp as /v1 renders them. */
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;
