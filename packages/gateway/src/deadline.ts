import { ChassisError } from '@chassis/core';

export interface DeadlineOptions {
  /** When the client says nothing. Default 5000 ms. */
  defaultTimeoutMs: number;
  /** The most a client may ask for. Default 30 000 ms. */
  maxTimeoutMs: number;
}

/**
 * The request's absolute deadline (epoch ms), from `Request-Timeout` (seconds from now, decimals
 * allowed) or `X-Deadline` (an absolute epoch ms, as the envelope carries it), else the default; never
 * further than the server's maximum. A header that is not a number is a 400.
 */
export function requestDeadline(
  headers: Record<string, string | string[] | undefined>,
  options: DeadlineOptions,
  now = Date.now(),
): number {
  const cap = now + options.maxTimeoutMs;
  const timeout = single(headers['request-timeout']);
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (timeout.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
      throw new ChassisError('VALIDATION', `Request-Timeout must be a positive number of seconds, not "${timeout}"`, {
        data: { fields: [{ path: 'headers.request-timeout', message: 'a positive number of seconds' }] },
      });
    }
    return Math.min(cap, now + Math.round(seconds * 1000));
  }
  const deadline = single(headers['x-deadline']);
  if (deadline !== undefined) {
    const at = Number(deadline);
    if (deadline.trim() === '' || !Number.isSafeInteger(at) || at <= 0) {
      throw new ChassisError(
        'VALIDATION',
        `X-Deadline must be an absolute time in epoch milliseconds, not "${deadline}"`,
        {
          data: { fields: [{ path: 'headers.x-deadline', message: 'epoch milliseconds' }] },
        },
      );
    }
    if (at <= now) throw new ChassisError('TIMEOUT', 'The request’s X-Deadline had passed when it arrived');
    return Math.min(cap, at);
  }
  return now + Math.min(options.defaultTimeoutMs, options.maxTimeoutMs);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
