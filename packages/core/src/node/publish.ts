import type { Context, EmitOptions } from '../context.ts';
import { type EventContract, fieldErrors, type PayloadInputOf } from '../contracts.ts';
import { Header } from '../envelope.ts';
import { ChassisError } from '../errors.ts';
import { noSpan, SpanKind, Tracing } from '../observability/tracing.ts';
import { describeFields } from './fields.ts';
import type { Origin } from './origin.ts';
import { encode, headersFor } from './outgoing.ts';
import type { NodeRuntime } from './runtime.ts';

/** An event published from outside any handler: nothing caused it, no extension takes it. */
export function emitFromOutside<E extends EventContract>(
  rt: NodeRuntime,
  contract: E,
  payload: PayloadInputOf<E>,
  options: EmitOptions & { correlationId?: string; traceparent?: string },
): Promise<void> {
  return publish(rt, contract, payload, options, {
    messageId: '',
    correlationId: options.correlationId,
    deadline: Number.POSITIVE_INFINITY,
    auth: undefined,
    trace: options.traceparent === undefined ? noSpan : rt.tracing.extract({ traceparent: options.traceparent }),
    inherited: false,
  });
}

/**
 * Publishes an event: its payload against the contract, its envelope and span, then to an extension that
 * takes it (when a handler emits it) or to the transport.
 */
export async function publish<E extends EventContract>(
  rt: NodeRuntime,
  contract: E,
  payload: PayloadInputOf<E>,
  options: EmitOptions,
  origin: Origin,
  ctx?: Context,
): Promise<void> {
  const parsed = contract.payload.safeParse(payload);
  if (!parsed.success) {
    const fields = fieldErrors(parsed.error);
    throw new ChassisError('VALIDATION', `Event ${contract.name} not emitted: ${describeFields(fields)}`, {
      data: { event: contract.name, fields },
    });
  }
  const span =
    rt.tracing.unrecorded(origin.trace) ??
    rt.tracing.record(`publish ${contract.name}`, SpanKind.PRODUCER, origin.trace, {
      'messaging.system': rt.transport.kind,
      'messaging.destination.name': contract.name,
    });
  let failure: unknown;
  try {
    const headers = headersFor(rt, origin, span);
    headers[Header.type] = contract.name;
    if (options.deadline !== undefined) headers[Header.deadline] = String(options.deadline);
    const message = { headers, body: encode(parsed.data, contract.name, rt.codec) };
    // An extension may take it (into an outbox, in the handler's transaction); else it goes out now.
    if (ctx) {
      for (const extension of rt.emitters) {
        if (await extension.emit!(ctx, contract.name, message)) return;
      }
    }
    await rt.transport.publish(contract.name, message);
    rt.metrics.published.inc({ event: contract.name });
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    Tracing.end(span, failure);
  }
}
