import { expect } from 'vitest';
import { startTally } from '../helpers.js';

/** Shared helpers for the /v1 tests (in-process through `tally.server.inject`). */

export type Harness = Awaited<ReturnType<typeof startTally>>;

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly text: string;
  readonly json: any;
}

/**
 * One in-process request. Checks what every /v1 answer must hold: never a 5xx, a JSON body, and
 * for errors the `{"error": {"code", "message", "field"?}}` shape.
 */
export async function call(
  t: Harness,
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { body?: unknown; raw?: string | Buffer; contentType?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const res = await t.tally.server.inject({ method, url, ...(payload === undefined ? {} : { payload }), headers });
  expect(res.statusCode, `${method} ${url} answered ${res.statusCode}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  if (res.statusCode === 204) return { status: 204, headers: res.headers, text: res.body, json: undefined };
  expect(String(res.headers['content-type']), `${method} ${url} content type`).toMatch(/^application\/json/);
  const json = JSON.parse(res.body);
  // POST /v1/readings answers 400 with its own {accepted, duplicates, rejected} when every reading was refused.
  if (res.statusCode >= 400 && !('rejected' in json)) {
    expect(typeof json.error?.code, `${method} ${url} error body ${res.body}`).toBe('string');
    expect(typeof json.error?.message, `${method} ${url} error body ${res.body}`).toBe('string');
  }
  return { status: res.statusCode, headers: res.headers, text: res.body, json };
}

export const get = (t: Harness, url: string) => call(t, 'GET', url);
export const postReadings = (t: Harness, body: unknown, query = '') => call(t, 'POST', `/v1/readings${query}`, { body });
export const postNdjson = (t: Harness, text: string, query = '') =>
  call(t, 'POST', `/v1/readings${query}`, { raw: text, contentType: 'application/x-ndjson' });

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
