import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IBreaker,
} from 'cockatiel';
import { ChassisError } from '../errors.ts';

/**
 * A circuit breaker per target (cockatiel underneath): after too many failures calls fail fast with
 * `CIRCUIT_OPEN` for `openMs`, then one probe goes through; its success closes the circuit.
 * Only failures that say the target is unwell count: timeouts, unavailability and internal errors —
 * never a validation or domain error, which a healthy service answers too.
 */
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

/**
 * The ratio breaker: failed calls as a fraction of the calls of the last `windowMs`, counted in ten
 * buckets that slide with the clock. Ours rather than cockatiel's SamplingBreaker, which moves on one
 * bucket per call: after a quiet spell its old failures went on counting until enough new calls had
 * pushed them out, so a handful of failures could reopen a circuit on the strength of ones long past.
 */
class RatioBreaker implements IBreaker {
  private readonly failures = new Array<number>(BUCKETS).fill(0);
  private readonly successes = new Array<number>(BUCKETS).fill(0);
  private bucket = 0;
  private bucketStart = Date.now();

  constructor(private readonly settings: Extract<BreakerPolicy, { kind: 'ratio' }>) {}

  /** Cockatiel's hook for saving a breaker; ours are never saved or restored. */
  state: unknown;

  success(state: CircuitState): void {
    // A successful probe starts the count afresh: the failures that opened the circuit are history.
    if (state === CircuitState.HalfOpen) {
      this.failures.fill(0);
      this.successes.fill(0);
    }
    this.rotate();
    this.successes[this.bucket]!++;
  }

  /** Whether to open; cockatiel asks only while closed (a failed probe reopens the circuit anyway). */
  failure(): boolean {
    this.rotate();
    this.failures[this.bucket]!++;
    const failures = sum(this.failures);
    const total = failures + sum(this.successes);
    return total >= this.settings.minThroughput && failures > this.settings.threshold * total;
  }

  private rotate(): void {
    const width = this.settings.windowMs / BUCKETS;
    const now = Date.now();
    const steps = Math.min(BUCKETS, Math.floor((now - this.bucketStart) / width));
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

const states: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'open',
};

export class CircuitBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private openedAt = 0;
  private probing = false;

  constructor(
    readonly target: string,
    readonly settings: BreakerPolicy,
    onStateChange: (state: BreakerState) => void,
  ) {
    const breaker =
      settings.kind === 'consecutive' ? new ConsecutiveBreaker(settings.failures) : new RatioBreaker(settings);
    this.policy = circuitBreaker(handleWhen(countsAsFailure), { halfOpenAfter: settings.openMs, breaker });
    this.policy.onStateChange((state) => {
      if (state === CircuitState.Open) this.openedAt = Date.now();
      onStateChange(states[state]);
    });
  }

  get state(): BreakerState {
    return states[this.policy.state];
  }

  /**
   * Throws `CIRCUIT_OPEN` while the circuit is open, without counting as a probe: for work that should
   * not even begin (take a lock, mark an order) when its target is known to be down.
   */
  failFastIfOpen(): void {
    if (this.policy.state === CircuitState.Open || this.policy.state === CircuitState.Isolated) {
      if (Date.now() < this.openedAt + this.settings.openMs) throw this.openError();
    }
  }

  async execute<T>(run: () => Promise<T>): Promise<T> {
    // Cockatiel holds calls that arrive while the half-open probe runs, then lets them all through;
    // we want them to fail fast instead, so a probe that hangs until its deadline holds nobody up.
    if (this.probing) throw this.openError();
    const probe = this.policy.state !== CircuitState.Closed;
    if (probe) this.probing = true;
    try {
      return await this.policy.execute(run);
    } catch (error) {
      if (error instanceof BrokenCircuitError) throw this.openError();
      throw error;
    } finally {
      if (probe) this.probing = false;
    }
  }

  private openError(): ChassisError {
    const retryAfterMs = Math.max(0, this.openedAt + this.settings.openMs - Date.now());
    return new ChassisError(
      'CIRCUIT_OPEN',
      `Calls to ${this.target} are failing fast: its circuit breaker is open after repeated failures; next probe in ${retryAfterMs} ms`,
      { data: { target: this.target, retryAfterMs } },
    );
  }
}
