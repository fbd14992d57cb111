import { ChassisError, type SerializedError } from '@chassis/core';
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { STATUS_DETAILS_METADATA, statusDetails } from './details.ts';

/** gRPC status codes (`GrpcStatus.NOT_FOUND`, 5): `@grpc/grpc-js`'s `status`. */
export { status as GrpcStatus } from '@grpc/grpc-js';

/**
 * Trailing metadata of an error answer: the whole `ChassisError` (code, message, data) as JSON, so that a
 * chassis client gets back the very error, domain codes (`USER_NOT_FOUND`) and field lists included,
 * where the status code alone would say only `NOT_FOUND`.
 */
export const ERROR_METADATA = 'chassis-error-bin';

/** The catalog's codes, each to the gRPC status that means the same. */
const statusOfCode: Record<string, status> = {
  VALIDATION: status.INVALID_ARGUMENT,
  BAD_MESSAGE: status.INVALID_ARGUMENT,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  FORBIDDEN: status.PERMISSION_DENIED,
  NOT_FOUND: status.NOT_FOUND,
  UNKNOWN_ACTION: status.UNIMPLEMENTED,
  // A version check that failed, or a duplicate: the client may retry the whole read-modify-write.
  CONFLICT: status.ABORTED,
  RATE_LIMITED: status.RESOURCE_EXHAUSTED,
  INTERNAL: status.INTERNAL,
  CONFIG: status.INTERNAL,
  NO_SERVICE: status.UNAVAILABLE,
  UNAVAILABLE: status.UNAVAILABLE,
  TRANSPORT: status.UNAVAILABLE,
  CIRCUIT_OPEN: status.UNAVAILABLE,
  BULKHEAD_FULL: status.UNAVAILABLE,
  TIMEOUT: status.DEADLINE_EXCEEDED,
};

/** A domain code (`defineError`) by its HTTP status. */
function statusOfHttp(http: number): status {
  switch (http) {
    case 400:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.NOT_FOUND;
    case 409:
      return status.ABORTED;
    case 429:
      return status.RESOURCE_EXHAUSTED;
    case 501:
      return status.UNIMPLEMENTED;
    case 503:
      return status.UNAVAILABLE;
    case 504:
      return status.DEADLINE_EXCEEDED;
    default:
      // 412, 422 and the like: the request is well formed, the system's state refuses it.
      return http >= 400 && http < 500 ? status.FAILED_PRECONDITION : status.INTERNAL;
  }
}

/** The gRPC status of an error: the catalog's codes by meaning, a domain code by its HTTP status. */
export function grpcStatusOf(error: ChassisError): status {
  return statusOfCode[error.code] ?? statusOfHttp(error.status);
}

/** The gRPC status's name, `NOT_FOUND`, for metrics and spans. */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}

/** Whether an error's message and data would tell a client about the system's inside. */
export function isInternal(error: ChassisError): boolean {
  return error.status >= 500 && (error.code === 'INTERNAL' || error.code === 'CONFIG');
}

/** The catalog code a gRPC status means, for a server that sent no `chassis-error-bin`. */
const codeOfStatus: Partial<Record<status, string>> = {
  [status.INVALID_ARGUMENT]: 'VALIDATION',
  [status.OUT_OF_RANGE]: 'VALIDATION',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [status.PERMISSION_DENIED]: 'FORBIDDEN',
  [status.NOT_FOUND]: 'NOT_FOUND',
  [status.ALREADY_EXISTS]: 'CONFLICT',
  [status.ABORTED]: 'CONFLICT',
  [status.FAILED_PRECONDITION]: 'CONFLICT',
  [status.RESOURCE_EXHAUSTED]: 'RATE_LIMITED',
  [status.UNIMPLEMENTED]: 'UNKNOWN_ACTION',
  [status.DEADLINE_EXCEEDED]: 'TIMEOUT',
  [status.UNAVAILABLE]: 'UNAVAILABLE',
  // The call was cancelled before an answer (the channel shut down, say): nothing was answered.
  [status.CANCELLED]: 'UNAVAILABLE',
};

/**
 * The metadata of an error answer: the error as a chassis client reads it back, with `message` (what the
 * client is told) and without the data of an internal error.
 */
export function errorMetadata(error: ChassisError, code: status, message: string): Metadata {
  const metadata = new Metadata();
  const serialized: SerializedError = isInternal(error)
    ? { code: error.code, message, status: error.status, retryable: error.retryable }
    : error.toJSON();
  metadata.set(ERROR_METADATA, Buffer.from(JSON.stringify(serialized)));
  metadata.set(STATUS_DETAILS_METADATA, statusDetails(error, code, message));
  return metadata;
}

/**
 * The `ChassisError` a failed gRPC call means: the server's own when it is a chassis server (its
 * `chassis-error-bin`), else the catalog code of the status, with the server's details as the message.
 */
export function chassisErrorOf(error: ServiceError, target: string): ChassisError {
  const carried = error.metadata?.get(ERROR_METADATA)[0];
  if (carried !== undefined) {
    try {
      const parsed: unknown = JSON.parse(Buffer.isBuffer(carried) ? carried.toString('utf8') : carried);
      const chassis = ChassisError.fromJSON(parsed);
      if (chassis.code !== 'BAD_MESSAGE' || (parsed as { code?: unknown }).code === 'BAD_MESSAGE') return chassis;
    } catch {
      // Not ours after all: read the status below.
    }
  }
  const code = codeOfStatus[error.code] ?? 'INTERNAL';
  const details = error.details || statusName(error.code);
  return new ChassisError(code, `${target} answered ${statusName(error.code)}: ${details}`, {
    data: { grpcStatus: statusName(error.code) },
  });
}
