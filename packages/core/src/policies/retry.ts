import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError } from '../errors.ts';
import { backoffDelay } from '../transports/shared/backoff.ts';
import type { RetryBudget } from './retry-budget.ts';

/**
 * Retries with exponential backoff and full jitter, capped; only errors that say they are retryable;
 * only idempotent actions unless the call says otherwise; never past the call's deadline; never beyond
 * the target's retry budget.
 *
 * The loop is ours rather than cockatiel's `retry` because it must consult the deadline before each
 * delay and a budget shared by every call to the target.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Retry even when the action is not idempotent (the callee must tolerate duplicates). */
  nonIdempotent?: boolean;
}

export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: ChassisError;
}

/** Full jitter: a random delay between 0 and the exponential ceiling; the transports back off by the same formula. */
export function fullJitterDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  return backoffDelay(attempt, policy, random);
}

/** Whether trying again could help, and is safe. */
export function isWorthRetrying(error: unknown, idempotent: boolean, policy: RetryPolicy): boolean {
  if (!(error instanceof ChassisError) || !error.retryable) return false;
  // An open circuit or a full bulkhead will not have changed within a retry delay.
  if (error.code === 'CIRCUIT_OPEN' || error.code === 'BULKHEAD_FULL') return false;
  // Nobody received the request: trying again cannot apply it twice.
  if (error.code === 'NO_SERVICE') return true;
  return idempotent || policy.nonIdempotent === true;
}

/** What a retry loop needs to decide whether, and after how long, to try again. */
export interface RetryOptions {
  policy: RetryPolicy;
  idempotent: boolean;
  deadline: number;
  budget: RetryBudget;
  onRetry?: (event: RetryEvent) => void;
  onBudgetExhausted?: () => void;
}

/**
 * How long to wait before trying again after `error` ended attempt `attempt`, taking the retry from the
 * budget; undefined when not to try again. The decision of `withRetry`'s loop, shared with the loop the
 * policy engine runs each call's attempts in.
 */
export function retryDelay(error: unknown, attempt: number, options: RetryOptions): number | undefined {
  const { policy, budget } = options;
  if (attempt >= policy.maxAttempts || !isWorthRetrying(error, options.idempotent, policy)) return undefined;
  const delayMs = fullJitterDelay(attempt, policy);
  if (Date.now() + delayMs >= options.deadline) return undefined;
  if (!budget.tryRetry()) {
    options.onBudgetExhausted?.();
    return undefined;
  }
  options.onRetry?.({ attempt, delayMs, error: error as ChassisError });
  return delayMs;
}

export async function withRetry<T>(run: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  options.budget.recordCall();
  for (let attempt = 1; ; attempt++) {
    try {
      return await run(attempt);
    } catch (error) {
      const delayMs = retryDelay(error, attempt, options);
      if (delayMs === undefined) throw error;
      await sleep(delayMs);
    }
  }
}
