import { ChassisError, transportError } from '../../errors.ts';

/** The message of anything thrown, for error messages that name their cause. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A client library's failure as `TRANSPORT`, saying what was being done (`Cannot … : <cause>`). A
 * `ChassisError` passes through unchanged: it already says what is wrong, with its own code.
 */
export function asTransportError(error: unknown, context: string): ChassisError {
  if (error instanceof ChassisError) return error;
  return transportError(`${context}: ${messageOf(error)}`, { cause: error });
}
