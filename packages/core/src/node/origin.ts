import { Header, newId } from '../envelope.ts';
import type { Identity } from '../identity.ts';
import type { Span } from '../observability/tracing.ts';
import type { WireMessage } from '../transports/transport.ts';

/** Where a call or emit comes from: what it inherits from the message being handled, if any. */
export interface Origin {
  messageId: string;
  /** Unset for a call from outside that named none: the message's own id then serves. */
  correlationId: string | undefined;
  causationId?: string | undefined;
  deadline: number;
  auth: string | undefined;
  /** Whose token `auth` is, once verified (requests only). */
  user?: Identity;
  /** The span new spans are children of (`noSpan` where a trace starts): its trace context, at least. */
  trace: Span;
  /** True inside a handler: what is sent is caused by the message being handled. */
  inherited: boolean;
}

/** The origin of what a handler of a received request or event sends: that message, until `deadline`. */
export function inboundOrigin(message: WireMessage, deadline: number, span: Span): Origin {
  const messageId = message.headers[Header.id] ?? newId();
  return {
    messageId,
    correlationId: message.headers[Header.correlationId] ?? messageId,
    causationId: message.headers[Header.causationId],
    deadline,
    auth: message.headers[Header.auth],
    trace: span,
    inherited: true,
  };
}
