import { JetStreamApiError } from '@nats-io/jetstream';
import { type ChassisError, transportError } from '../../errors.ts';

export function closedError(): ChassisError {
  return transportError('The NATS transport is closed');
}

export function isApiCode(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

export function isNoResponders(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e.name === 'NoResponders' || /no responders/i.test(e.message)) return true;
  }
  return false;
}
