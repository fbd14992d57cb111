import { ChassisError } from '../errors.ts';

/**
 * A fallback answers in place of a failed call: a fixed value, or a function of the error and the input
 * (a cached copy, a default, a degraded answer). Validation and domain errors are not failures of the
 * target, so they are not replaced: the caller must hear about its own mistakes.
 */
export type Fallback<I, O> = { value: O } | ((error: ChassisError, input: I) => O | Promise<O>);

export function canFallBack(error: unknown): error is ChassisError {
  return error instanceof ChassisError && (error.retryable || error.code === 'INTERNAL');
}

export async function applyFallback<I, O>(fallback: Fallback<I, O>, error: ChassisError, input: I): Promise<O> {
  return typeof fallback === 'function' ? fallback(error, input) : fallback.value;
}
