import { ConfigError } from './errors.js';
import { TokenBucket } from './token-bucket.js';

/** What a request may be limited by: a closed set, the label values of tally_rate_limited_total. */
export const RATE_LIMITS = ['address', 'key', 'device'] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];

/** A rate: `perSecond` tokens a second, at most `burst` at once. */
export interface Rate {
  readonly perSecond: number;
  readonly burst: number;
}

const WINDOW_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/**
 * Parses a rate setting: `1000/s`, `600/m` or `36000/h`, with an optional `,burst=<n>` (default: one
 * window's worth, `n`). `off` (or empty) is undefined: no limit. Throws ConfigError naming `name`.
 */
export function parseRate(raw: string, name = 'rate'): Rate | undefined {
  const text = raw.trim().toLowerCase();
  if (text === '' || text === 'off') return undefined;
  const match = /^(\d{1,9})\/(s|m|h)(?:,burst=(\d{1,9}))?$/.exec(text);
  if (match === null) {
    throw new ConfigError(`${name} must be a rate such as 1000/s, 600/m or 100/s,burst=400, or off; got ${JSON.stringify(raw)}`);
  }
  const count = Number(match[1]);
  const burst = match[3] === undefined ? count : Number(match[3]);
  if (count < 1 || burst < 1) throw new ConfigError(`${name} must allow at least 1 request, got ${JSON.stringify(raw)}`);
  return { perSecond: count / WINDOW_SECONDS[match[2]!]!, burst };
}

/** What one `take` decided, with what the RateLimit-* and Retry-After headers say. */
export interface RateDecision {
  readonly allowed: boolean;
  /** The burst: the most a client may send at once (RateLimit-Limit). */
  readonly limit: number;
  /** Whole tokens left after this take (RateLimit-Remaining). */
  readonly remaining: number;
  /** Seconds until the bucket is full again (RateLimit-Reset), whole, rounded up. */
  readonly resetSeconds: number;
  /** When refused: seconds until this take would succeed (Retry-After), whole, at least 1; 0 when allowed. */
  readonly retryAfterSeconds: number;
}

export interface RateLimiterOptions {
  /**
   * Most keys tracked at once. Beyond it the least recently used key's bucket is forgotten: memory is
   * bounded by this whatever the number of keys (about 220 bytes a key).
   */
  readonly capacity: number;
  /** Milliseconds, monotonic; for tests. */
  readonly now?: () => number;
}

/**
 * A token bucket per key (a client address, an API key, a device), in a map of at most `capacity`
 * buckets kept in least-recently-used order. A forgotten bucket comes back full: what eviction loses
 * is the debt of a key unused while `capacity` other keys were used, which for any key idle longer
 * than burst / perSecond is nothing (its bucket had refilled).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly now: () => number;

  constructor(
    readonly rate: Rate,
    private readonly options: RateLimiterOptions,
  ) {
    if (!(options.capacity >= 1)) throw new RangeError('RateLimiter capacity must be at least 1');
    this.now = options.now ?? performance.now.bind(performance);
  }

  /** Keys tracked now (at most `capacity`). */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * Takes `cost` tokens from `key`'s bucket. A cost above the burst passes from a full bucket and
   * leaves it in debt, so the rate holds over time (see TokenBucket.take).
   */
  take(key: string, cost = 1): RateDecision {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.options.capacity) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = new TokenBucket(this.rate.perSecond, this.rate.burst, this.now);
    } else {
      // Re-inserted last: the map's order is least recently used first.
      this.buckets.delete(key);
    }
    this.buckets.set(key, bucket);
    const allowed = bucket.take(cost);
    const tokens = bucket.available();
    return {
      allowed,
      limit: this.rate.burst,
      remaining: Math.max(0, Math.floor(tokens)),
      resetSeconds: Math.ceil(bucket.secondsUntil(this.rate.burst)),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(bucket.secondsUntil(cost))),
    };
  }
}
