import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import { noServiceError, timeoutError, transportError } from '../../errors.ts';
import { PendingReplies } from '../shared/pending-replies.ts';
import type { RequestOptions, WireMessage } from '../transport.ts';
import { ignore } from './channels.ts';
import { operationError } from './errors.ts';
import { propertiesOf, toBuffer, toWire } from './messages.ts';
import { MAX_TTL_MS, REPLY_TO, RPC_EXCHANGE } from './names.ts';
import type { AmqpSession } from './session.ts';

/**
 * Outgoing requests: published `mandatory` to `chassis.rpc` with routing key `<service>.<action>` and an
 * `expiration` of the timeout; replies come by direct reply-to on the channel that sent the request, the
 * correlation id picking out the waiting request.
 */
export class RpcClient {
  readonly #session: AmqpSession;
  readonly #replies = new PendingReplies<WireMessage>();

  constructor(session: AmqpSession) {
    this.#session = session;
  }

  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    const session = this.#session;
    const doing = `Requesting ${service}.${action}`;
    const connection = session.connection;
    if (!connection || session.closing) {
      return Promise.reject(
        session.closing || session.closed ? session.closedError(doing) : session.disconnectedError(doing),
      );
    }
    const timeoutMs = Math.ceil(options.timeoutMs);
    if (!(timeoutMs > 0)) return Promise.reject(timeoutError({ service, action, timeoutMs: options.timeoutMs }));
    // The token is the correlation id: direct reply-to hands it back on the reply.
    return this.#replies.open(service, action, timeoutMs, (correlationId) =>
      session
        .rpcChannel(connection)
        .then((channel) => {
          if (!this.#replies.has(correlationId)) return;
          channel.publish(
            RPC_EXCHANGE,
            `${service}.${action}`,
            toBuffer(message.body),
            propertiesOf(message, {
              mandatory: true,
              replyTo: REPLY_TO,
              correlationId,
              expiration: String(Math.min(timeoutMs, MAX_TTL_MS)),
            }),
          );
        })
        // Made a ChassisError here, so an oversized header table stays BAD_MESSAGE rather than TRANSPORT.
        .catch((error: unknown) => {
          throw operationError(error, doing);
        }),
    );
  }

  /** Opens the channel requests go out on and replies come back on (direct reply-to needs both on one). */
  async openChannel(connection: ChannelModel): Promise<Channel> {
    const channel = await connection.createChannel();
    channel.on('error', ignore);
    channel.on('return', (message: Message) => this.#onReturned(message));
    await channel.consume(
      REPLY_TO,
      (message) => {
        // The broker cancelled the reply consumer: replies could no longer arrive, so open a fresh channel.
        if (message === null) void channel.close().catch(ignore);
        else this.#onReply(message);
      },
      { noAck: true },
    );
    return channel;
  }

  /** Fails every request still waiting, saying `why` its reply can no longer come. */
  failAll(why: string): void {
    this.#replies.failAll(({ service, action }) => transportError(`Request to ${service}.${action} failed: ${why}`));
  }

  #onReply(message: ConsumeMessage): void {
    this.#replies.resolve(String(message.properties.correlationId), toWire(message));
  }

  /** A mandatory request nothing was bound for: no instance ever declared the service's queue. */
  #onReturned(message: Message): void {
    const pending = this.#replies.take(String(message.properties.correlationId));
    if (!pending) return;
    pending.reject(
      noServiceError(
        pending,
        `RabbitMQ has no queue rpc-${pending.service} bound for ${message.fields.routingKey}; is the service started on some node?`,
      ),
    );
  }
}
