/**
 * The rate limiter (src/http/rate-limit.ts) and the per-address limit in front of every route
 * (src/http/address-limit.ts): token buckets, bounded memory, and 429s in each surface's error shape.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/app/config.js';
import { TokenBucket } from '../../src/domain/token-bucket.js';
import { addressKey } from '../../src/http/address-limit.js';
import { parseRate, RateLimiter } from '../../src/domain/rate-limit.js';
import { startTally } from '../helpers.js';
import { type Harness } from './client.js';

describe('parseRate', () => {
  test.each([
    ['1000/s', { perSecond: 1000, burst: 1000 }],
    ['600/m', { perSecond: 10, burst: 600 }],
    ['36000/h', { perSecond: 10, burst: 36000 }],
    ['100/s,burst=400', { perSecond: 100, burst: 400 }],
    [' 5/S ', { perSecond: 5, burst: 5 }],
  ])('%s', (raw, rate) => expect(parseRate(raw)).toEqual(rate));

  test.each(['off', 'OFF', ''])('%j is no limit', (raw) => expect(parseRate(raw)).toBeUndefined());

  test.each(['1000', '1000/d', '0/s', '-1/s', '1.5/s', '10/s,burst=0', '10/s burst=4', 'fast'])('%j is a ConfigError naming the setting', (raw) => {
    expect(() => parseRate(raw, 'TALLY_RATE_ADDRESS')).toThrow(ConfigError);
    expect(() => parseRate(raw, 'TALLY_RATE_ADDRESS')).toThrow(/TALLY_RATE_ADDRESS/);
  });
});

describe('TokenBucket with a cost', () => {
  test('a cost above the burst passes from a full bucket and leaves it in debt', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 5, () => now);
    expect(bucket.take(50)).toBe(true);
    expect(bucket.available()).toBe(-45);
    expect(bucket.take()).toBe(false);
    expect(bucket.secondsUntil(1)).toBeCloseTo(4.6);
    now += 4_600;
    expect(bucket.take()).toBe(true);
  });
});

describe('RateLimiter', () => {
  test('a burst, then the rate; headers figures', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 2, burst: 3 }, { capacity: 10, now: () => now });
    const first = limiter.take('a');
    expect(first).toEqual({ allowed: true, limit: 3, remaining: 2, resetSeconds: 1, retryAfterSeconds: 0 });
    limiter.take('a');
    expect(limiter.take('a')).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 2 });
    expect(limiter.take('a')).toEqual({ allowed: false, limit: 3, remaining: 0, resetSeconds: 2, retryAfterSeconds: 1 });
    // Another key has a bucket of its own.
    expect(limiter.take('b').allowed).toBe(true);
    now += 500;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  test('a cost: refused until the bucket holds it, then in debt', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 1, burst: 10 }, { capacity: 10, now: () => now });
    expect(limiter.take('d', 8).allowed).toBe(true);
    expect(limiter.take('d', 5)).toMatchObject({ allowed: false, remaining: 2, retryAfterSeconds: 3 });
    now += 3_000;
    expect(limiter.take('d', 25)).toMatchObject({ allowed: false, retryAfterSeconds: 5 });
    now += 5_000;
    expect(limiter.take('d', 25)).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 25 });
    expect(limiter.take('d')).toMatchObject({ allowed: false, retryAfterSeconds: 16 });
  });

  test('memory is bounded: a million keys leave at most `capacity` buckets, the least recently used evicted', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 1, burst: 1 }, { capacity: 1000, now: () => now });
    expect(limiter.take('hot').allowed).toBe(true);
    for (let i = 0; i < 1_000_000; i++) {
      limiter.take(`k${i}`);
      // 'hot' is used often: never the least recently used, so never forgotten.
      if (i % 500 === 0) expect(limiter.take('hot').allowed).toBe(false);
    }
    expect(limiter.size).toBe(1000);
    // k0 was evicted long ago: it comes back with a full bucket.
    expect(limiter.take('k0').allowed).toBe(true);
    // k999999 is still tracked and empty.
    expect(limiter.take('k999999').allowed).toBe(false);
    now += 1_000;
    expect(limiter.take('hot').allowed).toBe(true);
  });
});

describe('addressKey', () => {
  test.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    [undefined, 'unknown'],
  ])('%s -> %s', (ip, key) => expect(addressKey(ip)).toBe(key));

  test('two addresses of one /64 share a key; of two /64s do not', () => {
    expect(addressKey('2001:db8:a:b::1')).toBe(addressKey('2001:db8:a:b:ffff:ffff:ffff:ffff'));
    expect(addressKey('2001:db8:a:b::1')).not.toBe(addressKey('2001:db8:a:c::1'));
  });
});

describe('TALLY_RATE_ADDRESS: 429 before anything else, in each surface\'s error shape', () => {
  let t: Harness;
  // One request every 10 s after a burst of 3: within a test, a refused address stays refused.
  beforeAll(async () => {
    t = await startTally({ TALLY_RATE_ADDRESS: '6/m,burst=3' });
  });
  afterAll(() => t.stop());

  let nextAddress = 1;
  /** Sends `n` requests from one fresh address; returns the last answer. */
  async function exhaust(request: { method: 'GET' | 'POST'; url: string; payload?: string; headers?: Record<string, string> }, n = 4) {
    const remoteAddress = `198.51.100.${nextAddress++}`;
    let last;
    for (let i = 0; i < n; i++) last = await t.tally.server.inject({ ...request, remoteAddress });
    return last!;
  }

  const badJson = { 'content-type': 'application/json' };
  test.each([
    ['v1', { method: 'GET', url: '/v1/devices' }, (b: any) => expect(b.error).toMatchObject({ code: 'TooManyRequests' })],
    ['v1 write (the bad body is never read)', { method: 'POST', url: '/v1/readings', payload: '{nope', headers: badJson }, (b: any) => expect(b.error.code).toBe('TooManyRequests')],
    ['bright counter', { method: 'POST', url: '/api/device-readings/create', payload: '{nope', headers: badJson }, (b: any) => expect(b).toMatchObject({ status: 'error', status_code: 429 })],
    ['device readings', { method: 'GET', url: '/devices/x/cumulative_count' }, (b: any) => expect(b.error.code).toBe('TooManyRequests')],
    ['records', { method: 'GET', url: '/records' }, (b: any) => expect(b.error.code).toBe('TooManyRequests')],
    ['vital data', { method: 'GET', url: '/vital-data' }, (b: any) => expect(b).toMatchObject({ status: 'error' })],
    ['line protocol', { method: 'POST', url: '/api/v2/write', payload: 'm,device=a count=1i 1' }, (b: any) => expect(b).toMatchObject({ code: 'too many requests' })],
    ['no route', { method: 'GET', url: '/nowhere' }, (b: any) => expect(b.error.code).toBe('TooManyRequests')],
  ] as const)('%s', async (_name, request, shape) => {
    const res = await exhaust(request as never);
    expect(res.statusCode, res.body).toBe(429);
    shape(res.json());
    expect(res.json()).toSatisfy((b: unknown) => JSON.stringify(b).includes('too many requests from this address'));
    expect(res.headers['retry-after']).toBe('10');
    expect(res.headers['ratelimit-limit']).toBe('3');
    expect(res.headers['ratelimit-remaining']).toBe('0');
    expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThanOrEqual(29);
    expect(res.headers['x-request-id']).toBeTypeOf('string');
  });

  test('the first requests of an address pass; other addresses are not affected; the metric counts refusals', async () => {
    const before = await limitedTotal();
    const res = await exhaust({ method: 'GET', url: '/api/ping' }, 3);
    expect(res.statusCode).toBe(200);
    expect(res.headers['ratelimit-limit']).toBeUndefined();
    const refused = await exhaust({ method: 'GET', url: '/api/ping' }, 5);
    expect(refused.statusCode).toBe(429);
    expect(await limitedTotal()).toBe(before + 2);
  });

  async function limitedTotal(): Promise<number> {
    // /metrics from an address of its own, so the scrape itself is never limited.
    const res = await t.tally.server.inject({ method: 'GET', url: '/metrics', remoteAddress: `192.0.2.${nextAddress++}` });
    const line = res.body.split('\n').find((l) => l.startsWith('tally_rate_limited_total{limit="address"}'));
    expect(line, res.body.slice(0, 200)).toBeDefined();
    expect(res.body).toContain('tally_rate_limited_total{limit="key"} 0');
    return Number(line!.split(' ')[1]);
  }
});
