import type { Channel, Message } from 'amqplib';
import { Header } from '../../envelope.ts';
import type { DeadLetter, WireMessage } from '../transport.ts';
import { ignore, publishConfirmed } from './channels.ts';
import { brokerCode, operationError } from './errors.ts';
import { headerText, propertiesOf, toWire } from './messages.ts';
import { DEAD_LETTER_EXCHANGE } from './names.ts';
import type { AmqpSession } from './session.ts';

const DEAD_REASON = 'x-chassis-dead-reason';
const DEAD_QUEUE = 'x-chassis-dead-queue';
const DEAD_AT = 'x-chassis-dead-at';
/** Keeps the dead-letter reason well inside the 64 KiB limit amqplib puts on a header table. */
const MAX_REASON_LENGTH = 4096;

/** The durable queue `dlq-<queue>`, bound to `chassis.dlx` with the queue's name. */
export async function declareDeadLetterQueue(channel: Channel, queue: string): Promise<void> {
  const dlq = `dlq-${queue}`;
  await channel.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true });
  await channel.assertQueue(dlq, { durable: true });
  await channel.bindQueue(dlq, DEAD_LETTER_EXCHANGE, queue);
}

/** Stores a message in `dlq-<queue>` with the reason, source queue and time in `x-chassis-dead-*` headers. */
export async function deadLetter(
  session: AmqpSession,
  queue: string,
  message: WireMessage,
  reason: string,
): Promise<void> {
  const doing = `Dead-lettering a message of ${queue}`;
  const channel = await session.confirmedChannel(doing);
  try {
    await declareDeadLetterQueue(channel, queue);
    await publishConfirmed(
      channel,
      DEAD_LETTER_EXCHANGE,
      queue,
      message.body,
      propertiesOf(message, {
        persistent: true,
        headers: {
          ...message.headers,
          [DEAD_REASON]: reason.slice(0, MAX_REASON_LENGTH),
          [DEAD_QUEUE]: queue,
          [DEAD_AT]: String(Date.now()),
        },
      }),
    );
  } catch (error) {
    throw operationError(error, doing);
  }
}

/**
 * Up to `limit` dead letters of `queue`, left in place: fetched unacknowledged on a channel of their own,
 * which closing puts back.
 */
export async function readDeadLetters(session: AmqpSession, queue: string, limit: number): Promise<DeadLetter[]> {
  const doing = `Reading the dead letters of ${queue}`;
  const dlq = `dlq-${queue}`;
  const channel = await session.oneOffChannel(doing);
  try {
    try {
      await channel.checkQueue(dlq);
    } catch (error) {
      if (brokerCode(error) === 404) return [];
      throw error;
    }
    const letters: DeadLetter[] = [];
    while (letters.length < limit) {
      const message = await channel.get(dlq, { noAck: false });
      if (message === false) break;
      letters.push(toDeadLetter(message, queue));
    }
    return letters;
  } catch (error) {
    throw operationError(error, doing);
  } finally {
    // Closing the channel returns every unacknowledged message to its place: reading removes nothing.
    await channel.close().catch(ignore);
  }
}

/** How many dead letters `dlq-<queue>` holds (0 when it was never declared). */
export async function countDeadLetters(session: AmqpSession, queue: string): Promise<number> {
  const doing = `Counting the dead letters of ${queue}`;
  const channel = await session.oneOffChannel(doing);
  try {
    return (await channel.checkQueue(`dlq-${queue}`)).messageCount;
  } catch (error) {
    if (brokerCode(error) === 404) return 0;
    throw operationError(error, doing);
  } finally {
    await channel.close().catch(ignore);
  }
}

/**
 * Deletes every dead letter of `queue`, or those whose message id is one of `ids`: each is fetched, the
 * wanted ones acknowledged (gone) and the rest put back when the channel closes.
 */
export async function removeDeadLetters(
  session: AmqpSession,
  queue: string,
  ids: readonly string[] | 'all',
): Promise<number> {
  const doing = `Deleting the dead letters of ${queue}`;
  const dlq = `dlq-${queue}`;
  const channel = await session.oneOffChannel(doing);
  try {
    try {
      await channel.checkQueue(dlq);
    } catch (error) {
      if (brokerCode(error) === 404) return 0;
      throw error;
    }
    if (ids === 'all') return (await channel.purgeQueue(dlq)).messageCount;
    const wanted = new Set(ids);
    let removed = 0;
    for (;;) {
      const message = await channel.get(dlq, { noAck: false });
      if (message === false) break;
      if (wanted.has(toWire(message).headers[Header.id] ?? '')) {
        channel.ack(message);
        removed++;
      }
    }
    return removed;
  } catch (error) {
    throw operationError(error, doing);
  } finally {
    await channel.close().catch(ignore);
  }
}

function toDeadLetter(message: Message, queue: string): DeadLetter {
  const raw: Record<string, unknown> = message.properties.headers ?? {};
  return {
    message: toWire(message),
    reason: headerText(raw[DEAD_REASON]) ?? 'unknown',
    queue: headerText(raw[DEAD_QUEUE]) ?? queue,
    at: Number(headerText(raw[DEAD_AT])) || 0,
  };
}
