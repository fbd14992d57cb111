import type { Channel, ConsumeMessage } from 'amqplib';
import type { RpcHandler, RpcReply, ServeOptions } from '../transport.ts';
import { settle } from './channels.ts';
import type { ConsumerSpec } from './consumer.ts';
import { propertiesOf, toBuffer, toWire } from './messages.ts';
import { RPC_EXCHANGE } from './names.ts';
import type { AmqpSession } from './session.ts';

/**
 * Serving a service: its durable queue `rpc-<service>` (exclusive and auto-deleted when `options.exclusive`),
 * bound to `chassis.rpc` with `<service>.*`.
 */
export function rpcServer(
  session: AmqpSession,
  service: string,
  handler: RpcHandler,
  options: ServeOptions,
): ConsumerSpec {
  const queue = `rpc-${service}`;
  return {
    name: `queue ${queue}`,
    noAck: false,
    setup: async (channel, deliver) => {
      await channel.assertExchange(RPC_EXCHANGE, 'topic', { durable: true });
      // A name one node serves alone (its ops API) must not outlive it as a durable queue nobody reads.
      await channel.assertQueue(
        queue,
        options.exclusive ? { durable: false, exclusive: true, autoDelete: true } : { durable: true },
      );
      await channel.bindQueue(queue, RPC_EXCHANGE, `${service}.*`);
      await channel.prefetch(Math.max(1, options.concurrency));
      const { consumerTag } = await channel.consume(queue, deliver, { consumerTag: session.consumerTag(queue) });
      return [consumerTag];
    },
    handle: (channel, message) => answer(channel, message, handler),
  };
}

async function answer(channel: Channel, message: ConsumeMessage, handler: RpcHandler): Promise<void> {
  const key = message.fields.routingKey;
  const action = key.slice(key.lastIndexOf('.') + 1);
  let reply: RpcReply | undefined;
  try {
    reply = await handler({ action, message: toWire(message) });
  } catch {
    // Handlers encode their errors into the reply and never throw; should one throw anyway, the request is
    // dropped (the caller times out) rather than redelivered into the same failure forever.
  }
  const replyTo: unknown = message.properties.replyTo;
  try {
    if (reply && typeof replyTo === 'string' && replyTo !== '') {
      const correlationId: unknown = message.properties.correlationId;
      settle(() =>
        channel.publish(
          '',
          replyTo,
          toBuffer(reply.body),
          propertiesOf(reply, typeof correlationId === 'string' ? { correlationId } : {}),
        ),
      );
    }
  } finally {
    reply?.sent?.();
  }
  settle(() => channel.ack(message));
}
