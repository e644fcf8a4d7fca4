import type { FastifyInstance, FastifyReply } from 'fastify';
import { HttpError } from './errors.js';
import type { RateDecision, RateLimiter } from '../domain/rate-limit.js';

/**
 * The key of a client address: an IPv4 address as it is (IPv4-mapped IPv6 too), an IPv6 address by
 * its /64 network, the block a single host or customer is usually given, so one attacker cannot
 * take a fresh bucket with every address of its block.
 */
export function addressKey(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'unknown';
  if (!ip.includes(':')) return ip;
  const lower = ip.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice('::ffff:'.length);
  const zone = lower.indexOf('%');
  const text = zone === -1 ? lower : lower.slice(0, zone);
  const [head = '', tail] = text.split('::', 2) as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0');
  const groups = [...headGroups, ...zeros, ...tailGroups];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** The IETF draft's RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers) and Retry-After. */
export function setRateLimitHeaders(reply: FastifyReply, decision: RateDecision): void {
  reply.header('ratelimit-limit', String(decision.limit));
  reply.header('ratelimit-remaining', String(decision.remaining));
  reply.header('ratelimit-reset', String(decision.resetSeconds));
  if (!decision.allowed) reply.header('retry-after', String(decision.retryAfterSeconds));
}

export interface AddressLimitOptions {
  readonly limiter: RateLimiter;
  /** Told of every refused request (the tally_rate_limited_total metric). */
  readonly onLimited?: () => void;
}

/**
 * Limits requests per client address before anything else of the request is looked at: an onRequest
 * hook, so no body is read and no key is checked for a refused request (guessing keys is throttled
 * too). The 429 is thrown into the route's own error handler, so each surface renders it in its
 * documented error shape; the RateLimit-* headers are set on refused answers only (a per-key or
 * per-device limit may speak for the others). The address is the TCP peer's: behind a proxy, every
 * client shares the proxy's.
 */
export function limitByAddress(app: FastifyInstance, options: AddressLimitOptions): void {
  const { limiter, onLimited } = options;
  app.addHook('onRequest', (request, reply, done) => {
    const decision = limiter.take(addressKey(request.ip));
    if (decision.allowed) {
      done();
      return;
    }
    onLimited?.();
    setRateLimitHeaders(reply, decision);
    done(
      new HttpError(
        429,
        'TooManyRequests',
        `too many requests from this address: at most ${limiter.rate.burst} at once and ${limiter.rate.perSecond} a second; retry after ${decision.retryAfterSeconds} s`,
        decision.retryAfterSeconds,
      ),
    );
  });
}
