import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Header } from '../../envelope.ts';
import { ChassisError, toChassisError, transportError } from '../../errors.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { asTransportError } from '../shared/errors.ts';
import { StatusListeners } from '../shared/status.ts';
import { sleep, withTimeout } from '../shared/timing.ts';
import {
  type Consumer,
  type DeadLetter,
  type EventBinding,
  type EventHandler,
  type OrderedEvent,
  type PublishedInOrder,
  type RequestOptions,
  type RpcHandler,
  type ServeOptions,
  type SubscribeOptions,
  subscriptionName,
  type Transport,
  type TransportStatus,
  type WireMessage,
} from '../transport.ts';
import { broadcast, listen } from './broadcast.ts';
import { ClaimCheck, type Outgoing } from './claim-check.ts';
import { confirmedPublish, PUBACK_WAIT_MS } from './confirmed-publish.ts';
import { openConnection, ReconnectDelay } from './connection.ts';
import { DeadLetters } from './dead-letters.ts';
import { closedError } from './errors.ts';
import { LostDeliveries } from './lost-deliveries.ts';
import { checkSubject, checkToken, durableName } from './names.ts';
import { type NatsSettings, type NatsTransportOptions, natsSettings, RECOVERY_BACKOFF } from './options.ts';
import { pubAcksOf } from './pub-acks.ts';
import { PublishBatch } from './publish-batch.ts';
import { PullWorker } from './pull-worker.ts';
import { readDirectly } from './read-direct.ts';
import { RpcClient } from './rpc-client.ts';
import { serveRpc } from './rpc-server.ts';
import type { NatsSession } from './session.ts';
import { type ConsumerSpec, Topology } from './topology.ts';

const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export function natsTransport(options: NatsTransportOptions): Transport {
  return new NatsTransport(options);
}

/**
 * The connection's life (connect, status, reconnects, close) and the `Transport` API, each operation
 * handed to the part that owns it: RPC client and server, topology, pull workers, dead letters, claim checks.
 */
class NatsTransport implements Transport, NatsSession {
  readonly kind = 'nats';
  readonly settings: NatsSettings;
  readonly status: StatusListeners;
  readonly outgoing = new PublishBatch();
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;
  readonly #reconnectDelay = new ReconnectDelay();

  readonly #claims: ClaimCheck;
  readonly #topology: Topology;
  readonly #rpc: RpcClient;
  readonly #deadLetters: DeadLetters;
  readonly #workers = new Set<PullWorker>();
  readonly #lostDeliveries: LostDeliveries;

  constructor(options: NatsTransportOptions) {
    this.settings = natsSettings(options);
    this.status = new StatusListeners('closed', (error) => this.report(error, 'A status listener threw'));
    this.#claims = new ClaimCheck(this);
    this.#topology = new Topology(this);
    this.#rpc = new RpcClient(this, this.#claims);
    this.#deadLetters = new DeadLetters(this, this.#claims, this.#topology);
    this.#lostDeliveries = new LostDeliveries(this);
  }

  // ---------------------------------------------------------------------------------------------
  // Connection

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    this.#connecting ??= this.#connect().catch((error: unknown) => {
      this.#connecting = undefined;
      throw error;
    });
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const nc = await openConnection(this.settings, () => this.#reconnectDelay.next());
    this.#reconnectDelay.reset();
    this.#nc = nc;
    try {
      this.#js = jetstream(nc);
      this.#jsm = await jetstreamManager(nc);
      await this.#topology.ensureStreams();
    } catch (error) {
      await nc.close().catch(() => undefined);
      this.#nc = undefined;
      throw asTransportError(error, `Cannot set up the JetStream streams on ${this.settings.url}`);
    }
    this.#rpc.listen(nc);
    this.#readDirectly(nc);
    await nc.flush();
    void this.#watchStatus(nc);
    void nc.closed().then(() => this.#onClosed());
    this.status.set('connected');
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (this.#closed) return;
      switch (status.type) {
        case 'disconnect':
          this.status.set('disconnected');
          this.#rpc.failAll(
            transportError(`Lost the connection to NATS at ${this.settings.url} while waiting for the reply`),
          );
          for (const worker of this.#workers) worker.onDisconnect();
          break;
        case 'reconnecting':
          this.status.set('reconnecting');
          break;
        case 'reconnect':
          this.#readDirectly(nc);
          this.#reconnectDelay.reset();
          this.status.set('connected');
          // A server started from empty storage lost the streams; recreate them before consumers notice.
          void this.#restoreStreams();
          for (const worker of this.#workers) worker.onReconnect();
          break;
        default:
          break;
      }
    }
  }

  /** The new connection's socket read straight into nats.js's parser (`read-direct.ts`). */
  #readDirectly(nc: NatsConnection): void {
    readDirectly(nc, (error) => this.report(error, 'A NATS subscription callback threw; reconnecting'));
  }

  /** JetStream may still be loading right after a restart: try for ~10 s before telling anyone. */
  async #restoreStreams(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#topology.ensureStreams();
        return;
      } catch (error) {
        if (this.#closed || !this.connected) return; // the next reconnect tries again
        if (attempt >= 8) {
          this.report(error, 'Cannot check the JetStream streams after reconnecting');
          return;
        }
        await sleep(backoffDelay(attempt, RECOVERY_BACKOFF));
      }
    }
  }

  #onClosed(): void {
    this.#rpc.failAll(closedError());
    for (const worker of this.#workers) worker.abandon();
    this.#workers.clear();
    this.status.set('closed');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const nc = this.#nc ?? (await this.#connecting?.then(() => this.#nc).catch(() => undefined));
    this.#rpc.failAll(closedError());
    for (const worker of this.#workers) worker.abandon();
    this.#workers.clear();
    if (nc && !nc.isClosed()) {
      // Flush so acks and replies already handed to the client reach the server.
      this.outgoing.flush();
      await withTimeout(nc.flush(), 2_000).catch(() => undefined);
      await nc.close().catch(() => undefined);
    }
    this.status.set('closed');
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.status.add(listener);
  }

  get connected(): boolean {
    return this.status.status === 'connected';
  }

  get closed(): boolean {
    return this.#closed;
  }

  get maxPayload(): number {
    return this.#nc?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  connection(): NatsConnection {
    if (this.#closed) throw closedError();
    if (!this.#nc) throw transportError('The NATS transport is not connected; call connect() first');
    return this.#nc;
  }

  jetstream(): { js: JetStreamClient; jsm: JetStreamManager } {
    this.connection();
    return { js: this.#js!, jsm: this.#jsm! };
  }

  report(error: unknown, context: string): void {
    // After close() replies, acks and clean-ups fail by design: nobody needs to hear about it.
    if (this.#closed) return;
    const cause = toChassisError(error);
    this.settings.onError(
      new ChassisError(cause.code, `${context}: ${cause.message}`, { cause: error, retryable: cause.retryable }),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // RPC

  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    return this.#rpc.request(service, action, message, options);
  }

  serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer> {
    return serveRpc(this, this.#claims, service, handler, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  async publish(event: string, message: WireMessage): Promise<void> {
    checkSubject('event', event);
    await this.#publishConfirmed(event, message, undefined);
  }

  /** One event, retried through reconnects until confirmed (`out`: its body as it goes, if made already). */
  async #publishConfirmed(event: string, message: WireMessage, out: Outgoing | undefined): Promise<void> {
    const sent = out ?? (await this.#claims.outgoing(message, this.settings.payloadBucket));
    const msgID = message.headers[Header.id];
    const ack = await confirmedPublish(this, this.#topology, `evt.${event}`, sent, msgID, `Event ${event}`);
    // A duplicate (same event id within the dedupe window) points at the first copy's body, not ours.
    if (ack.duplicate && sent.claim) void this.#claims.delete(sent.claim);
  }

  /**
   * The events go out in one write, each with its reply subject, and their PubAcks come back together: one
   * round trip for a relay's batch where `publish` in turn took one an event. The server stores what one
   * connection sends in the order it reads it, and a write reaches it as a prefix of its bytes or not at all,
   * so an event is stored only after every event before it in the list. What is not confirmed together (a
   * PubAck late, the connection lost meanwhile, a refusal) goes on one at a time from the first of them, as
   * `publish` sends it (retried through reconnects; the id makes a copy already stored a duplicate), and the
   * first that still fails ends the list. A body that needs the object store, or a connection that is not up,
   * sends them all that way.
   */
  async publishInOrder(events: readonly OrderedEvent[]): Promise<PublishedInOrder> {
    const outs: Outgoing[] = [];
    for (const { event, message } of events) {
      checkSubject('event', event);
      const out = this.#claims.direct(message);
      if (!out) break;
      outs.push(out);
    }
    let confirmed = 0;
    if (outs.length === events.length && events.length > 1 && this.connected) {
      const acks = pubAcksOf(this.connection(), this.outgoing);
      const lost = this.status.changed();
      const publishing = events.map(({ event, message }, i) =>
        acks.publish(`evt.${event}`, outs[i]!.body, outs[i]!.headers, message.headers[Header.id], PUBACK_WAIT_MS, true),
      );
      // Handed to the connection now, in this order: nats.js writes them at the end of this microtask.
      this.outgoing.flush();
      for (const publish of publishing) publish.catch(() => undefined);
      const all = Promise.allSettled(publishing);
      const settled = await Promise.race([all, lost]);
      if (settled !== 'status') {
        while (confirmed < settled.length && settled[confirmed]!.status === 'fulfilled') confirmed++;
      }
    }
    for (let i = confirmed; i < events.length; i++) {
      try {
        await this.#publishConfirmed(events[i]!.event, events[i]!.message, outs[i]);
      } catch (error) {
        return { stored: i, error };
      }
    }
    return { stored: events.length };
  }

  async subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer> {
    checkSubject('event', binding.event);
    checkToken('service', binding.service);
    checkToken('handler', binding.handler);
    this.connection();
    const queue = subscriptionName(binding);
    const spec: ConsumerSpec = {
      stream: this.settings.eventsStream,
      durable: durableName(queue),
      filter: `evt.${binding.event}`,
      queue,
      prefetch: Math.max(1, Math.floor(options.prefetch)),
    };
    await this.#topology.ensureConsumer(spec);
    const parts = {
      claims: this.#claims,
      topology: this.#topology,
      deadLetters: this.#deadLetters,
      lostDeliveries: this.#lostDeliveries,
    };
    const worker = new PullWorker(this, parts, spec, handler);
    this.#workers.add(worker);
    worker.start();
    return {
      stop: async () => {
        await worker.stop();
        this.#workers.delete(worker);
      },
    };
  }

  async backlog(binding: EventBinding): Promise<number> {
    const { jsm } = this.jetstream();
    try {
      const info = await jsm.consumers.info(this.settings.eventsStream, durableName(subscriptionName(binding)));
      return info.num_pending + info.num_ack_pending;
    } catch (error) {
      throw asTransportError(error, `Cannot read the backlog of ${subscriptionName(binding)}`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters and broadcasts

  deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    return this.#deadLetters.add(queue, message, reason);
  }

  readDeadLetters(queue: string, limit?: number): Promise<DeadLetter[]> {
    return this.#deadLetters.read(queue, limit);
  }

  countDeadLetters(queue: string): Promise<number> {
    return this.#deadLetters.count(queue);
  }

  removeDeadLetters(queue: string, ids: readonly string[] | 'all'): Promise<number> {
    return this.#deadLetters.remove(queue, ids);
  }

  async broadcast(topic: string, message: WireMessage): Promise<void> {
    broadcast(this, this.#claims, topic, message);
  }

  listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer> {
    return listen(this, topic, handler);
  }
}
