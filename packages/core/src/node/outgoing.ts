import { type Codec, ContentType, Header, newId } from '../envelope.ts';
import { ChassisError } from '../errors.ts';
import type { Span } from '../observability/tracing.ts';
import type { Origin } from './origin.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * The envelope headers of an outgoing request or event. A header with a default is left out when the
 * default holds — no correlation id means the message's own id, no content-type means JSON — since
 * every header costs on every message (NATS validates and encodes each one).
 */
export function headersFor(rt: NodeRuntime, origin: Origin, span: Span): Record<string, string> {
  const headers: Record<string, string> = { [Header.id]: newId() };
  if (origin.correlationId !== undefined) headers[Header.correlationId] = origin.correlationId;
  if (origin.inherited) headers[Header.causationId] = origin.messageId;
  if (rt.codec.contentType !== ContentType.json) headers[Header.contentType] = rt.codec.contentType;
  rt.tracing.inject(span, headers);
  return headers;
}

/** A body on the wire; `VALIDATION` when the value cannot be written with the codec. */
export function encode(value: unknown, what: string, codec: Codec): Uint8Array {
  try {
    return codec.encode(value);
  } catch (error) {
    throw new ChassisError('VALIDATION', `The data of ${what} cannot be encoded as ${codec.contentType}`, {
      cause: error,
    });
  }
}
