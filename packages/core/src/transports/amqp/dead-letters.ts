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
 * Runs `use` on a channel of its own against `dlq-<queue>`, or answers `missing` when that queue was never
 * declared (a 404 closes the channel, so the check comes first). Closing the channel afterwards returns
 * every message fetched and not acknowledged to its place.
 */
async function onDeadLetterQueue<T>(
  session: AmqpSession,
  queue: string,
  doing: string,
  missing: T,
  use: (channel: Channel, dlq: string) => Promise<T>,
): Promise<T> {
  const dlq = `dlq-${queue}`;
  const channel = await session.oneOffChannel(doing);
  try {
    try {
      await channel.checkQueue(dlq);
    } catch (error) {
      if (brokerCode(error) === 404) return missing;
      throw error;
    }
    return await use(channel, dlq);
  } catch (error) {
    throw operationError(error, doing);
  } finally {
    await channel.close().catch(ignore);
  }
}

/** Up to `limit` dead letters of `queue`, left in place: fetched unacknowledged, put back on close. */
export function readDeadLetters(session: AmqpSession, queue: string, limit: number): Promise<DeadLetter[]> {
  return onDeadLetterQueue(session, queue, `Reading the dead letters of ${queue}`, [], async (channel, dlq) => {
    const letters: DeadLetter[] = [];
    while (letters.length < limit) {
      const message = await channel.get(dlq, { noAck: false });
      if (message === false) break;
      letters.push(toDeadLetter(message, queue));
    }
    return letters;
  });
}

/** How many dead letters `dlq-<queue>` holds (0 when it was never declared). */
export function countDeadLetters(session: AmqpSession, queue: string): Promise<number> {
  return onDeadLetterQueue(
    session,
    queue,
    `Counting the dead letters of ${queue}`,
    0,
    async (channel, dlq) => (await channel.checkQueue(dlq)).messageCount,
  );
}

/**
 * Deletes every dead letter of `queue`, or those whose message id is one of `ids`: each is fetched, the
 * wanted ones acknowledged (gone) and the rest put back when the channel closes.
 */
export function removeDeadLetters(
  session: AmqpSession,
  queue: string,
  ids: readonly string[] | 'all',
): Promise<number> {
  return onDeadLetterQueue(session, queue, `Deleting the dead letters of ${queue}`, 0, async (channel, dlq) => {
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
  });
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
