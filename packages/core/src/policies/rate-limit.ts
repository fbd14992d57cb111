/**
 * A token bucket: `perSecond` tokens refill continuously up to `burst`; each handled message takes one.
 * Written by hand because it is a dozen lines; the gateway's per-client limits use @fastify/rate-limit.
 */
export interface RateLimitOptions {
  /** Sustained rate. */
  perSecond: number;
  /** Most taken at once after a quiet spell. Default: one second's worth. */
  burst?: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;

  readonly options: RateLimitOptions;
  private readonly now: () => number;

  constructor(options: RateLimitOptions, now: () => number = Date.now) {
    this.options = options;
    this.now = now;
    this.burst = options.burst ?? Math.max(1, options.perSecond);
    this.tokens = this.burst;
    this.last = now();
  }

  /** Takes a token: 0 when granted, else the ms until one will be there. */
  take(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.options.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.options.perSecond) * 1000);
  }
}
