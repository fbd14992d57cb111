import { ChassisError, defineError, toChassisError } from '@chassis/core';
import { z } from 'zod';

/**
 * Every error the gateway answers has one shape, `{ "error": { code, message, details, requestId } }`,
 * the status of its code in the catalog, and never a stack trace.
 */

export const PayloadTooLarge = defineError('PAYLOAD_TOO_LARGE', { status: 413, retryable: false });
export const UnsupportedMediaType = defineError('UNSUPPORTED_MEDIA_TYPE', { status: 415, retryable: false });
export const IdempotencyKeyReused = defineError('IDEMPOTENCY_KEY_REUSED', { status: 422, retryable: false });

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
    requestId: z.string(),
  }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** Fastify's own errors, as the catalog names them. */
const fastifyCodes: Record<string, (message: string) => ChassisError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: (m) => PayloadTooLarge(m),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (m) => UnsupportedMediaType(m),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: (m) => new ChassisError('VALIDATION', m),
  FST_ERR_CTP_EMPTY_JSON_BODY: (m) => new ChassisError('VALIDATION', m),
  FST_ERR_CTP_INVALID_JSON_BODY: (m) => new ChassisError('VALIDATION', m),
};

/** Turns whatever went wrong into the error to answer with. */
export function gatewayError(error: unknown): ChassisError {
  if (error instanceof ChassisError) return error;
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && fastifyCodes[code]) return fastifyCodes[code](message);
  // Any other client error Fastify raised (a body that is not JSON, a bad header): the request's fault.
  const status = (error as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (error instanceof SyntaxError || /JSON/i.test(message)) {
      return new ChassisError('VALIDATION', `The body is not valid JSON: ${message}`);
    }
    return new ChassisError('VALIDATION', message, { status });
  }
  return toChassisError(error);
}

/** The body of an error answer. An internal error's message is not shown: it may say too much. */
export function errorBody(error: ChassisError, requestId: string): ErrorBody {
  const internal = error.status >= 500 && (error.code === 'INTERNAL' || error.code === 'CONFIG');
  return {
    error: {
      code: error.code,
      message: internal
        ? `The request failed inside the system; quote request id ${requestId} when reporting it`
        : error.message,
      ...(internal || error.data === undefined ? {} : { details: error.data }),
      requestId,
    },
  };
}
