import { connect as amqpConnect, type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { ChassisError } from '../../errors.ts';
import { readTlsFiles, tlsFailure } from '../../tls.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { messageOf } from '../shared/errors.ts';
import { StatusListeners } from '../shared/status.ts';
import type {
  Consumer,
  DeadLetter,
  EventBinding,
  EventHandler,
  RequestOptions,
  RpcHandler,
  ServeOptions,
  SubscribeOptions,
  Transport,
  TransportStatus,
  WireMessage,
} from '../transport.ts';
import { broadcast, broadcastListener } from './broadcast.ts';
import { ChannelSlot, ignore } from './channels.ts';
import { AmqpConsumer, type Connected, type ConsumerOwner, type ConsumerSpec } from './consumer.ts';
import { countDeadLetters, deadLetter, readDeadLetters, removeDeadLetters } from './dead-letters.ts';
import { operationError } from './errors.ts';
import { backlog, eventSubscriber, publishEvent } from './events.ts';
import { BROADCAST_EXCHANGE, DEAD_LETTER_EXCHANGE, RPC_EXCHANGE } from './names.ts';
import { type AmqpSettings, type AmqpTransportOptions, amqpSettings } from './options.ts';
import { RpcClient } from './rpc-client.ts';
import { rpcServer } from './rpc-server.ts';
import type { AmqpSession } from './session.ts';

const CONNECT_TIMEOUT_MS = 5000;
const FIRST_RECONNECT_DELAY_MS = 200;
const LOST_REPLY =
  'the connection to RabbitMQ was lost while waiting for the reply; the request may or may not have been handled';

type State = 'idle' | 'connecting' | 'closing' | TransportStatus;

export function amqpTransport(options: AmqpTransportOptions): Transport {
  return new AmqpTransport(options);
}

/**
 * The connection's life (connect, status, reconnects, close), the channels every part shares, and the
 * `Transport` API, each operation handed to the part that owns it: RPC client and server, events, dead
 * letters, broadcasts.
 *
 * amqplib's own recovery reopens only the connection, so this transport owns reconnection: it retries
 * with full-jitter exponential backoff (`backoffDelay`), declares its topology again and restarts every
 * consumer on the new connection; the `Consumer` objects it handed out stay valid throughout.
 */
class AmqpTransport implements Transport, AmqpSession, ConsumerOwner {
  readonly kind = 'amqp';
  readonly settings: AmqpSettings;

  /** The public statuses and their listeners; `#state` also tells idle, connecting and closing apart. */
  readonly #status = new StatusListeners('disconnected');
  #state: State = 'idle';
  #connection: ChannelModel | undefined;
  /** Counts connections, so a consumer knows whether it already runs on the current one. */
  #generation = 0;
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #reconnecting = false;
  #wakeReconnect: (() => void) | undefined;

  readonly #rpc: RpcClient;
  readonly #consumers = new Set<AmqpConsumer>();
  readonly #connectionWaiters = new Set<(error?: ChassisError) => void>();
  /** Exchanges declared on the current confirm channel, so publishing declares each once. */
  #declaredExchanges = new Map<string, Promise<void>>();
  #consumerSequence = 0;

  /** Publishes requests and broadcasts and receives replies (direct reply-to needs both on one channel). */
  readonly #rpcChannel: ChannelSlot<Channel>;
  /** Publishes everything that must be confirmed: events, retries, dead letters. */
  readonly #confirmChannel = new ChannelSlot<ConfirmChannel>(
    async (connection) => {
      const channel = await connection.createConfirmChannel();
      channel.on('error', ignore);
      return channel;
    },
    () => {
      this.#declaredExchanges = new Map();
    },
  );

  constructor(options: AmqpTransportOptions) {
    this.settings = amqpSettings(options);
    this.#rpc = new RpcClient(this);
    this.#rpcChannel = new ChannelSlot<Channel>(
      (connection) => this.#rpc.openChannel(connection),
      () => this.#rpc.failAll(LOST_REPLY),
    );
  }

  // ---- connection ----------------------------------------------------------------------------------

  async connect(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') throw this.closedError('Connecting');
    if (this.#state !== 'idle' && this.#state !== 'connecting') return;
    this.#connecting ??= (async () => {
      this.#state = 'connecting';
      try {
        await this.#open();
      } catch (error) {
        if (this.#state === 'connecting') this.#state = 'idle';
        for (const waiter of [...this.#connectionWaiters]) waiter();
        if (error instanceof ChassisError && error.code === 'CONFIG') throw error;
        const tls = this.settings.tls;
        const address = this.settings.displayUrl.replace(/^amqps?:\/\//, '').replace(/\/.*$/, '');
        const tlsError = tls && tlsFailure(error, { server: 'RabbitMQ', address, files: tls });
        if (tlsError) throw tlsError;
        throw new ChassisError(
          'TRANSPORT',
          `Cannot connect to RabbitMQ at ${this.settings.displayUrl}: ${messageOf(error)}; is it running, and are the URL and credentials right?`,
          { cause: error },
        );
      } finally {
        this.#connecting = undefined;
      }
      if (this.#connection) this.#setStatus('connected');
    })();
    return this.#connecting;
  }

  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    this.#closing ??= (async () => {
      this.#state = 'closing';
      this.#wakeReconnect?.();
      this.#rpc.failAll('the RabbitMQ transport was closed while the request waited for its reply');
      for (const waiter of [...this.#connectionWaiters]) waiter(this.closedError('Waiting for the connection'));
      // Consumers drain first: a handler finishing now may still publish its retry copy or dead letter.
      await Promise.allSettled([...this.#consumers].map((consumer) => consumer.stop()));
      const connection = this.#connection;
      this.#forgetConnection();
      if (connection) await connection.close().catch(ignore);
      this.#setStatus('closed');
    })();
    return this.#closing;
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.#status.add(listener);
  }

  get connection(): ChannelModel | undefined {
    return this.#connection;
  }

  get closing(): boolean {
    return this.#state === 'closing';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Opens a connection, declares the shared topology and (re)starts every consumer on it. */
  async #open(): Promise<void> {
    // Read at every connection: a renewed certificate is used by the next reconnect, without a restart.
    const tls = this.settings.tls ? readTlsFiles(this.settings.tls) : {};
    const connection = await amqpConnect(this.settings.url, {
      ...tls,
      timeout: CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: `chassis ${this.settings.nodeId}` },
    });
    // The 'close' event carries the same error; without a listener 'error' would be thrown.
    connection.on('error', ignore);
    connection.on('close', () => this.#onConnectionLost(connection));
    if (this.#state === 'closing' || this.#state === 'closed') {
      await connection.close().catch(ignore);
      throw this.closedError('Connecting');
    }
    this.#connection = connection;
    this.#generation++;
    const generation = this.#generation;
    try {
      const channel = await this.#confirmChannel.get(connection);
      await channel.assertExchange(RPC_EXCHANGE, 'topic', { durable: true });
      await channel.assertExchange(BROADCAST_EXCHANGE, 'topic', { durable: true });
      await channel.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true });
      await this.#rpcChannel.get(connection);
    } catch (error) {
      if (this.#connection === connection) this.#forgetConnection();
      await connection.close().catch(ignore);
      throw error;
    }
    for (const waiter of [...this.#connectionWaiters]) waiter();
    // A consumer that cannot start on its own channel (say its queue was redeclared with other arguments)
    // keeps retrying by itself; it must not keep the rest of the node from reconnecting.
    await Promise.all(
      [...this.#consumers].map((consumer) =>
        consumer.start(connection, generation).catch(() => consumer.scheduleRestart()),
      ),
    );
  }

  #onConnectionLost(connection: ChannelModel): void {
    if (connection !== this.#connection) return;
    this.#forgetConnection();
    // Usually the request channel's own close already failed them, just before this.
    this.#rpc.failAll(LOST_REPLY);
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#setStatus('disconnected');
    void this.#reconnect();
  }

  #forgetConnection(): void {
    this.#connection = undefined;
    this.#rpcChannel.reset();
    this.#confirmChannel.reset();
    this.#declaredExchanges = new Map();
  }

  async #reconnect(): Promise<void> {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    try {
      for (let attempt = 1; !this.#isShuttingDown(); attempt++) {
        this.#setStatus('reconnecting');
        await this.#pause(
          backoffDelay(attempt, {
            initialDelayMs: FIRST_RECONNECT_DELAY_MS,
            maxDelayMs: this.settings.maxReconnectDelayMs,
          }),
        );
        if (this.#isShuttingDown()) return;
        try {
          await this.#open();
        } catch {
          continue;
        }
        // The new connection may already have dropped while the consumers restarted: then keep trying.
        if (this.#connection) {
          this.#setStatus('connected');
          return;
        }
      }
    } finally {
      this.#reconnecting = false;
    }
  }

  /** A method rather than an inline test, so the compiler does not carry a narrowed state across awaits. */
  #isShuttingDown(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakeReconnect = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeReconnect = done;
    });
  }

  /** The live connection, waiting up to `waitMs` for it while reconnecting. */
  async #whenConnected(waitMs: number, doing: string): Promise<ChannelModel> {
    if (this.#connection) return this.#connection;
    if (this.#state === 'closing' || this.#state === 'closed') throw this.closedError(doing);
    if (this.#state === 'idle') {
      throw new ChassisError(
        'TRANSPORT',
        `${doing} failed: the RabbitMQ transport is not connected; call connect() first`,
      );
    }
    if (waitMs <= 0) throw this.disconnectedError(doing);
    return new Promise<ChannelModel>((resolve, reject) => {
      const waiter = (error?: ChassisError) => {
        clearTimeout(timer);
        this.#connectionWaiters.delete(waiter);
        if (error) reject(error);
        else if (this.#connection) resolve(this.#connection);
        else reject(this.disconnectedError(doing));
      };
      const timer = setTimeout(
        () =>
          waiter(
            new ChassisError(
              'TRANSPORT',
              `${doing} failed: no connection to RabbitMQ at ${this.settings.displayUrl} for ${waitMs} ms; try again later`,
            ),
          ),
        waitMs,
      );
      this.#connectionWaiters.add(waiter);
    });
  }

  current(): Connected | undefined {
    return this.#connection ? { connection: this.#connection, generation: this.#generation } : undefined;
  }

  forget(consumer: AmqpConsumer): void {
    this.#consumers.delete(consumer);
  }

  #setStatus(status: TransportStatus): void {
    if (this.#state === status) return;
    this.#state = status;
    // A listener's bug must not break reconnection: the status helper swallows what a listener throws.
    this.#status.set(status);
  }

  closedError(doing: string): ChassisError {
    return new ChassisError('TRANSPORT', `${doing} failed: the RabbitMQ transport is closed`);
  }

  disconnectedError(doing: string): ChassisError {
    return new ChassisError(
      'TRANSPORT',
      `${doing} failed: not connected to RabbitMQ at ${this.settings.displayUrl} (${this.#state}); try again shortly`,
    );
  }

  // ---- channels the parts share ----------------------------------------------------------------------

  rpcChannel(connection: ChannelModel): Promise<Channel> {
    return this.#rpcChannel.get(connection);
  }

  async confirmedChannel(doing: string): Promise<ConfirmChannel> {
    const connection = await this.#whenConnected(this.settings.publishWaitMs, doing);
    try {
      return await this.#confirmChannel.get(connection);
    } catch (error) {
      throw operationError(error, doing);
    }
  }

  declareExchange(channel: ConfirmChannel, exchange: string): Promise<void> {
    let declared = this.#declaredExchanges.get(exchange);
    if (!declared) {
      const declaring = channel.assertExchange(exchange, 'topic', { durable: true }).then(ignore);
      declaring.catch(() => {
        if (this.#declaredExchanges.get(exchange) === declaring) this.#declaredExchanges.delete(exchange);
      });
      this.#declaredExchanges.set(exchange, declaring);
      declared = declaring;
    }
    return declared;
  }

  async oneOffChannel(doing: string): Promise<Channel> {
    const connection = await this.#whenConnected(this.settings.publishWaitMs, doing);
    try {
      const channel = await connection.createChannel();
      channel.on('error', ignore);
      return channel;
    } catch (error) {
      throw operationError(error, doing);
    }
  }

  consumerTag(queue: string): string {
    return `${this.settings.nodeId}/${queue}/${++this.#consumerSequence}`;
  }

  // ---- the Transport API ---------------------------------------------------------------------------

  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    return this.#rpc.request(service, action, message, options);
  }

  serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer> {
    return this.#addConsumer(rpcServer(this, service, handler, options));
  }

  publish(event: string, message: WireMessage): Promise<void> {
    return publishEvent(this, event, message);
  }

  async subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer> {
    return this.#addConsumer(eventSubscriber(this, binding, handler, options));
  }

  backlog(binding: EventBinding): Promise<number> {
    return backlog(this, binding);
  }

  deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    return deadLetter(this, queue, message, reason);
  }

  readDeadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    return readDeadLetters(this, queue, limit);
  }

  countDeadLetters(queue: string): Promise<number> {
    return countDeadLetters(this, queue);
  }

  removeDeadLetters(queue: string, ids: readonly string[] | 'all'): Promise<number> {
    return removeDeadLetters(this, queue, ids);
  }

  broadcast(topic: string, message: WireMessage): Promise<void> {
    return broadcast(this, topic, message);
  }

  listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer> {
    return this.#addConsumer(broadcastListener(topic, handler));
  }

  async #addConsumer(spec: ConsumerSpec): Promise<Consumer> {
    const doing = `Consuming from ${spec.name}`;
    if (this.#state === 'closing' || this.#state === 'closed') throw this.closedError(doing);
    if (this.#state === 'idle') {
      throw new ChassisError(
        'TRANSPORT',
        `${doing} failed: the RabbitMQ transport is not connected; call connect() first`,
      );
    }
    const consumer = new AmqpConsumer(this, spec);
    this.#consumers.add(consumer);
    const connection = this.#connection;
    // While reconnecting it starts with the next connection.
    if (!connection) return consumer;
    try {
      await consumer.start(connection, this.#generation);
    } catch (error) {
      if (this.#connection !== connection) return consumer;
      this.#consumers.delete(consumer);
      throw new ChassisError('TRANSPORT', `${doing} failed: ${messageOf(error)}`, { cause: error });
    }
    return consumer;
  }
}
