import type { Channel, ConsumeMessage } from 'amqplib';
import { Header } from '../../envelope.ts';
import { sleep } from '../shared/timing.ts';
import {
  type Disposition,
  type EventBinding,
  type EventHandler,
  type SubscribeOptions,
  subscriptionName,
  type WireMessage,
} from '../transport.ts';
import { ignore, publishConfirmed, settle } from './channels.ts';
import type { ConsumerSpec } from './consumer.ts';
import { deadLetter, declareDeadLetterQueue } from './dead-letters.ts';
import { brokerCode, operationError } from './errors.ts';
import { attemptOf, deliveryCountOf, propertiesOf, toWire } from './messages.ts';
import {
  EVENT_QUEUE_OPTIONS,
  eventQueueName,
  legacyEventQueueName,
  MAX_TTL_MS,
  RETRY_QUEUE_IDLE_MS,
  retryDelayBucket,
  splitEvent,
} from './names.ts';
import type { AmqpSession } from './session.ts';

/** Publishes a persistent event to `<source>.events`; resolves once the broker has confirmed it. */
export async function publishEvent(session: AmqpSession, event: string, message: WireMessage): Promise<void> {
  const { source, name } = splitEvent(event);
  const doing = `Publishing ${event}`;
  const exchange = `${source}.events`;
  const channel = await session.confirmedChannel(doing);
  try {
    await session.declareExchange(channel, exchange);
    await publishConfirmed(
      channel,
      exchange,
      name,
      message.body,
      propertiesOf(message, { persistent: true, headers: { ...message.headers, [Header.attempt]: '1' } }),
    );
  } catch (error) {
    throw operationError(error, doing);
  }
}

/** A subscription: its quorum queue, and the classic queue of an earlier version while it drains. */
export function eventSubscriber(
  session: AmqpSession,
  binding: EventBinding,
  handler: EventHandler,
  options: SubscribeOptions,
): ConsumerSpec {
  const { source, name } = splitEvent(binding.event);
  const subscription = subscriptionName(binding);
  const exchange = `${source}.events`;
  const queue = eventQueueName(binding);
  const legacy = legacyEventQueueName(binding);
  return {
    name: `queue ${queue}`,
    noAck: false,
    setup: async (channel, deliver) => {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.assertQueue(queue, EVENT_QUEUE_OPTIONS);
      await channel.bindQueue(queue, exchange, name);
      await declareDeadLetterQueue(channel, subscription);
      // Bound to the quorum queue first and unbound after: an event published in between goes to both and
      // is delivered twice, which at-least-once delivery allows, rather than to neither. Looked up before
      // consuming, so that once consuming starts the consumer can be stopped without a round trip.
      const draining = (await queueDepth(session, legacy, 'Looking for a classic event queue to drain')) !== undefined;
      if (draining) await channel.unbindQueue(legacy, exchange, name);
      await channel.prefetch(Math.max(1, options.prefetch));
      const tags = [(await channel.consume(queue, deliver, { consumerTag: session.consumerTag(queue) })).consumerTag];
      if (draining) {
        tags.push((await channel.consume(legacy, deliver, { consumerTag: session.consumerTag(legacy) })).consumerTag);
      }
      return tags;
    },
    handle: (channel, message) => deliverEvent(session, channel, message, queue, subscription, handler),
  };
}

async function deliverEvent(
  session: AmqpSession,
  channel: Channel,
  message: ConsumeMessage,
  queue: string,
  subscription: string,
  handler: EventHandler,
): Promise<void> {
  const wire = toWire(message);
  const unsettled = deliveryCountOf(message);
  const attempt = attemptOf(wire.headers) + unsettled;
  let disposition: Disposition;
  try {
    disposition = await handler({ message: wire, attempt, unsettled });
  } catch {
    // A handler must not throw; if one does, the event is not lost: it comes back.
    disposition = { kind: 'retry', delayMs: 1000 };
  }
  try {
    if (disposition.kind === 'retry') await republish(session, queue, wire, attempt + 1, disposition.delayMs);
    else if (disposition.kind === 'dead') await deadLetter(session, subscription, wire, disposition.reason);
    settle(() => channel.ack(message));
  } catch {
    // The copy could not be stored, so hand the original back rather than lose it. The pause keeps a
    // broker that keeps refusing from turning this into a hot loop.
    await sleep(1000);
    settle(() => channel.nack(message, false, true));
  }
}

/** Stores a copy of an event for redelivery after `delayMs`, confirmed before the original is acked. */
async function republish(
  session: AmqpSession,
  queue: string,
  message: WireMessage,
  attempt: number,
  delayMs: number,
): Promise<void> {
  const channel = await session.confirmedChannel(`Scheduling a redelivery on ${queue}`);
  const ttl = retryDelayBucket(delayMs);
  let target = queue;
  if (ttl > 0) {
    target = `retry-${queue}-${ttl}`;
    // Declared on every use: that renews the queue's idle lease, and publishing alone does not.
    await channel.assertQueue(target, {
      durable: true,
      messageTtl: ttl,
      deadLetterExchange: '',
      deadLetterRoutingKey: queue,
      expires: Math.min(ttl + RETRY_QUEUE_IDLE_MS, MAX_TTL_MS),
    });
  }
  await publishConfirmed(
    channel,
    '',
    target,
    message.body,
    propertiesOf(message, { persistent: true, headers: { ...message.headers, [Header.attempt]: String(attempt) } }),
  );
}

/** The events waiting for a subscription; a classic queue still being drained holds part of it. */
export async function backlog(session: AmqpSession, binding: EventBinding): Promise<number> {
  const queue = eventQueueName(binding);
  const doing = `Reading the backlog of ${queue}`;
  const [current, legacy] = await Promise.all([
    queueDepth(session, queue, doing),
    queueDepth(session, legacyEventQueueName(binding), doing),
  ]);
  return (current ?? 0) + (legacy ?? 0);
}

/** The ready messages of a queue (RabbitMQ does not count delivered, unacknowledged ones), or undefined when there is no such queue. */
async function queueDepth(session: AmqpSession, queue: string, doing: string): Promise<number | undefined> {
  // Its own channel: checking a queue that does not exist closes the channel it is checked on.
  const channel = await session.oneOffChannel(doing);
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } catch (error) {
    if (brokerCode(error) === 404) return undefined;
    throw operationError(error, doing);
  } finally {
    await channel.close().catch(ignore);
  }
}
