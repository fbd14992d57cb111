import { createHash } from 'node:crypto';
import { ChassisError } from '../../errors.ts';

/**
 * Durable consumer names may not contain dots. `market.order_created` → `market_order_created_<hash>`: readable,
 * and the hash of the original name keeps `a.b_c` and `a_b.c` apart.
 */
export function durableName(subscription: string): string {
  const readable = subscription.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 120);
  const hash = createHash('sha256').update(subscription).digest('hex').slice(0, 10);
  return `${readable}_${hash}`;
}

const TOKEN = /^[^\s.*>]+$/;

/** One subject token: a service, action or handler name. */
export function checkToken(kind: string, value: string): void {
  if (!TOKEN.test(value)) {
    throw new ChassisError(
      'VALIDATION',
      `Invalid ${kind} name "${value}" for NATS: it must be non-empty, without spaces, ".", "*" or ">"`,
    );
  }
}

/** Dot-separated tokens: an event, queue or topic name. */
export function checkSubject(kind: string, value: string): void {
  if (!value.split('.').every((token) => TOKEN.test(token))) {
    throw new ChassisError(
      'VALIDATION',
      `Invalid ${kind} name "${value}" for NATS: use dot-separated words without spaces, "*" or ">"`,
    );
  }
}
