import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { backoffDelay } from '../shared/backoff.ts';
import type { Consumer } from '../transport.ts';
import { ignore, settle } from './channels.ts';

/** What a consumer reads and how it handles a delivery; the consumer does the rest. */
export interface ConsumerSpec {
  /** What it consumes, for error messages: e.g. `queue rpc-orders`. */
  readonly name: string;
  /** Deliveries are not acked (broadcast listeners): nothing can be handed back on stop. */
  readonly noAck: boolean;
  /** Declares what the consumer reads from and starts consuming on `channel`; returns the consumer tags. */
  setup(channel: Channel, deliver: (message: ConsumeMessage | null) => void): Promise<readonly string[]>;
  /** Handles one delivery and settles it on `channel`; never throws. */
  handle(channel: Channel, message: ConsumeMessage): Promise<void>;
}

/** A connection and its generation, which counts connections. */
export interface Connected {
  readonly connection: ChannelModel;
  readonly generation: number;
}

/** What a consumer needs of its transport. */
export interface ConsumerOwner {
  /** The connection a restarting consumer should run on, if there is one. */
  current(): Connected | undefined;
  /** Stops restarting the consumer with the transport's reconnects. */
  forget(consumer: AmqpConsumer): void;
}

/**
 * A consumer that survives reconnects: each connection gets a fresh channel on which it declares what it
 * reads from and consumes again. One channel per consumer keeps prefetch per consumer and confines a
 * channel error (e.g. a queue redeclared with other arguments) to the consumer that caused it.
 */
export class AmqpConsumer implements Consumer {
  private channel: Channel | undefined;
  private consumerTags: readonly string[] = [];
  /** The connection generation it runs on, or 0. */
  private generation = 0;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartAttempt = 0;
  private readonly inFlight = new Set<Promise<void>>();

  private readonly owner: ConsumerOwner;
  private readonly spec: ConsumerSpec;

  constructor(owner: ConsumerOwner, spec: ConsumerSpec) {
    this.owner = owner;
    this.spec = spec;
  }

  /** Starts consuming on `connection` unless it already does. */
  start(connection: ChannelModel, generation: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.generation === generation && this.starting) return this.starting;
    this.generation = generation;
    this.starting = this.open(connection, generation);
    return this.starting;
  }

  private async open(connection: ChannelModel, generation: number): Promise<void> {
    let channel: Channel | undefined;
    try {
      channel = await connection.createChannel();
      const opened = channel;
      opened.on('error', ignore);
      opened.on('close', () => this.onChannelClosed(opened));
      this.consumerTags = await this.spec.setup(opened, (message) => this.onDelivery(opened, message));
      this.channel = opened;
      this.restartAttempt = 0;
    } catch (error) {
      if (this.generation === generation) this.generation = 0;
      await channel?.close().catch(ignore);
      throw error;
    }
  }

  scheduleRestart(): void {
    if (this.restartTimer || this.stopping) return;
    this.restartAttempt++;
    this.restartTimer = setTimeout(
      () => {
        this.restartTimer = undefined;
        const current = this.owner.current();
        // Without a connection the transport's reconnect restarts it.
        if (!current || this.stopping) return;
        this.start(current.connection, current.generation).catch(() => this.scheduleRestart());
      },
      backoffDelay(this.restartAttempt, { initialDelayMs: 500, maxDelayMs: 10_000 }),
    );
    this.restartTimer.unref();
  }

  private onChannelClosed(channel: Channel): void {
    if (channel !== this.channel) return;
    this.channel = undefined;
    this.consumerTags = [];
    this.generation = 0;
    // When the whole connection went, the transport restarts it on the next one; this covers a channel
    // closed on its own, and finds nothing to do when the reconnect got there first.
    this.scheduleRestart();
  }

  private onDelivery(channel: Channel, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer (its queue was deleted): set everything up again.
      if (!this.stopping) void channel.close().catch(ignore);
      return;
    }
    if (this.stopping) {
      // Delivered but not started: give it back at once so another instance gets it.
      if (!this.spec.noAck) settle(() => channel.nack(message, false, true));
      return;
    }
    const work: Promise<void> = this.spec
      .handle(channel, message)
      .catch(ignore)
      .finally(() => this.inFlight.delete(work));
    this.inFlight.add(work);
  }

  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    this.owner.forget(this);
    clearTimeout(this.restartTimer);
    await this.starting?.catch(ignore);
    const channel = this.channel;
    const consumerTags = this.consumerTags;
    if (channel) await Promise.all(consumerTags.map((tag) => channel.cancel(tag).catch(ignore)));
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.channel = undefined;
    // Anything still unacknowledged goes back to the queue with the channel.
    if (channel) await channel.close().catch(ignore);
  }
}
