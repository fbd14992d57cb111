/** The bounds of an exponential backoff: the first ceiling, and the most any delay may be. */
export interface Backoff {
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * The share of the ceiling every delay waits at least (0 to 1; default 0, full jitter). Redelivered
   * events use ½: a failed event should not come straight back, however the draw falls.
   */
  floorShare?: number;
}

/**
 * Exponential backoff with full jitter, capped: a random delay between 0 (or the floor) and
 * `initialDelayMs · 2^(attempt-1)`, never above `maxDelayMs`. Attempts count from 1.
 *
 * The one formula for every wait before trying again (the retry policy, reconnects, re-creating streams and
 * consumers): full jitter spreads a fleet that failed together the most evenly, so they do not come back in step.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  // Past 2^30 the product only overflows towards Infinity; the cap decides anyway.
  const exponent = Math.min(Math.max(0, attempt - 1), 30);
  const ceiling = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * 2 ** exponent);
  const floor = ceiling * (backoff.floorShare ?? 0);
  return Math.round(floor + random() * (ceiling - floor));
}
