import {
  connect as amqpConnect,
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type Message,
  type Options,
} from 'amqplib';
import { Header } from '../envelope.ts';
import { ChassisError, noServiceError, timeoutError, transportError } from '../errors.ts';
import { defaultNodeId } from '../node-id.ts';
import { backoffDelay } from './shared/backoff.ts';
import { messageOf } from './shared/errors.ts';
import { PendingReplies } from './shared/pending-replies.ts';
import { StatusListeners } from './shared/status.ts';
import { sleep } from './shared/timing.ts';
import {
  type Consumer,
  type DeadLetter,
  type Disposition,
  type EventBinding,
  type EventHandler,
  type RequestOptions,
  type RpcHandler,
  type ServeOptions,
  type SubscribeOptions,
  subscriptionName,
  type Transport,
  type TransportStatus,
  type WireMessage,
} from './transport.ts';

/**
 * The RabbitMQ transport. Topology (names close to nameko's, so the book's diagrams read the same):
 *
 * - RPC: durable topic exchange `chassis.rpc`; each service has a durable queue `rpc-<service>` bound with
 *   `<service>.*`. Requests are published `mandatory` with routing key `<service>.<action>`, so a request
 *   nothing is bound for comes back at once (`NO_SERVICE`), and with `expiration` = the timeout, so the
 *   broker drops a request nobody waits for any more. Replies use direct reply-to: one reply consumer per
 *   connection, pending requests matched by correlation id.
 * - Events: one durable topic exchange per source service, `<source>.events`, routing key = the event's
 *   short name. Each subscription `<service>.<handler>` has one quorum queue
 *   `evtq-<source>-<event>--<service>.<handler>` shared by every instance of the service. Publishing goes
 *   through a confirm channel and resolves only once the broker has confirmed the (persistent) message.
 * - Attempts: the `attempt` header counts the copies this transport republished for a retry, and the quorum
 *   queue's own `x-delivery-count` the deliveries of this copy that came back unsettled (the consumer died
 *   or lost its connection); the attempt is their sum. Only the broker's count survives a consumer killed
 *   mid-handler, which is why event queues are quorum queues.
 * - Classic event queues of earlier versions (`evt-…`, which cannot be redeclared as quorum queues) are
 *   drained: unbound from their exchange, so new events go to the quorum queue only, and consumed next to
 *   it until an operator deletes them (see docs/transports.md).
 * - Redelivery: RabbitMQ cannot nack with a delay, so a retry publishes a copy (attempt + 1, confirmed) to
 *   `retry-<queue>-<delayMs>`, a queue with that message TTL that dead-letters back to `<queue>` through
 *   the default exchange and expires once idle; only then is the original acked.
 * - Dead letters: direct exchange `chassis.dlx`, one durable queue `dlq-<queue>` per subscription or RPC
 *   queue, the reason, source queue and time in `x-chassis-dead-*` headers. They are read without being
 *   removed by fetching them unacknowledged and closing the channel, which puts them back in place.
 * - Broadcast: topic exchange `chassis.broadcast`, routing key = topic, one exclusive auto-delete queue
 *   per listener; nothing is stored.
 *
 * amqplib's own recovery reopens only the connection, so this transport owns reconnection: it retries
 * with full-jitter exponential backoff (`backoffDelay`), declares its topology again and restarts every consumer on the
 * new connection; the `Consumer` objects it handed out stay valid throughout.
 */

export interface AmqpTransportOptions {
  /** `amqp://user:password@host:5672/vhost` (or `amqps://`). */
  url: string;
  /** Names this node's connection in the RabbitMQ management UI and its consumer tags. Default `defaultNodeId()`. */
  nodeId?: string;
  /**
   * AMQP heartbeat, in ms (the protocol counts whole seconds: rounded, at least 1 s); a dead broker or
   * network is noticed within about twice this. Default 10000.
   */
  heartbeatIntervalMs?: number;
  /**
   * How long `publish`, `deadLetter` and `readDeadLetters` wait for a lost connection to come back before
   * failing with `TRANSPORT`. Requests never wait: they fail at once. Default 5000.
   */
  publishWaitMs?: number;
  /** The ceiling of the reconnect backoff. Default 5000. */
  maxReconnectDelayMs?: number;
}

export function amqpTransport(options: AmqpTransportOptions): Transport {
  return new AmqpTransport(options);
}

const RPC_EXCHANGE = 'chassis.rpc';
const BROADCAST_EXCHANGE = 'chassis.broadcast';
const DEAD_LETTER_EXCHANGE = 'chassis.dlx';
const REPLY_TO = 'amq.rabbitmq.reply-to';
const DEAD_REASON = 'x-chassis-dead-reason';
const DEAD_QUEUE = 'x-chassis-dead-queue';
const DEAD_AT = 'x-chassis-dead-at';
/** Headers the broker or this transport add, which are not part of the message the runtime sent. */
const FOREIGN_HEADER = /^x-(death$|delivery-count$|first-death-|last-death-|chassis-)/;
/** Set by a quorum queue on a redelivery: how many earlier deliveries of the message were returned. */
const DELIVERY_COUNT = 'x-delivery-count';
/** Event queues must count deliveries broker-side; quorum queues are always durable and shared. */
const EVENT_QUEUE_OPTIONS: Options.AssertQueue = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
const CONNECT_TIMEOUT_MS = 5000;
const FIRST_RECONNECT_DELAY_MS = 200;
/** How long a retry queue outlives its last use; it must outlive the TTL of the messages in it. */
const RETRY_QUEUE_IDLE_MS = 60_000;
/** Keeps the dead-letter reason well inside the 64 KiB limit amqplib puts on a header table. */
const MAX_REASON_LENGTH = 4096;
const MAX_TTL_MS = 2 ** 31 - 1;
const LOST_REPLY =
  'the connection to RabbitMQ was lost while waiting for the reply; the request may or may not have been handled';

const ignore = (): void => undefined;

type State = 'idle' | 'connecting' | 'closing' | TransportStatus;

interface ConsumerSpec {
  /** What it consumes, for error messages: e.g. `queue rpc-orders`. */
  readonly name: string;
  /** Deliveries are not acked (broadcast listeners): nothing can be handed back on stop. */
  readonly noAck: boolean;
  /** Declares what the consumer reads from and starts consuming on `channel`; returns the consumer tags. */
  setup(channel: Channel, deliver: (message: ConsumeMessage | null) => void): Promise<readonly string[]>;
  /** Handles one delivery and settles it on `channel`; never throws. */
  handle(channel: Channel, message: ConsumeMessage): Promise<void>;
}

interface Connected {
  readonly connection: ChannelModel;
  readonly generation: number;
}

class AmqpTransport implements Transport {
  readonly kind = 'amqp';
  private readonly url: string;
  /** The URL without its password, for messages. */
  private readonly displayUrl: string;
  private readonly nodeId: string;
  private readonly publishWaitMs: number;
  private readonly maxReconnectDelayMs: number;

  private state: State = 'idle';
  private connection: ChannelModel | undefined;
  /** Counts connections, so a consumer knows whether it already runs on the current one. */
  private generation = 0;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private reconnecting = false;
  private wakeReconnect: (() => void) | undefined;

  /** Requests waiting for their replies, by correlation id. */
  private readonly replies = new PendingReplies<WireMessage>();
  private readonly consumers = new Set<AmqpConsumer>();
  /** The public statuses and their listeners; `state` also tells idle, connecting and closing apart. */
  private readonly status = new StatusListeners('disconnected');
  private readonly connectionWaiters = new Set<(error?: ChassisError) => void>();
  /** Exchanges declared on the current confirm channel, so publishing declares each once. */
  private declaredExchanges = new Map<string, Promise<void>>();
  private consumerSequence = 0;

  /** Publishes requests and broadcasts and receives replies (direct reply-to needs both on one channel). */
  private readonly rpcChannel = new ChannelSlot<Channel>(
    (connection) => this.openRpcChannel(connection),
    () => this.failPending(LOST_REPLY),
  );
  /** Publishes everything that must be confirmed: events, retries, dead letters. */
  private readonly confirmChannel = new ChannelSlot<ConfirmChannel>(
    async (connection) => {
      const channel = await connection.createConfirmChannel();
      channel.on('error', ignore);
      return channel;
    },
    () => {
      this.declaredExchanges = new Map();
    },
  );

  constructor(options: AmqpTransportOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (error) {
      throw new ChassisError('CONFIG', `"${options.url}" is not a RabbitMQ URL; use amqp://user:password@host:5672`, {
        status: 500,
        cause: error,
      });
    }
    if (!parsed.searchParams.has('heartbeat')) {
      parsed.searchParams.set(
        'heartbeat',
        String(Math.max(1, Math.round((options.heartbeatIntervalMs ?? 10_000) / 1000))),
      );
    }
    this.url = parsed.toString();
    if (parsed.password) parsed.password = '***';
    this.displayUrl = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.publishWaitMs = options.publishWaitMs ?? 5000;
    this.maxReconnectDelayMs = options.maxReconnectDelayMs ?? 5000;
  }

  // ---- connection ----------------------------------------------------------------------------------

  async connect(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') throw this.closedError('Connecting');
    if (this.state !== 'idle' && this.state !== 'connecting') return;
    this.connecting ??= (async () => {
      this.state = 'connecting';
      try {
        await this.open();
      } catch (error) {
        if (this.state === 'connecting') this.state = 'idle';
        for (const waiter of [...this.connectionWaiters]) waiter();
        throw new ChassisError(
          'TRANSPORT',
          `Cannot connect to RabbitMQ at ${this.displayUrl}: ${messageOf(error)}; is it running, and are the URL and credentials right?`,
          { cause: error },
        );
      } finally {
        this.connecting = undefined;
      }
      if (this.connection) this.setStatus('connected');
    })();
    return this.connecting;
  }

  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.closing ??= (async () => {
      this.state = 'closing';
      this.wakeReconnect?.();
      this.failPending('the RabbitMQ transport was closed while the request waited for its reply');
      for (const waiter of [...this.connectionWaiters]) waiter(this.closedError('Waiting for the connection'));
      // Consumers drain first: a handler finishing now may still publish its retry copy or dead letter.
      await Promise.allSettled([...this.consumers].map((consumer) => consumer.stop()));
      const connection = this.connection;
      this.forgetConnection();
      if (connection) await connection.close().catch(ignore);
      this.setStatus('closed');
    })();
    return this.closing;
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.status.add(listener);
  }

  /** Opens a connection, declares the shared topology and (re)starts every consumer on it. */
  private async open(): Promise<void> {
    const connection = await amqpConnect(this.url, {
      timeout: CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: `chassis ${this.nodeId}` },
    });
    // The 'close' event carries the same error; without a listener 'error' would be thrown.
    connection.on('error', ignore);
    connection.on('close', () => this.onConnectionLost(connection));
    if (this.state === 'closing' || this.state === 'closed') {
      await connection.close().catch(ignore);
      throw this.closedError('Connecting');
    }
    this.connection = connection;
    this.generation++;
    const generation = this.generation;
    try {
      const channel = await this.confirmChannel.get(connection);
      await channel.assertExchange(RPC_EXCHANGE, 'topic', { durable: true });
      await channel.assertExchange(BROADCAST_EXCHANGE, 'topic', { durable: true });
      await channel.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true });
      await this.rpcChannel.get(connection);
    } catch (error) {
      if (this.connection === connection) this.forgetConnection();
      await connection.close().catch(ignore);
      throw error;
    }
    for (const waiter of [...this.connectionWaiters]) waiter();
    // A consumer that cannot start on its own channel (say its queue was redeclared with other arguments)
    // keeps retrying by itself; it must not keep the rest of the node from reconnecting.
    await Promise.all(
      [...this.consumers].map((consumer) =>
        consumer.start(connection, generation).catch(() => consumer.scheduleRestart()),
      ),
    );
  }

  private onConnectionLost(connection: ChannelModel): void {
    if (connection !== this.connection) return;
    this.forgetConnection();
    // Usually the request channel's own close already failed them, just before this.
    this.failPending(LOST_REPLY);
    if (this.state === 'closing' || this.state === 'closed') return;
    this.setStatus('disconnected');
    void this.reconnect();
  }

  private forgetConnection(): void {
    this.connection = undefined;
    this.rpcChannel.reset();
    this.confirmChannel.reset();
    this.declaredExchanges = new Map();
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    try {
      for (let attempt = 1; !this.isShuttingDown(); attempt++) {
        this.setStatus('reconnecting');
        await this.pause(
          backoffDelay(attempt, { initialDelayMs: FIRST_RECONNECT_DELAY_MS, maxDelayMs: this.maxReconnectDelayMs }),
        );
        if (this.isShuttingDown()) return;
        try {
          await this.open();
        } catch {
          continue;
        }
        // The new connection may already have dropped while the consumers restarted: then keep trying.
        if (this.connection) {
          this.setStatus('connected');
          return;
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  /** A method rather than an inline test, so the compiler does not carry a narrowed state across awaits. */
  private isShuttingDown(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeReconnect = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeReconnect = done;
    });
  }

  /** The live connection, waiting up to `waitMs` for it while reconnecting. */
  private async whenConnected(waitMs: number, doing: string): Promise<ChannelModel> {
    if (this.connection) return this.connection;
    if (this.state === 'closing' || this.state === 'closed') throw this.closedError(doing);
    if (this.state === 'idle') {
      throw new ChassisError(
        'TRANSPORT',
        `${doing} failed: the RabbitMQ transport is not connected; call connect() first`,
      );
    }
    if (waitMs <= 0) throw this.disconnectedError(doing);
    return new Promise<ChannelModel>((resolve, reject) => {
      const waiter = (error?: ChassisError) => {
        clearTimeout(timer);
        this.connectionWaiters.delete(waiter);
        if (error) reject(error);
        else if (this.connection) resolve(this.connection);
        else reject(this.disconnectedError(doing));
      };
      const timer = setTimeout(
        () =>
          waiter(
            new ChassisError(
              'TRANSPORT',
              `${doing} failed: no connection to RabbitMQ at ${this.displayUrl} for ${waitMs} ms; try again later`,
            ),
          ),
        waitMs,
      );
      this.connectionWaiters.add(waiter);
    });
  }

  /** For consumers restarting themselves: the connection they should run on, if there is one. */
  current(): Connected | undefined {
    return this.connection ? { connection: this.connection, generation: this.generation } : undefined;
  }

  forget(consumer: AmqpConsumer): void {
    this.consumers.delete(consumer);
  }

  private setStatus(status: TransportStatus): void {
    if (this.state === status) return;
    this.state = status;
    // A listener's bug must not break reconnection: the status helper swallows what a listener throws.
    this.status.set(status);
  }

  private closedError(doing: string): ChassisError {
    return new ChassisError('TRANSPORT', `${doing} failed: the RabbitMQ transport is closed`);
  }

  private disconnectedError(doing: string): ChassisError {
    return new ChassisError(
      'TRANSPORT',
      `${doing} failed: not connected to RabbitMQ at ${this.displayUrl} (${this.state}); try again shortly`,
    );
  }

  // ---- RPC -----------------------------------------------------------------------------------------

  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    const doing = `Requesting ${service}.${action}`;
    const connection = this.connection;
    if (!connection || this.state === 'closing') {
      return Promise.reject(
        this.state === 'closing' || this.state === 'closed' ? this.closedError(doing) : this.disconnectedError(doing),
      );
    }
    const timeoutMs = Math.ceil(options.timeoutMs);
    if (!(timeoutMs > 0)) return Promise.reject(timeoutError({ service, action, timeoutMs: options.timeoutMs }));
    // The token is the correlation id: direct reply-to hands it back on the reply.
    return this.replies.open(service, action, timeoutMs, (correlationId) =>
      this.rpcChannel
        .get(connection)
        .then((channel) => {
          if (!this.replies.has(correlationId)) return;
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

  async serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer> {
    const queue = `rpc-${service}`;
    return this.addConsumer({
      name: `queue ${queue}`,
      noAck: false,
      setup: async (channel, deliver) => {
        await channel.assertExchange(RPC_EXCHANGE, 'topic', { durable: true });
        await channel.assertQueue(queue, { durable: true });
        await channel.bindQueue(queue, RPC_EXCHANGE, `${service}.*`);
        await channel.prefetch(Math.max(1, options.concurrency));
        const { consumerTag } = await channel.consume(queue, deliver, { consumerTag: this.consumerTag(queue) });
        return [consumerTag];
      },
      handle: (channel, message) => answer(channel, message, handler),
    });
  }

  private async openRpcChannel(connection: ChannelModel): Promise<Channel> {
    const channel = await connection.createChannel();
    channel.on('error', ignore);
    channel.on('return', (message: Message) => this.onReturned(message));
    await channel.consume(
      REPLY_TO,
      (message) => {
        // The broker cancelled the reply consumer: replies could no longer arrive, so open a fresh channel.
        if (message === null) void channel.close().catch(ignore);
        else this.onReply(message);
      },
      { noAck: true },
    );
    return channel;
  }

  private onReply(message: ConsumeMessage): void {
    this.replies.resolve(String(message.properties.correlationId), toWire(message));
  }

  /** A mandatory request nothing was bound for: no instance ever declared the service's queue. */
  private onReturned(message: Message): void {
    const pending = this.replies.take(String(message.properties.correlationId));
    if (!pending) return;
    pending.reject(
      noServiceError(
        pending,
        `RabbitMQ has no queue rpc-${pending.service} bound for ${message.fields.routingKey}; is the service started on some node?`,
      ),
    );
  }

  private failPending(why: string): void {
    this.replies.failAll(({ service, action }) => transportError(`Request to ${service}.${action} failed: ${why}`));
  }

  // ---- events --------------------------------------------------------------------------------------

  async publish(event: string, message: WireMessage): Promise<void> {
    const { source, name } = splitEvent(event);
    const doing = `Publishing ${event}`;
    const exchange = `${source}.events`;
    const channel = await this.confirmedChannel(doing);
    try {
      await this.declareExchange(channel, exchange);
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

  async subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer> {
    const { source, name } = splitEvent(binding.event);
    const subscription = subscriptionName(binding);
    const exchange = `${source}.events`;
    const queue = eventQueueName(binding);
    const legacy = legacyEventQueueName(binding);
    return this.addConsumer({
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
        const draining = (await this.queueDepth(legacy, 'Looking for a classic event queue to drain')) !== undefined;
        if (draining) await channel.unbindQueue(legacy, exchange, name);
        await channel.prefetch(Math.max(1, options.prefetch));
        const tags = [(await channel.consume(queue, deliver, { consumerTag: this.consumerTag(queue) })).consumerTag];
        if (draining) {
          tags.push((await channel.consume(legacy, deliver, { consumerTag: this.consumerTag(legacy) })).consumerTag);
        }
        return tags;
      },
      handle: (channel, message) => this.deliverEvent(channel, message, queue, subscription, handler),
    });
  }

  private async deliverEvent(
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
      if (disposition.kind === 'retry') await this.republish(queue, wire, attempt + 1, disposition.delayMs);
      else if (disposition.kind === 'dead') await this.deadLetter(subscription, wire, disposition.reason);
      settle(() => channel.ack(message));
    } catch {
      // The copy could not be stored, so hand the original back rather than lose it. The pause keeps a
      // broker that keeps refusing from turning this into a hot loop.
      await sleep(1000);
      settle(() => channel.nack(message, false, true));
    }
  }

  /** Stores a copy of an event for redelivery after `delayMs`, confirmed before the original is acked. */
  private async republish(queue: string, message: WireMessage, attempt: number, delayMs: number): Promise<void> {
    const channel = await this.confirmedChannel(`Scheduling a redelivery on ${queue}`);
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

  // ---- dead letters --------------------------------------------------------------------------------

  async deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    const doing = `Dead-lettering a message of ${queue}`;
    const channel = await this.confirmedChannel(doing);
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

  async backlog(binding: EventBinding): Promise<number> {
    const queue = eventQueueName(binding);
    const doing = `Reading the backlog of ${queue}`;
    // A classic queue still being drained holds part of it.
    const [current, legacy] = await Promise.all([
      this.queueDepth(queue, doing),
      this.queueDepth(legacyEventQueueName(binding), doing),
    ]);
    return (current ?? 0) + (legacy ?? 0);
  }

  /** The ready messages of a queue (RabbitMQ does not count delivered, unacknowledged ones), or undefined when there is no such queue. */
  private async queueDepth(queue: string, doing: string): Promise<number | undefined> {
    // Its own channel: checking a queue that does not exist closes the channel it is checked on.
    const channel = await this.oneOffChannel(doing);
    try {
      return (await channel.checkQueue(queue)).messageCount;
    } catch (error) {
      if (brokerCode(error) === 404) return undefined;
      throw operationError(error, doing);
    } finally {
      await channel.close().catch(ignore);
    }
  }

  /** A channel of its own for one operation, whose errors are the operation's. */
  private async oneOffChannel(doing: string): Promise<Channel> {
    const connection = await this.whenConnected(this.publishWaitMs, doing);
    try {
      const channel = await connection.createChannel();
      channel.on('error', ignore);
      return channel;
    } catch (error) {
      throw operationError(error, doing);
    }
  }

  async readDeadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    const doing = `Reading the dead letters of ${queue}`;
    const dlq = `dlq-${queue}`;
    const channel = await this.oneOffChannel(doing);
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

  // ---- broadcast -----------------------------------------------------------------------------------

  async broadcast(topic: string, message: WireMessage): Promise<void> {
    const doing = `Broadcasting ${topic}`;
    const connection = this.connection;
    if (!connection) throw this.state === 'closed' ? this.closedError(doing) : this.disconnectedError(doing);
    try {
      const channel = await this.rpcChannel.get(connection);
      channel.publish(BROADCAST_EXCHANGE, topic, toBuffer(message.body), propertiesOf(message));
    } catch (error) {
      throw operationError(error, doing);
    }
  }

  async listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer> {
    return this.addConsumer({
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
    });
  }

  // ---- shared plumbing -----------------------------------------------------------------------------

  private async addConsumer(spec: ConsumerSpec): Promise<Consumer> {
    const doing = `Consuming from ${spec.name}`;
    if (this.state === 'closing' || this.state === 'closed') throw this.closedError(doing);
    if (this.state === 'idle') {
      throw new ChassisError(
        'TRANSPORT',
        `${doing} failed: the RabbitMQ transport is not connected; call connect() first`,
      );
    }
    const consumer = new AmqpConsumer(this, spec);
    this.consumers.add(consumer);
    const connection = this.connection;
    // While reconnecting it starts with the next connection.
    if (!connection) return consumer;
    try {
      await consumer.start(connection, this.generation);
    } catch (error) {
      if (this.connection !== connection) return consumer;
      this.consumers.delete(consumer);
      throw new ChassisError('TRANSPORT', `${doing} failed: ${messageOf(error)}`, { cause: error });
    }
    return consumer;
  }

  private async confirmedChannel(doing: string): Promise<ConfirmChannel> {
    const connection = await this.whenConnected(this.publishWaitMs, doing);
    try {
      return await this.confirmChannel.get(connection);
    } catch (error) {
      throw operationError(error, doing);
    }
  }

  private declareExchange(channel: ConfirmChannel, exchange: string): Promise<void> {
    let declared = this.declaredExchanges.get(exchange);
    if (!declared) {
      const declaring = channel.assertExchange(exchange, 'topic', { durable: true }).then(ignore);
      declaring.catch(() => {
        if (this.declaredExchanges.get(exchange) === declaring) this.declaredExchanges.delete(exchange);
      });
      this.declaredExchanges.set(exchange, declaring);
      declared = declaring;
    }
    return declared;
  }

  private consumerTag(queue: string): string {
    return `${this.nodeId}/${queue}/${++this.consumerSequence}`;
  }
}

/**
 * A consumer that survives reconnects: each connection gets a fresh channel on which it declares what it
 * reads from and consumes again. One channel per consumer keeps prefetch per consumer and confines a
 * channel error (e.g. a queue redeclared with other arguments) to the consumer that caused it.
 */
class AmqpConsumer implements Consumer {
  private channel: Channel | undefined;
  private consumerTags: readonly string[] = [];
  /** The connection generation it runs on, or 0. */
  private generation = 0;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartAttempt = 0;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly owner: AmqpTransport,
    private readonly spec: ConsumerSpec,
  ) {}

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

/** One lazily opened channel per connection, reopened on demand after it closes. */
class ChannelSlot<C extends Channel> {
  private current: Promise<C> | undefined;

  constructor(
    private readonly openOn: (connection: ChannelModel) => Promise<C>,
    private readonly onClosed: () => void,
  ) {}

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

async function answer(channel: Channel, message: ConsumeMessage, handler: RpcHandler): Promise<void> {
  const key = message.fields.routingKey;
  const action = key.slice(key.lastIndexOf('.') + 1);
  let reply: WireMessage | undefined;
  try {
    reply = await handler({ action, message: toWire(message) });
  } catch {
    // Handlers encode their errors into the reply and never throw; should one throw anyway, the request is
    // dropped (the caller times out) rather than redelivered into the same failure forever.
  }
  const replyTo: unknown = message.properties.replyTo;
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
  settle(() => channel.ack(message));
}

async function declareDeadLetterQueue(channel: Channel, queue: string): Promise<void> {
  const dlq = `dlq-${queue}`;
  await channel.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true });
  await channel.assertQueue(dlq, { durable: true });
  await channel.bindQueue(dlq, DEAD_LETTER_EXCHANGE, queue);
}

function publishConfirmed(
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

/** The channel may be gone by the time a handler finishes; the broker then redelivers the message itself. */
function settle(operation: () => void): void {
  try {
    operation();
  } catch {
    // Nothing to do: see above.
  }
}

function splitEvent(event: string): { source: string; name: string } {
  const dot = event.indexOf('.');
  if (dot <= 0 || dot === event.length - 1) {
    throw new ChassisError(
      'VALIDATION',
      `Event name "${event}" must be "<source service>.<event>", e.g. "orders.order_created"`,
    );
  }
  return { source: event.slice(0, dot), name: event.slice(dot + 1) };
}

function propertiesOf(message: WireMessage, extra: Options.Publish = {}): Options.Publish {
  const properties: Options.Publish = { headers: { ...message.headers } };
  const contentType = message.headers[Header.contentType];
  if (contentType) properties.contentType = contentType;
  const id = message.headers[Header.id];
  if (id) properties.messageId = id;
  return { ...properties, ...extra };
}

function toWire(message: Message): WireMessage {
  return { headers: readHeaders(message), body: message.content };
}

/**
 * AMQP headers back to the string map the runtime reads. Messages published by other clients may carry
 * none, or values of other types: numbers and bytes become strings, tables and arrays are left out.
 */
function readHeaders(message: Message): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(message.properties.headers ?? {})) {
    if (FOREIGN_HEADER.test(key)) continue;
    const text = headerText(value);
    if (text !== undefined) headers[key] = text;
  }
  const contentType: unknown = message.properties.contentType;
  if (headers[Header.contentType] === undefined && typeof contentType === 'string') {
    headers[Header.contentType] = contentType;
  }
  return headers;
}

function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
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

/** The deliveries of this copy that came back unsettled; 0 from a classic queue, which does not count. */
function deliveryCountOf(message: Message): number {
  const raw: Record<string, unknown> = message.properties.headers ?? {};
  const count = Number(headerText(raw[DELIVERY_COUNT]));
  return Number.isInteger(count) && count > 0 ? count : 0;
}

function attemptOf(headers: Record<string, string>): number {
  const attempt = Number.parseInt(headers[Header.attempt] ?? '', 10);
  return Number.isFinite(attempt) && attempt >= 1 ? attempt : 1;
}

/**
 * Rounds a redelivery delay to two significant digits. The runtime jitters its delays, and each distinct
 * delay needs its own retry queue; rounding keeps them to a few dozen per subscription at most (±5%).
 */
function retryDelayBucket(delayMs: number): number {
  if (!(delayMs >= 1)) return 0;
  const step = 10 ** Math.max(0, Math.floor(Math.log10(delayMs)) - 1);
  return Math.min(Math.round(delayMs / step) * step, MAX_TTL_MS);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** What failed while `doing` something, as a `ChassisError`; one that already is passes through unchanged. */
function operationError(error: unknown, doing: string): ChassisError {
  if (error instanceof ChassisError) return error;
  // amqplib refuses header tables over 64 KiB: the message is at fault, and retrying will not help.
  if (error instanceof RangeError) {
    return new ChassisError('BAD_MESSAGE', `${doing} failed: ${error.message}`, { cause: error });
  }
  return new ChassisError('TRANSPORT', `${doing} failed: ${messageOf(error)}`, { cause: error });
}

/** The AMQP reply code of a channel or connection error, e.g. 404 for a missing queue. */
function brokerCode(error: unknown): number | undefined {
  const code: unknown = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}

/** The quorum queue of an event subscription: `evtq-<source>-<event>--<service>.<handler>`. */
function eventQueueName(binding: EventBinding): string {
  const { source, name } = splitEvent(binding.event);
  return `evtq-${source}-${name}--${subscriptionName(binding)}`;
}

/** The classic queue earlier versions declared for the subscription, drained if it still exists. */
function legacyEventQueueName(binding: EventBinding): string {
  const { source, name } = splitEvent(binding.event);
  return `evt-${source}-${name}--${subscriptionName(binding)}`;
}
