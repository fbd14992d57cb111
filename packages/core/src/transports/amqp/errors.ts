import { ChassisError } from '../../errors.ts';
import { messageOf } from '../shared/errors.ts';

/** What failed while `doing` something, as a `ChassisError`; one that already is passes through unchanged. */
export function operationError(error: unknown, doing: string): ChassisError {
  if (error instanceof ChassisError) return error;
  // amqplib refuses header tables over 64 KiB: the message is at fault, and retrying will not help.
  if (error instanceof RangeError) {
    return new ChassisError('BAD_MESSAGE', `${doing} failed: ${error.message}`, { cause: error });
  }
  return new ChassisError('TRANSPORT', `${doing} failed: ${messageOf(error)}`, { cause: error });
}

/** The AMQP reply code of a channel or connection error, e.g. 404 for a missing queue. */
export function brokerCode(error: unknown): number | undefined {
  const code: unknown = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}
