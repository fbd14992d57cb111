import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { ChassisError } from '../../errors.ts';
import { messageOf } from '../shared/errors.ts';
import { toBuffer } from './messages.ts';

export const ignore = (): void => undefined;

/** The channel may be gone by the time a handler finishes; the broker then redelivers the message itself. */
export function settle(operation: () => void): void {
  try {
    operation();
  } catch {
    // Nothing to do: see above.
  }
}

/** One lazily opened channel per connection, reopened on demand after it closes. */
export class ChannelSlot<C extends Channel> {
  private current: Promise<C> | undefined;

  private readonly openOn: (connection: ChannelModel) => Promise<C>;
  private readonly onClosed: () => void;

  constructor(openOn: (connection: ChannelModel) => Promise<C>, onClosed: () => void) {
    this.openOn = openOn;
    this.onClosed = onClosed;
  }

  get(connection: ChannelModel): Promise<C> {
    if (!this.current) {
      const opening = this.openOn(connection).then((channel) => {
        channel.on('close', () => {
          if (this.current !== opening) return;
          this.current = undefined;
          this.onClosed();
        });
        return channel;
      });
      opening.catch(() => {
        if (this.current === opening) this.current = undefined;
      });
      this.current = opening;
    }
    return this.current;
  }

  /** Forgets the channel of a lost connection; its own close event has told (or will tell) the owner. */
  reset(): void {
    this.current = undefined;
  }
}

/** Publishes on a confirm channel; resolves once the broker has confirmed the message. */
export function publishConfirmed(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  body: Uint8Array,
  properties: Options.Publish,
): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      channel.publish(exchange, routingKey, toBuffer(body), properties, (error: unknown) => {
        if (error) {
          reject(
            new ChassisError('TRANSPORT', `RabbitMQ did not confirm the message (${messageOf(error)})`, {
              cause: error,
            }),
          );
        } else resolve();
      });
    } catch (error) {
      reject(error);
    }
  });
}
