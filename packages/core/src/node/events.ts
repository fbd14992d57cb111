import { fieldErrors } from '../contracts.ts';
import { deadlineOf, decodeBody } from '../envelope.ts';
import { toChassisError } from '../errors.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { type Span, SpanKind, Tracing } from '../observability/tracing.ts';
import type { EventHandlerDefinition, ServiceDefinition } from '../service.ts';
import type { Disposition, EventDelivery } from '../transports/transport.ts';
import { eventDeadline, isPast } from './deadline.ts';
import { dispositionOf, failureReason, lostTooOften } from './disposition.ts';
import { describeFields } from './fields.ts';
import { inboundOrigin } from './origin.ts';
import { handlerPolicies, runInContext } from './run-handler.ts';
import type { NodeRuntime } from './runtime.ts';

/** What became of one event delivery, with the error when the handler failed. */
interface Settled {
  disposition: Disposition;
  error?: unknown;
}

/** Handles one event delivery with its span, metrics and in-flight count around it. */
export async function consume(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: EventHandlerDefinition,
  delivery: EventDelivery,
): Promise<Disposition> {
  return (await consumeSettled(rt, service, handler, delivery)).disposition;
}

/**
 * Runs a dead letter's handler once more, here, as a first delivery (an operator's replay): `handled`
 * when it succeeded (or the inbox knew it), else why it failed again. The letter itself is left to the caller.
 */
export async function replayDelivery(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: EventHandlerDefinition,
  message: EventDelivery['message'],
): Promise<{ handled: true } | { handled: false; reason: string }> {
  const { disposition, error } = await consumeSettled(rt, service, handler, { message, attempt: 1 });
  if (disposition.kind === 'ack') return { handled: true };
  return { handled: false, reason: disposition.kind === 'dead' ? disposition.reason : failureReason(error) };
}

async function consumeSettled(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: EventHandlerDefinition,
  delivery: EventDelivery,
): Promise<Settled> {
  const started = performance.now();
  const subscription = `${service.name}.${handler.name}`;
  const parent = rt.tracing.extract(delivery.message.headers);
  const span =
    rt.tracing.unrecorded(parent) ??
    rt.tracing.record(`consume ${handler.contract.name}`, SpanKind.CONSUMER, parent, {
      'messaging.system': rt.transport.kind,
      'messaging.destination.name': handler.contract.name,
      'messaging.consumer.group.name': subscription,
      'chassis.attempt': delivery.attempt,
    });
  rt.metrics.handling.event++;
  try {
    const { disposition, error } = await settle(rt, service, handler, subscription, delivery, span);
    if (disposition.kind === 'retry') rt.metrics.redeliveries.inc({ subscription });
    if (disposition.kind === 'dead') rt.metrics.deadLetters.inc({ queue: subscription });
    const outcome = disposition.kind === 'dead' && error === undefined ? 'BAD_MESSAGE' : outcomeOf(error);
    rt.metrics.observeEvent(
      service.name,
      subscription,
      handler.contract.name,
      outcome,
      (performance.now() - started) / 1000,
    );
    Tracing.end(span, error ?? (disposition.kind === 'dead' ? new Error(disposition.reason) : undefined));
    return { disposition, error };
  } finally {
    rt.metrics.handling.event--;
  }
}

/** A delivery to dead-letter, logged. */
function deadLettered(
  rt: NodeRuntime,
  subscription: string,
  event: string,
  attempt: number,
  reason: string,
  error?: unknown,
): Settled {
  rt.log.warn({ subscription, event, attempt, reason }, `dead-lettered ${event}: ${reason}`);
  return { disposition: { kind: 'dead', reason }, error };
}

/**
 * Decodes an event, refuses it when it is stale or does not match its contract, runs its handler under its
 * policies by its deadline, and decides its fate (`dispositionOf`) when the handler fails.
 */
async function settle(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: EventHandlerDefinition,
  subscription: string,
  { message, attempt, unsettled }: EventDelivery,
  span: Span,
): Promise<Settled> {
  const { contract } = handler;
  const event = contract.name;
  const maxDeliveries = handler.options.maxDeliveries ?? rt.settings.maxDeliveries;
  const lost = lostTooOften(unsettled, maxDeliveries);
  if (lost) return deadLettered(rt, subscription, event, attempt, lost.reason);
  let payload: unknown;
  try {
    payload = decodeBody(message);
  } catch (error) {
    return deadLettered(rt, subscription, event, attempt, toChassisError(error).message);
  }
  const staleAt = deadlineOf(message);
  if (staleAt !== undefined && isPast(staleAt, Date.now())) {
    return deadLettered(
      rt,
      subscription,
      event,
      attempt,
      `expired at ${new Date(staleAt).toISOString()} before it was handled`,
    );
  }
  const parsed = contract.payload.safeParse(payload);
  if (!parsed.success) {
    return deadLettered(
      rt,
      subscription,
      event,
      attempt,
      `payload does not match ${contract.name}: ${describeFields(fieldErrors(parsed.error))}`,
    );
  }
  const deadline = eventDeadline(Date.now(), handler.options.timeoutMs ?? rt.settings.eventTimeoutMs, staleAt);
  const origin = inboundOrigin(message, deadline, span);
  try {
    await rt.policies.handle(subscription, handlerPolicies(rt, handler, handler.options), () =>
      runInContext(
        rt,
        {
          kind: 'event',
          service,
          subscription,
          idempotent: handler.options.idempotent,
          groupCommit: handler.options.groupCommit,
        },
        origin,
        attempt,
        span,
        true,
        (ctx) => handler.run(parsed.data, ctx),
      ),
    );
    return { disposition: { kind: 'ack' } };
  } catch (error) {
    const disposition = dispositionOf(error, attempt, {
      maxDeliveries,
      redelivery: rt.settings.redelivery,
    });
    if (disposition.kind === 'dead') return deadLettered(rt, subscription, event, attempt, disposition.reason, error);
    rt.log.info(
      { subscription, attempt, delayMs: disposition.delayMs, reason: failureReason(error) },
      `${contract.name} will be redelivered`,
    );
    return { disposition, error };
  }
}
