import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  SamplingBreaker,
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
      settings.kind === 'consecutive'
        ? new ConsecutiveBreaker(settings.failures)
        : new SamplingBreaker({
            threshold: settings.threshold,
            duration: settings.windowMs,
            minimumRps: settings.minThroughput / (settings.windowMs / 1000),
          });
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
