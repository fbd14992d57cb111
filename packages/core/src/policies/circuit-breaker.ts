import { ChassisError } from '../errors.ts';

export type BreakerPolicy =
  | { kind: 'consecutive' /** Failures in a row that open it. */; failures: number; openMs: number }
  | {
      kind: 'ratio';
      /** Fraction of failed calls (0–1) in the window that opens it. */
      threshold: number;
      windowMs: number;
      /** Calls the window must hold before the ratio counts. */
      minThroughput: number;
      openMs: number;
    };

export type BreakerState = 'closed' | 'open' | 'half-open';

export function countsAsFailure(error: unknown): boolean {
  if (!(error instanceof ChassisError)) return true;
  if (error.code === 'CIRCUIT_OPEN') return false;
  return error.retryable || error.code === 'INTERNAL';
}

const BUCKETS = 10;

/** What a breaker counts while closed: whether a failure should open it. */
interface FailureCount {
  /** `now`: the clock as the caller read it, if it did (the ratio count's buckets slide with the clock). */
  success(now: number | undefined): void;
  failure(): boolean;
  reset(): void;
}

/** Opens after `failures` unwell failures in a row. */
class ConsecutiveCount implements FailureCount {
  readonly #failures: number;
  #inARow = 0;

  constructor(failures: number) {
    this.#failures = failures;
  }

  success(): void {
    this.#inARow = 0;
  }

  failure(): boolean {
    return ++this.#inARow >= this.#failures;
  }

  reset(): void {
    this.#inARow = 0;
  }
}

/**
 * The ratio count: failed calls as a fraction of the calls of the last `windowMs`, counted in ten
 * buckets that slide with the clock. Not a sampling breaker (cockatiel's SamplingBreaker), which moves on one
 * bucket per call: after a quiet spell its old failures went on counting until enough new calls had
 * pushed them out, so a handful of failures could reopen a circuit on the strength of ones long past.
 */
class RatioCount implements FailureCount {
  private readonly failures = new Array<number>(BUCKETS).fill(0);
  private readonly successes = new Array<number>(BUCKETS).fill(0);
  private bucket = 0;
  private bucketStart = Date.now();

  private readonly settings: Extract<BreakerPolicy, { kind: 'ratio' }>;

  constructor(settings: Extract<BreakerPolicy, { kind: 'ratio' }>) {
    this.settings = settings;
  }

  success(now: number | undefined): void {
    this.rotate(now ?? Date.now());
    this.successes[this.bucket]!++;
  }

  /** Whether to open; asked only while closed (a failed probe reopens the circuit anyway). */
  failure(): boolean {
    this.rotate(Date.now());
    this.failures[this.bucket]!++;
    const failures = sum(this.failures);
    const total = failures + sum(this.successes);
    return total >= this.settings.minThroughput && failures > this.settings.threshold * total;
  }

  /** A successful probe starts the count afresh: the failures that opened the circuit are history. */
  reset(): void {
    this.failures.fill(0);
    this.successes.fill(0);
  }

  private rotate(now: number): void {
    const width = this.settings.windowMs / BUCKETS;
    // Within the current bucket (every call but one a bucket): nothing moves.
    if (now - this.bucketStart < width) return;
    // A reading older than the window's start (a call's own, taken before a long synchronous handler
    // that another call rotated past) counts in the current bucket: the window never slides back.
    const steps = Math.max(0, Math.min(BUCKETS, Math.floor((now - this.bucketStart) / width)));
    for (let i = 0; i < steps; i++) {
      this.bucket = (this.bucket + 1) % BUCKETS;
      this.failures[this.bucket] = 0;
      this.successes[this.bucket] = 0;
    }
    // After a whole window of quiet the buckets start again from now.
    this.bucketStart = steps === BUCKETS ? now : this.bucketStart + steps * width;
  }
}

function sum(values: number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/**
 * A circuit breaker per target. Closed, calls go through and their unwell failures are counted; once the
 * count says so it opens, and calls fail fast with `CIRCUIT_OPEN` for `openMs`. The first call after
 * that is a probe (half-open): while it runs, every other call still fails fast rather than wait behind
 * it; its success — or a domain refusal, as the target was well enough to refuse — closes the circuit,
 * and an unwell failure opens it for another `openMs`.
 *
 * Written by hand rather than wrapping cockatiel's breaker: a call asks `admit` and reports with
 * `succeeded`/`failed`, synchronously, instead of running inside three layers of promises — a fifth of
 * a local call's cost — and a call that began before the circuit opened cannot close it when it ends.
 */
export class CircuitBreaker {
  readonly #count: FailureCount;
  readonly #onStateChange: (state: BreakerState) => void;
  #state: BreakerState = 'closed';
  #openedAt = 0;

  readonly target: string;
  readonly settings: BreakerPolicy;

  constructor(target: string, settings: BreakerPolicy, onStateChange: (state: BreakerState) => void) {
    this.target = target;
    this.settings = settings;
    this.#count = settings.kind === 'consecutive' ? new ConsecutiveCount(settings.failures) : new RatioCount(settings);
    this.#onStateChange = onStateChange;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /**
   * Throws `CIRCUIT_OPEN` while the circuit is open, without counting as a probe: for work that should
   * not even begin (take a lock, mark an order) when its target is known to be down.
   */
  failFastIfOpen(): void {
    if (this.#state === 'open' && Date.now() < this.#openedAt + this.settings.openMs) throw this.openError();
  }

  /**
   * Lets a call through or throws `CIRCUIT_OPEN`; true when the call is the probe. Every call let through
   * must report how it ended with `succeeded` or `failed`, passing this value back.
   */
  admit(): boolean {
    if (this.#state === 'closed') return false;
    if (this.#state === 'half-open' || Date.now() < this.#openedAt + this.settings.openMs) throw this.openError();
    this.#enter('half-open');
    return true;
  }

  /** `now`: the clock, when the caller has just read it (a call's fast path: one read a call, not one each). */
  succeeded(probe: boolean, now?: number): void {
    if (probe) {
      this.#count.reset();
      this.#enter('closed');
    } else if (this.#state === 'closed') {
      this.#count.success(now);
    }
  }

  failed(error: unknown, probe: boolean): void {
    // A domain refusal says nothing about the target's health, except that a probe got an answer.
    if (!countsAsFailure(error)) {
      if (probe) this.succeeded(true);
      return;
    }
    if (probe || (this.#state === 'closed' && this.#count.failure())) {
      this.#openedAt = Date.now();
      this.#enter('open');
    }
  }

  /** Runs `run` through the breaker: for a target that is not an action (see `PolicyEngine.breaker`). */
  async execute<T>(run: () => Promise<T>): Promise<T> {
    const probe = this.admit();
    try {
      const value = await run();
      this.succeeded(probe);
      return value;
    } catch (error) {
      this.failed(error, probe);
      throw error;
    }
  }

  #enter(state: BreakerState): void {
    this.#state = state;
    this.#onStateChange(state);
  }

  private openError(): ChassisError {
    const retryAfterMs = Math.max(0, this.#openedAt + this.settings.openMs - Date.now());
    return new ChassisError(
      'CIRCUIT_OPEN',
      `Calls to ${this.target} are failing fast: its circuit breaker is open after repeated failures; next probe in ${retryAfterMs} ms`,
      { data: { target: this.target, retryAfterMs } },
    );
  }
}
