import type { WireMessage } from '../transport.ts';
import type { ConsumerSpec } from './consumer.ts';
import { operationError } from './errors.ts';
import { propertiesOf, toBuffer, toWire } from './messages.ts';
import { BROADCAST_EXCHANGE } from './names.ts';
import type { AmqpSession } from './session.ts';

/** Publishes to `chassis.broadcast` on the request channel, unconfirmed: broadcasts store nothing. */
export async function broadcast(session: AmqpSession, topic: string, message: WireMessage): Promise<void> {
  const doing = `Broadcasting ${topic}`;
  const connection = session.connection;
  if (!connection) throw session.closed ? session.closedError(doing) : session.disconnectedError(doing);
  try {
    const channel = await session.rpcChannel(connection);
    channel.publish(BROADCAST_EXCHANGE, topic, toBuffer(message.body), propertiesOf(message));
  } catch (error) {
    throw operationError(error, doing);
  }
}

/** A listener: an exclusive auto-delete queue of its own, bound with the topic; deliveries are not acked. */
export function broadcastListener(topic: string, handler: (message: WireMessage) => void): ConsumerSpec {
  return {
    name: `broadcast topic ${topic}`,
    noAck: true,
    setup: async (channel, deliver) => {
      await channel.assertExchange(BROADCAST_EXCHANGE, 'topic', { durable: true });
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
      await channel.bindQueue(queue, BROADCAST_EXCHANGE, topic);
      const { consumerTag } = await channel.consume(queue, deliver, { noAck: true });
      return [consumerTag];
    },
    handle: async (_channel, message) => {
      try {
        handler(toWire(message));
      } catch {
        // Broadcasts are fire-and-forget: a listener's failure concerns nobody else.
      }
    },
  };
}
