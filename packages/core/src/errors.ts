/**
 * Errors with a stable code, an HTTP status and a retryable flag, that survive the wire intact.
 *
 * Every error a caller can see is a `ChassisError`: transports, the runtime and handlers throw them,
 * and a plain `Error` thrown by a handler reaches the caller as `INTERNAL` (its message kept, its stack not).
 */

export interface ErrorSpec {
  /** HTTP status the gateway answers with. */
  readonly status: number;
  /** Whether the same call may succeed if tried again. */
  readonly retryable: boolean;
}

/** The catalog of codes the chassis itself raises. Apps add domain codes with `defineError`. */
export const errorCatalog = {
  VALIDATION: { status: 400, retryable: false },
  BAD_MESSAGE: { status: 400, retryable: false },
  UNAUTHENTICATED: { status: 401, retryable: false },
  FORBIDDEN: { status: 403, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  UNKNOWN_ACTION: { status: 404, retryable: false },
  CONFLICT: { status: 409, retryable: false },
  RATE_LIMITED: { status: 429, retryable: true },
  INTERNAL: { status: 500, retryable: false },
  /** The node's configuration is wrong: it does not start. */
  CONFIG: { status: 500, retryable: false },
  NO_SERVICE: { status: 503, retryable: true },
  UNAVAILABLE: { status: 503, retryable: true },
  TRANSPORT: { status: 503, retryable: true },
  CIRCUIT_OPEN: { status: 503, retryable: true },
  BULKHEAD_FULL: { status: 503, retryable: true },
  TIMEOUT: { status: 504, retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ChassisErrorCode = keyof typeof errorCatalog;

/** What travels on the wire in an error reply. */
export interface SerializedError {
  code: string;
  message: string;
  status: number;
  retryable: boolean;
  data?: unknown;
}

export class ChassisError extends Error {
  override readonly name = 'ChassisError';
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly data: unknown;

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryable?: boolean; data?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const spec = (errorCatalog as Record<string, ErrorSpec>)[code];
    this.code = code;
    this.status = options.status ?? spec?.status ?? 500;
    this.retryable = options.retryable ?? spec?.retryable ?? false;
    this.data = options.data;
  }

  toJSON(): SerializedError {
    const out: SerializedError = {
      code: this.code,
      message: this.message,
      status: this.status,
      retryable: this.retryable,
    };
    if (this.data !== undefined) out.data = this.data;
    return out;
  }

  static fromJSON(value: unknown): ChassisError {
    if (typeof value === 'object' && value !== null && typeof (value as SerializedError).code === 'string') {
      const v = value as SerializedError;
      return new ChassisError(v.code, String(v.message ?? v.code), {
        status: typeof v.status === 'number' ? v.status : undefined,
        retryable: typeof v.retryable === 'boolean' ? v.retryable : undefined,
        data: v.data,
      });
    }
    return new ChassisError('BAD_MESSAGE', 'The error reply could not be read', { data: value });
  }
}

/** Creates an error of a catalog code: `chassisError('NOT_FOUND', 'No order 42')`. */
export function chassisError(code: ChassisErrorCode, message: string, data?: unknown): ChassisError {
  return new ChassisError(code, message, { data });
}

/**
 * The `data` of each code a transport raises, one shape per code whatever the transport: callers read
 * it as `error.data` and HTTP clients as `details`, so it must not say which broker carried the call.
 */
export interface TransportErrorData {
  /**
   * No reply within the time allowed. `timeoutMs` is the time the call had when it began to wait: 0 when
   * its deadline had passed already (before a call or attempt started, or on the serving side).
   */
  TIMEOUT: { service: string; action: string; timeoutMs: number };
  /** Nothing serves the service; nobody received the request. */
  NO_SERVICE: { service: string; action: string };
  /**
   * The broker could not carry the message. No data: what failed is in the message, and nothing in it
   * would change what a caller does (retry later).
   */
  TRANSPORT: undefined;
}

export type TransportErrorCode = keyof TransportErrorData;

function transportRaised<C extends TransportErrorCode>(
  code: C,
  message: string,
  data: TransportErrorData[C],
  options: { cause?: unknown; retryable?: boolean } = {},
): ChassisError {
  return new ChassisError(code, message, { ...options, data });
}

/**
 * `TIMEOUT` for a request that got no reply within `timeoutMs`; `message` replaces the default one where
 * the node knows more (the deadline passed before the call was made, say). Raised by transports and by
 * the node alike, so a caller reads the same `data` whether the call was served locally or remotely.
 */
export function timeoutError(data: TransportErrorData['TIMEOUT'], message?: string): ChassisError {
  // Picked out, not passed on: an object with more fields (a pending request, say) must not widen `data`.
  const { service, action, timeoutMs } = data;
  return transportRaised('TIMEOUT', message ?? `No reply from ${service}.${action} within ${timeoutMs} ms`, {
    service,
    action,
    timeoutMs,
  });
}

/**
 * `NO_SERVICE` for a request nobody received; `hint` says what the transport saw and what to do,
 * e.g. `nothing subscribes to rpc.orders.place; start the service`.
 */
export function noServiceError(
  data: TransportErrorData['NO_SERVICE'],
  hint = 'is it started on some node?',
): ChassisError {
  const { service, action } = data;
  return transportRaised('NO_SERVICE', `No instance of service ${service} is serving ${action}; ${hint}`, {
    service,
    action,
  });
}

/** `TRANSPORT`: the broker could not carry a message; retryable unless `retryable: false` says so. */
export function transportError(message: string, options: { cause?: unknown; retryable?: boolean } = {}): ChassisError {
  return transportRaised('TRANSPORT', message, undefined, options);
}

/**
 * Declares a domain error for an app, e.g.
 * `export const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false })`
 * then `throw InsufficientShares('Account 101 holds 10 BHP, 20 requested', { free: 10 })`.
 */
export function defineError(code: string, spec: ErrorSpec) {
  const make = (message: string, data?: unknown) =>
    new ChassisError(code, message, { status: spec.status, retryable: spec.retryable, data });
  return Object.assign(make, {
    code,
    ...spec,
    is: (error: unknown): error is ChassisError => error instanceof ChassisError && error.code === code,
  });
}

export function isChassisError(error: unknown, code?: string): error is ChassisError {
  return error instanceof ChassisError && (code === undefined || error.code === code);
}

/** Turns anything thrown into a `ChassisError`, keeping a message the caller can act on. */
export function toChassisError(error: unknown): ChassisError {
  if (error instanceof ChassisError) return error;
  if (error instanceof Error) return new ChassisError('INTERNAL', error.message, { cause: error });
  return new ChassisError('INTERNAL', String(error));
}
