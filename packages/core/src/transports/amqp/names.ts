import type { Options } from 'amqplib';
import { ChassisError } from '../../errors.ts';
import { type EventBinding, subscriptionName } from '../transport.ts';

export const RPC_EXCHANGE = 'chassis.rpc';
export const BROADCAST_EXCHANGE = 'chassis.broadcast';
export const DEAD_LETTER_EXCHANGE = 'chassis.dlx';
export const REPLY_TO = 'amq.rabbitmq.reply-to';
/** Event queues must count deliveries broker-side; quorum queues are always durable and shared. */
export const EVENT_QUEUE_OPTIONS: Options.AssertQueue = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
/** How long a retry queue outlives its last use; it must outlive the TTL of the messages in it. */
export const RETRY_QUEUE_IDLE_MS = 60_000;
export const MAX_TTL_MS = 2 ** 31 - 1;

export function splitEvent(event: string): { source: string; name: string } {
  const dot = event.indexOf('.');
  if (dot <= 0 || dot === event.length - 1) {
    throw new ChassisError(
      'VALIDATION',
      `Event name "${event}" must be "<source service>.<event>", e.g. "orders.order_created"`,
    );
  }
  return { source: event.slice(0, dot), name: event.slice(dot + 1) };
}

/** The quorum queue of an event subscription: `evtq-<source>-<event>--<service>.<handler>`. */
export function eventQueueName(binding: EventBinding): string {
  const { source, name } = splitEvent(binding.event);
  return `evtq-${source}-${name}--${subscriptionName(binding)}`;
}

/** The classic queue earlier versions declared for the subscription, drained if it still exists. */
export function legacyEventQueueName(binding: EventBinding): string {
  const { source, name } = splitEvent(binding.event);
  return `evt-${source}-${name}--${subscriptionName(binding)}`;
}

/**
 * Rounds a redelivery delay to two significant digits. The runtime jitters its delays, and each distinct
 * delay needs its own retry queue; rounding keeps them to a few dozen per subscription at most (±5%).
 */
export function retryDelayBucket(delayMs: number): number {
  if (!(delayMs >= 1)) return 0;
  const step = 10 ** Math.max(0, Math.floor(Math.log10(delayMs)) - 1);
  return Math.min(Math.round(delayMs / step) * step, MAX_TTL_MS);
}
