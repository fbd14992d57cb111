import type { ActionContract } from '../contracts.ts';
import { requestDeadlineOf } from '../envelope.ts';
import { ChassisError, timeoutError } from '../errors.ts';
import type { WireMessage } from '../transports/transport.ts';

// Deadline arithmetic: every deadline is an absolute time on this node's clock, and `now` is passed in
// rather than read here, so each rule can be checked at the exact millisecond it turns.

/**
 * The handler's own time ran out. Unlike a dependency's `TIMEOUT`, which leaves an event waiting for the
 * dependency to come back, this counts against the event's attempts: the handler may hang on every try.
 */
export class HandlerTimeout extends ChassisError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

/** Whether nobody waits any more: a deadline is over at its own millisecond, not one after. */
export function isPast(deadline: number, now: number): boolean {
  return deadline <= now;
}

/** The time left until the deadline, never below zero. */
export function remainingMs(deadline: number, now: number): number {
  return Math.max(0, deadline - now);
}

/**
 * The deadline of a request this node serves: the time the caller still waits (`timeout-ms`) counted from
 * when this node received it; without that header, the contract's timeout or else the node's call timeout.
 */
export function requestDeadline(message: WireMessage, receivedAt: number, fallbackTimeoutMs: number): number {
  return requestDeadlineOf(message, receivedAt) ?? receivedAt + fallbackTimeoutMs;
}

/** The deadline of one attempt at an event: its handler's timeout, cut short by the event's own deadline. */
export function eventDeadline(now: number, timeoutMs: number, staleAt: number | undefined): number {
  return Math.min(now + timeoutMs, staleAt ?? Number.POSITIVE_INFINITY);
}

/**
 * The time one attempt (one hop) at a call may wait: whatever is left of the call's deadline, which is also
 * what travels on as `timeout-ms`. `TIMEOUT` when nothing is left, so no attempt starts that cannot finish.
 */
export function timeLeft(contract: ActionContract, deadline: number, attempt: number, now: number): number {
  const left = deadline - now;
  if (left <= 0) {
    throw timeoutError(
      { service: contract.service, action: contract.action, timeoutMs: 0 },
      `The deadline passed before attempt ${attempt} at ${contract.name}`,
    );
  }
  return left;
}
