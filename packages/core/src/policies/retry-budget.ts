/**
 * A retry budget (after Finagle's): retries may add at most `ratio` of the calls made over a sliding
 * window, plus a small floor so a quiet service can still retry. However many callers retry, a failing
 * dependency sees at most (1 + ratio) × its normal load, instead of a retry storm.
 *
 * Written by hand: cockatiel (and the other libraries we use) retry per call, with no shared budget.
 */
export interface RetryBudgetOptions {
  /** Retries allowed as a fraction of calls in the window. Default 0.2. */
  ratio?: number;
  /** Length of the sliding window. Default 10 s. */
  windowMs?: number;
  /** Retries allowed in a window whatever the traffic. Default 10. */
  minRetries?: number;
}

const BUCKETS = 10;

export class RetryBudget {
  readonly ratio: number;
  readonly windowMs: number;
  readonly minRetries: number;
  private readonly calls = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  private bucket = 0;
  private bucketStart = 0;

  private readonly now: () => number;

  constructor(options: RetryBudgetOptions = {}, now: () => number = Date.now) {
    this.now = now;
    this.ratio = options.ratio ?? 0.2;
    this.windowMs = options.windowMs ?? 10_000;
    this.minRetries = options.minRetries ?? 10;
    this.bucketStart = now();
  }

  /** Counts a first attempt; `now` when the caller has just read the clock (one read a call, not one each). */
  recordCall(now: number = this.now()): void {
    this.rotate(now);
    this.calls[this.bucket]!++;
  }

  /** Takes one retry from the budget if there is one left; false means: do not retry. */
  tryRetry(): boolean {
    this.rotate(this.now());
    const calls = sum(this.calls);
    const retries = sum(this.retries);
    if (retries >= Math.max(this.minRetries, Math.floor(calls * this.ratio))) return false;
    this.retries[this.bucket]!++;
    return true;
  }

  private rotate(now: number): void {
    const width = this.windowMs / BUCKETS;
    // Within the current bucket (every call but one a bucket): nothing moves.
    if (now - this.bucketStart < width) return;
    // A reading older than the window's start (a call's own, taken before a long synchronous handler
    // that another call rotated past) counts in the current bucket: the window never slides back.
    const steps = Math.max(0, Math.min(BUCKETS, Math.floor((now - this.bucketStart) / width)));
    for (let i = 0; i < steps; i++) {
      this.bucket = (this.bucket + 1) % BUCKETS;
      this.calls[this.bucket] = 0;
      this.retries[this.bucket] = 0;
    }
    this.bucketStart += steps * width;
    if (now - this.bucketStart >= width) this.bucketStart = now;
  }
}

function sum(values: number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
