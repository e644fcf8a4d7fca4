/**
 * A token bucket: at most `burst` tokens at once, refilled continuously at `perSecond`. The MQTT
 * error reports and the HTTP rate limits (src/http/rate-limit.ts) share it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.tokens = burst;
    this.last = this.now();
  }

  /**
   * Takes `cost` tokens if at least min(cost, burst) are there. A cost above the burst is let through
   * from a full bucket and leaves it in debt (tokens below zero), so the rate still holds over time
   * and a large request is slowed, never refused forever.
   */
  take(cost = 1): boolean {
    this.refill();
    if (this.tokens < Math.min(cost, this.burst)) return false;
    this.tokens -= cost;
    return true;
  }

  /** Tokens there now (below zero while in debt). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Seconds until the bucket holds `tokens` (capped at the burst); 0 if it already does. */
  secondsUntil(tokens: number): number {
    this.refill();
    const missing = Math.min(tokens, this.burst) - this.tokens;
    return missing <= 0 ? 0 : missing / this.perSecond;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }
}
