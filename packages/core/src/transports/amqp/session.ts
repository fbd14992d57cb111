import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import type { ChassisError } from '../../errors.ts';
import type { AmqpSettings } from './options.ts';

/**
 * What the parts of the RabbitMQ transport (RPC, events, dead letters, broadcasts) share: the settings, the
 * current connection and its channels, and the errors that say why there is none. The transport is the one
 * implementation.
 */
export interface AmqpSession {
  readonly settings: AmqpSettings;
  /** The live connection, or undefined while there is none. */
  readonly connection: ChannelModel | undefined;
  /** Whether `close()` has begun, or ended. */
  readonly closing: boolean;
  readonly closed: boolean;
  /** The channel that publishes requests and broadcasts and receives replies, on `connection`. */
  rpcChannel(connection: ChannelModel): Promise<Channel>;
  /** The confirm channel, waiting up to `publishWaitMs` for a lost connection to come back. */
  confirmedChannel(doing: string): Promise<ConfirmChannel>;
  /** Declares a durable topic exchange on the confirm channel, once per channel. */
  declareExchange(channel: ConfirmChannel, exchange: string): Promise<void>;
  /** A channel of its own for one operation, whose errors are the operation's. */
  oneOffChannel(doing: string): Promise<Channel>;
  /** A consumer tag that names this node: `<nodeId>/<queue>/<n>`. */
  consumerTag(queue: string): string;
  closedError(doing: string): ChassisError;
  disconnectedError(doing: string): ChassisError;
}
