import { ChassisError, toChassisError } from '../errors.ts';
import { type Backoff, backoffDelay } from '../transports/shared/backoff.ts';
import type { Disposition } from '../transports/transport.ts';
import { HandlerTimeout } from './deadline.ts';

/** How often, and how far apart, a failing event is tried before it is dead-lettered. */
export interface RedeliveryLimits {
  /** Attempts before the event is dead-lettered (the handler's own, else the node's). */
  maxDeliveries: number;
  redelivery: { initialDelayMs: number; maxDelayMs: number };
}

/** What becomes of an event that failed: never an ack. */
export type Failed = Exclude<Disposition, { kind: 'ack' }>;

/** How a failure reads in logs and dead letters: its code, then its message. */
export function failureReason(error: unknown): string {
  const chassisError = toChassisError(error);
  return `${chassisError.code}: ${chassisError.message}`;
}

/**
 * The fate of an event whose handler threw on its `attempt`th delivery (a handler that returns is acked).
 * - A `ChassisError` that is not retryable would fail the same way again: dead-lettered at once.
 * - A retryable one means a dependency is unavailable (breaker open, no service, timeout, rate limit):
 *   redelivered however long the outage lasts — it never uses up the attempts — and no sooner than the
 *   error's `retryAfterMs`.
 * - Anything else (a bug, or the handler's own timeout) counts against `maxDeliveries`.
 */
export function dispositionOf(error: unknown, attempt: number, limits: RedeliveryLimits): Failed {
  if (error instanceof ChassisError && !(error instanceof HandlerTimeout)) {
    if (!error.retryable) return { kind: 'dead', reason: `failed permanently (${failureReason(error)})` };
    const retryAfterMs = Number((error.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs) || 0;
    // An outage may last for thousands of attempts: the exponent is capped so the arithmetic stays finite.
    return {
      kind: 'retry',
      delayMs: Math.max(retryAfterMs, redeliveryDelay(attempt, limits.redelivery)),
    };
  }
  if (attempt >= limits.maxDeliveries) {
    return { kind: 'dead', reason: `failed ${attempt} times; last error ${failureReason(error)}` };
  }
  return { kind: 'retry', delayMs: redeliveryDelay(attempt, limits.redelivery) };
}

/**
 * The fate of an event before its handler runs, by the deliveries of it that ended with no outcome (as the
 * broker counts them): once `maxDeliveries` were lost, dead-lettered without running it again. A handler
 * that kills its process never gets to count its own failure, so only this ends the loop.
 */
export function lostTooOften(
  unsettled: number | undefined,
  maxDeliveries: number,
): Extract<Disposition, { kind: 'dead' }> | undefined {
  if (unsettled === undefined || unsettled < maxDeliveries) return undefined;
  return {
    kind: 'dead',
    reason: `delivered ${unsettled} times without an outcome; its handler may be crashing the process`,
  };
}

/**
 * Doubles per attempt up to the cap, then takes a random point in its upper half so retries spread out:
 * the one backoff formula, with a floor of half the ceiling.
 */
export function redeliveryDelay(attempt: number, { initialDelayMs, maxDelayMs }: Backoff): number {
  return backoffDelay(attempt, { initialDelayMs, maxDelayMs, floorShare: 0.5 });
}
