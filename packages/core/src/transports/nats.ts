import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type ObjectStore, Objm } from '@nats-io/obj';
import {
  headers as createHeaders,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  nanos,
  connect as natsConnect,
  nuid,
  type Subscription,
} from '@nats-io/transport-node';
import { encodeTimeoutMs, Header } from '../envelope.ts';
import { ChassisError, noServiceError, timeoutError, toChassisError } from '../errors.ts';
import { LostDeliveries } from './nats-lost-deliveries.ts';
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
 * The NATS transport: core NATS for RPC and broadcasts, JetStream for events and dead letters, and a
 * JetStream Object Store for bodies too large for one NATS message (claim check).
 *
 * Subjects: `rpc.<service>.<action>` (queue group `<service>`), `evt.<event>` in the events stream,
 * `dlq.<queue>` in the dead-letter stream, `chassis.<topic>` for broadcasts.
 */
export interface NatsTransportOptions {
  /** Server URL, e.g. `nats://127.0.0.1:4222`; several may be given separated by commas. */
  url: string;
  /** This node's id; names the connection so `nats server report connections` shows who is who. */
  nodeId?: string;
  /** Connection name shown by the server. Default `chassis-<nodeId>`. */
  name?: string;
  /** JetStream stream that stores events (subjects `evt.>`). Default `CHASSIS_EVENTS`. */
  eventsStream?: string;
  /** JetStream stream that stores dead letters (subjects `dlq.>`). Default `CHASSIS_DLQ`. */
  deadLetterStream?: string;
  /**
   * Object Store bucket for bodies larger than the server's max_payload. Default `chassis-payloads`.
   * Dead-lettered large bodies go to `<bucket>-dlq`, which keeps them until deleted.
   */
  payloadBucket?: string;
  /**
   * How long the events stream keeps an event, handled or not, and the object store a large body: the longest
   * an event can wait for a subscription whose instances are all down. Default 7 days.
   */
  eventRetentionMs?: number;
  /**
   * How long an event delivery may stay unacknowledged before JetStream gives it to another instance, e.g.
   * when the process died. Handlers running longer keep their delivery alive with progress acks. Default 30 s.
   */
  ackWaitMs?: number;
  /**
   * Told about failures nobody awaits (a reply that could not be sent, a consumer being recreated).
   * Default: `process.emitWarning`.
   */
  onError?: (error: ChassisError) => void;
}

const DEFAULT_EVENTS_STREAM = 'CHASSIS_EVENTS';
const DEFAULT_DLQ_STREAM = 'CHASSIS_DLQ';
const DEFAULT_BUCKET = 'chassis-payloads';
const DEFAULT_EVENT_RETENTION_MS = 7 * 24 * 3600_000;
const DEFAULT_ACK_WAIT_MS = 30_000;

/** Transport-private headers: never shown to the runtime. */
const CLAIM_HEADER = 'chassis-claim';
const MSG_ID_HEADER = 'Nats-Msg-Id';
const DEAD_REASON = 'dead-letter-reason';
const DEAD_QUEUE = 'dead-letter-queue';
const DEAD_AT = 'dead-letter-at';
const HIDDEN_HEADERS = new Set([CLAIM_HEADER, MSG_ID_HEADER.toLowerCase()]);
const DEAD_HEADERS = new Set([DEAD_REASON, DEAD_QUEUE, DEAD_AT]);

/** Room left in max_payload for what JetStream and the protocol add (Nats-Msg-Id, status line). */
const PAYLOAD_MARGIN = 1024;
/** How long `publish` keeps trying before it reports the event as not confirmed (covers a server restart). */
const PUBLISH_CONFIRM_MS = 10_000;
const PULL_EXPIRES_MS = 30_000;
const PULL_HEARTBEAT_MS = 5_000;
const MAX_RECONNECT_WAIT_MS = 2_000;
const EMPTY = new Uint8Array(0);

interface PendingRequest {
  resolve: (message: WireMessage) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  service: string;
  action: string;
}

export function natsTransport(options: NatsTransportOptions): Transport {
  return new NatsTransport(options);
}

class NatsTransport implements Transport {
  readonly kind = 'nats';
  readonly #options: Required<Omit<NatsTransportOptions, 'nodeId' | 'name'>> & { name: string };
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;
  #status: TransportStatus = 'closed';
  #downSince: number | undefined;
  readonly #listeners = new Set<(status: TransportStatus) => void>();
  readonly #statusWaiters = new Set<() => void>();

  /** One reply subscription per node; requests are told apart by the last token of the reply subject. */
  readonly #inbox = createInbox();
  #requestSeq = 0;
  readonly #pending = new Map<string, PendingRequest>();

  readonly #workers = new Set<PullWorker>();
  readonly #stores = new Map<string, Promise<ObjectStore>>();
  readonly lostDeliveries: LostDeliveries;

  constructor(options: NatsTransportOptions) {
    const nodeId = options.nodeId ?? nuid.next();
    this.#options = {
      url: options.url,
      name: options.name ?? `chassis-${nodeId}`,
      eventsStream: options.eventsStream ?? DEFAULT_EVENTS_STREAM,
      deadLetterStream: options.deadLetterStream ?? DEFAULT_DLQ_STREAM,
      payloadBucket: options.payloadBucket ?? DEFAULT_BUCKET,
      eventRetentionMs: options.eventRetentionMs ?? DEFAULT_EVENT_RETENTION_MS,
      ackWaitMs: options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
      onError: options.onError ?? ((error) => process.emitWarning(error)),
    };
    this.lostDeliveries = new LostDeliveries({
      maxAgeMs: this.#options.eventRetentionMs,
      jetstream: () => this.#jetstream(),
      report: (error, context) => this.#report(error, context),
    });
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
    const url = this.#options.url;
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        servers: url.split(',').map((s) => s.trim()),
        name: this.#options.name,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectDelayHandler: () => this.#reconnectDelay(),
        // A dead peer without a TCP reset is noticed within ~1 minute instead of the default 4.
        pingInterval: 20_000,
        maxPingOut: 3,
        timeout: 5_000,
        // nats.js would otherwise make an Error (a stack capture) for every request and publish, only to
        // show where a timeout was asked for; our errors say which action or event timed out.
        noAsyncTraces: true,
      });
    } catch (error) {
      throw new ChassisError(
        'TRANSPORT',
        `Cannot connect to NATS at ${url}: ${messageOf(error)}; is nats-server running?`,
        {
          cause: error,
        },
      );
    }
    this.#downSince = undefined;
    if (!nc.info?.headers || !nc.info.jetstream) {
      await nc.close();
      throw new ChassisError(
        'TRANSPORT',
        `The NATS server at ${url} has ${nc.info?.headers ? 'JetStream disabled' : 'no header support'}; run nats-server 2.9+ with -js`,
        { retryable: false },
      );
    }
    this.#nc = nc;
    try {
      this.#js = jetstream(nc);
      this.#jsm = await jetstreamManager(nc);
      await this.#ensureStreams();
    } catch (error) {
      await nc.close().catch(() => undefined);
      this.#nc = undefined;
      throw toTransportError(error, `Cannot set up the JetStream streams on ${url}`);
    }
    nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => this.#onReply(error, msg) });
    await nc.flush();
    void this.#watchStatus(nc);
    void nc.closed().then(() => this.#onClosed());
    this.#setStatus('connected');
  }

  /** Back off while the outage lasts (100 ms first, up to 2 s), with jitter so a fleet does not reconnect in step. */
  #reconnectDelay(): number {
    this.#downSince ??= Date.now();
    const downSeconds = Math.floor((Date.now() - this.#downSince) / 1000);
    const wait = Math.min(MAX_RECONNECT_WAIT_MS, 100 * 2 ** downSeconds);
    return wait + Math.floor(Math.random() * wait * 0.5);
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (this.#closed) return;
      switch (status.type) {
        case 'disconnect':
          this.#setStatus('disconnected');
          this.#failPending(
            new ChassisError(
              'TRANSPORT',
              `Lost the connection to NATS at ${this.#options.url} while waiting for the reply`,
            ),
          );
          for (const worker of this.#workers) worker.onDisconnect();
          break;
        case 'reconnecting':
          if (this.#status !== 'reconnecting') this.#setStatus('reconnecting');
          break;
        case 'reconnect':
          this.#downSince = undefined;
          this.#setStatus('connected');
          // A server started from empty storage lost the streams; recreate them before consumers notice.
          void this.#restoreStreams();
          for (const worker of this.#workers) worker.onReconnect();
          break;
        default:
          break;
      }
    }
  }

  /** JetStream may still be loading right after a restart: try for a while before telling anyone. */
  async #restoreStreams(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#ensureStreams();
        return;
      } catch (error) {
        if (this.#closed || !this.connected) return; // the next reconnect tries again
        if (attempt >= 5) {
          this.#report(error, 'Cannot check the JetStream streams after reconnecting');
          return;
        }
        await sleep(backoff(attempt));
      }
    }
  }

  #onClosed(): void {
    this.#failPending(closedError());
    for (const worker of this.#workers) worker.abandon();
    this.#workers.clear();
    this.#setStatus('closed');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const nc = this.#nc ?? (await this.#connecting?.then(() => this.#nc).catch(() => undefined));
    this.#failPending(closedError());
    for (const worker of this.#workers) worker.abandon();
    this.#workers.clear();
    if (nc && !nc.isClosed()) {
      // Flush so acks and replies already handed to the client reach the server.
      await withTimeout(nc.flush(), 2_000).catch(() => undefined);
      await nc.close().catch(() => undefined);
    }
    this.#setStatus('closed');
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #setStatus(status: TransportStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    for (const waiter of [...this.#statusWaiters]) waiter();
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch (error) {
        this.#report(error, 'A status listener threw');
      }
    }
  }

  get connected(): boolean {
    return this.#status === 'connected';
  }

  get closed(): boolean {
    return this.#closed;
  }

  get ackWaitMs(): number {
    return this.#options.ackWaitMs;
  }

  /** The connection, or a `TRANSPORT` error saying why there is none. */
  connection(): NatsConnection {
    if (this.#closed) throw closedError();
    if (!this.#nc) throw new ChassisError('TRANSPORT', 'The NATS transport is not connected; call connect() first');
    return this.#nc;
  }

  #jetstream(): { js: JetStreamClient; jsm: JetStreamManager } {
    this.connection();
    return { js: this.#js!, jsm: this.#jsm! };
  }

  #report(error: unknown, context: string): void {
    // After close() replies, acks and clean-ups fail by design: nobody needs to hear about it.
    if (this.#closed) return;
    const cause = toChassisError(error);
    this.#options.onError(
      new ChassisError(cause.code, `${context}: ${cause.message}`, { cause: error, retryable: cause.retryable }),
    );
  }

  report(error: unknown, context: string): void {
    this.#report(error, context);
  }

  // ---------------------------------------------------------------------------------------------
  // RPC

  async request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    checkToken('service', service);
    checkToken('action', action);
    const nc = this.connection();
    if (!this.connected) {
      throw new ChassisError(
        'TRANSPORT',
        `Not connected to NATS at ${this.#options.url} (${this.#status}); the request to ${service}.${action} was not sent`,
      );
    }
    const out = this.#direct(message) ?? (await this.#claimed(message, this.#options.payloadBucket));
    const id = (++this.#requestSeq).toString(36);
    return new Promise<WireMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          if (!this.#pending.delete(id)) return;
          reject(timeoutError({ service, action, timeoutMs: options.timeoutMs }));
        },
        Math.max(0, options.timeoutMs),
      );
      this.#pending.set(id, { resolve, reject, timer, service, action });
      try {
        nc.publish(`rpc.${service}.${action}`, out.body, { reply: `${this.#inbox}.${id}`, headers: out.headers });
      } catch (error) {
        this.#settle(id)?.reject(toTransportError(error, `Cannot send the request to ${service}.${action}`));
      }
    });
  }

  #settle(id: string): PendingRequest | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  #onReply(error: Error | null, msg: Msg): void {
    if (error) {
      this.#report(error, 'The reply subscription failed');
      return;
    }
    const pending = this.#settle(msg.subject.slice(this.#inbox.length + 1));
    if (!pending) return; // timed out or failed already
    // The server answers a request nobody subscribes to with an empty 503 status message (no responders).
    if (msg.headers?.code === 503 && msg.data.length === 0) {
      const { service, action } = pending;
      pending.reject(noServiceError({ service, action }, `start one (nothing subscribes to rpc.${service}.${action})`));
      return;
    }
    const direct = this.#received(msg);
    if (direct) pending.resolve(direct);
    else this.incoming(msg, true).then(pending.resolve, pending.reject);
  }

  #failPending(error: ChassisError): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(error);
  }

  async serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer> {
    checkToken('service', service);
    const nc = this.connection();
    const concurrency = Math.max(1, Math.floor(options.concurrency));
    const waiting: Received[] = [];
    let active = 0;
    let stopping = false;
    let idle: (() => void) | undefined;

    const handle = async ({ msg, receivedAt }: Received): Promise<void> => {
      const action = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
      let reply: WireMessage;
      try {
        const message = this.#received(msg) ?? (await this.incoming(msg, true));
        reply = await handler({ action, message, receivedAt });
      } catch (error) {
        this.#report(error, `rpc.${service}.${action}: the request could not be handled, so it gets no reply`);
        return;
      }
      if (!msg.reply) return; // a plain publish: nobody waits for the answer
      try {
        const out = this.#direct(reply) ?? (await this.#claimed(reply, this.#options.payloadBucket));
        nc.publish(msg.reply, out.body, out.headers ? { headers: out.headers } : undefined);
      } catch (error) {
        this.#report(error, `rpc.${service}.${action}: the reply could not be sent`);
      }
    };
    const run = (received: Received): void => {
      active++;
      void handle(received).finally(() => {
        active--;
        const next = stopping ? undefined : waiting.shift();
        if (next) run(next);
        else if (active === 0) idle?.();
      });
    };
    // Core NATS holds nothing back, so requests beyond `concurrency` wait here, in arrival order.
    const sub = nc.subscribe(`rpc.${service}.*`, {
      queue: service,
      callback: (error, msg) => {
        if (error) {
          this.#report(error, `The subscription to rpc.${service}.* failed`);
          return;
        }
        // Stamped now, not when a slot frees: the request's timeout-ms counts from its arrival.
        const received = { msg, receivedAt: Date.now() };
        if (!stopping && active < concurrency) run(received);
        else waiting.push(received);
      },
    });
    // Once serve() resolves, a request must find this instance.
    await nc.flush();

    return {
      stop: async () => {
        if (stopping) return;
        stopping = true;
        // Drain: the server stops routing to us, and what it already sent still reaches the callback.
        await withTimeout(sub.drain(), 5_000).catch(() => undefined);
        // Requests we accepted but did not start go back to the queue group; with no other instance left
        // the server answers their callers "no responders" at once rather than letting them time out.
        // Each goes back with the time it waited here taken off its timeout-ms, so the next instance does
        // not work for a caller that has given up; one whose caller has given up already is dropped.
        for (const { msg, receivedAt } of waiting.splice(0)) {
          const headers = handedBackHeaders(msg.headers, Date.now() - receivedAt);
          if (headers === null) continue;
          try {
            nc.publish(msg.subject, msg.data, { reply: msg.reply || undefined, headers });
          } catch (error) {
            this.#report(error, `rpc.${service}: an unstarted request could not be handed back`);
          }
        }
        if (active > 0) await new Promise<void>((resolve) => (idle = resolve));
        await withTimeout(nc.flush(), 5_000).catch(() => undefined);
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  async publish(event: string, message: WireMessage): Promise<void> {
    checkSubject('event', event);
    const msgID = message.headers[Header.id];
    const out = await this.#outgoing(message, this.#options.payloadBucket);
    const ack = await this.#confirmedPublish(`evt.${event}`, out.body, out.headers, msgID, `Event ${event}`);
    // A duplicate (same event id within the dedupe window) points at the first copy's body, not ours.
    if (ack.duplicate && out.claim) void this.#deleteClaim(out.claim);
  }

  /** Publishes to JetStream and waits for the PubAck, retrying through reconnects; the msg id makes retries safe. */
  async #confirmedPublish(
    subject: string,
    body: Uint8Array,
    headers: MsgHdrs | undefined,
    msgID: string | undefined,
    what: string,
  ): Promise<{ duplicate: boolean }> {
    const until = Date.now() + PUBLISH_CONFIRM_MS;
    for (let attempt = 0; ; attempt++) {
      await this.#untilConnected(until);
      const { js } = this.#jetstream();
      let lastError: unknown;
      if (this.connected) {
        // A PubAck the old connection was waiting for never comes: resend on the new one instead of timing out.
        const lost = this.#nextStatusChange(until - Date.now());
        const publishing = js.publish(subject, body, {
          headers,
          timeout: Math.max(1_000, Math.min(5_000, until - Date.now())),
          retries: 0,
          ...(msgID ? { msgID } : {}),
        });
        publishing.catch(() => undefined);
        try {
          const outcome = await Promise.race([publishing, lost.changed]);
          if (typeof outcome !== 'string') return outcome;
          lastError = new Error(outcome === 'status' ? 'the connection was lost before the PubAck came' : 'no PubAck');
        } catch (error) {
          if (error instanceof JetStreamApiError) {
            throw new ChassisError('TRANSPORT', `${what} was refused by JetStream: ${error.message}`, {
              cause: error,
              retryable: false,
            });
          }
          lastError = error;
        } finally {
          lost.cancel();
        }
      }
      if (this.#closed || Date.now() >= until) {
        throw toTransportError(
          lastError ?? new Error(`not connected (${this.#status})`),
          `${what} was not confirmed by JetStream within ${PUBLISH_CONFIRM_MS} ms`,
        );
      }
      // "No responders" means no stream takes the subject yet: JetStream is starting, or lost its state.
      if (isNoResponders(lastError)) await this.#ensureStreams().catch(() => undefined);
      if (this.connected) await sleep(backoff(attempt));
    }
  }

  /** Resolves `changed` with 'status' at the next status change, or with 'timeout' after `ms`. */
  #nextStatusChange(ms: number): { changed: Promise<'status' | 'timeout'>; cancel: () => void } {
    let waiter: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const changed = new Promise<'status' | 'timeout'>((resolve) => {
      waiter = () => resolve('status');
      this.#statusWaiters.add(waiter);
      timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
    });
    const cancel = () => {
      if (waiter) this.#statusWaiters.delete(waiter);
      clearTimeout(timer);
    };
    void changed.then(cancel);
    return { changed, cancel };
  }

  async #untilConnected(until: number): Promise<void> {
    while (!this.connected && !this.#closed && Date.now() < until) {
      await this.#nextStatusChange(until - Date.now()).changed;
    }
  }

  async subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer> {
    checkSubject('event', binding.event);
    checkToken('service', binding.service);
    checkToken('handler', binding.handler);
    this.connection();
    const queue = subscriptionName(binding);
    const spec: ConsumerSpec = {
      stream: this.#options.eventsStream,
      durable: durableName(queue),
      filter: `evt.${binding.event}`,
      queue,
      prefetch: Math.max(1, Math.floor(options.prefetch)),
    };
    await this.ensureConsumer(spec);
    const worker = new PullWorker(this, spec, handler);
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
    const { jsm } = this.#jetstream();
    try {
      const info = await jsm.consumers.info(this.#options.eventsStream, durableName(subscriptionName(binding)));
      return info.num_pending + info.num_ack_pending;
    } catch (error) {
      throw toTransportError(error, `Cannot read the backlog of ${subscriptionName(binding)}`);
    }
  }

  /** Creates the durable consumer of a subscription, or adjusts an existing one; safe to race with other instances. */
  async ensureConsumer(spec: ConsumerSpec): Promise<void> {
    const { jsm } = this.#jetstream();
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.durable,
      description: `Chassis subscription ${spec.queue} to ${spec.filter}`,
      filter_subject: spec.filter,
      ack_policy: AckPolicy.Explicit,
      // A new subscription starts at the events published from now on: replaying the whole history into a
      // service that just appeared would surprise it. An existing one resumes where it left off regardless.
      deliver_policy: DeliverPolicy.New,
      ack_wait: nanos(this.#options.ackWaitMs),
      // The runtime counts attempts and dead-letters; JetStream must never drop a message on its own.
      max_deliver: -1,
      // Shared by every instance; each one keeps at most its prefetch in flight.
      max_ack_pending: Math.max(1_000, spec.prefetch * 10),
    };
    for (let tries = 0; ; tries++) {
      let existing: ConsumerInfo | undefined;
      try {
        existing = await jsm.consumers.info(spec.stream, spec.durable);
      } catch (error) {
        if (isApiCode(error, JetStreamApiCodes.StreamNotFound)) {
          await this.#ensureStreams();
        } else if (!isApiCode(error, JetStreamApiCodes.ConsumerNotFound)) {
          throw toTransportError(error, `Cannot read the JetStream consumer ${spec.durable}`);
        }
      }
      if (!existing) {
        try {
          await jsm.consumers.add(spec.stream, config);
          return;
        } catch (error) {
          // Another instance created it a moment ago with a config we then adjust, or the stream was missing.
          if (tries < 3) continue;
          throw toTransportError(error, `Cannot create the JetStream consumer ${spec.durable}`);
        }
      }
      const current = existing.config;
      if (current.filter_subject !== spec.filter) {
        throw new ChassisError(
          'CONFLICT',
          `The durable consumer ${spec.durable} of ${spec.queue} listens to ${current.filter_subject}, not ${spec.filter}; ` +
            `if the handler now consumes another event, delete the old subscription: nats consumer rm ${spec.stream} ${spec.durable}`,
          { retryable: false },
        );
      }
      const wantAckPending = config.max_ack_pending ?? 0;
      if (current.ack_wait !== config.ack_wait || (current.max_ack_pending ?? 0) < wantAckPending) {
        await jsm.consumers
          .update(spec.stream, spec.durable, {
            ack_wait: config.ack_wait,
            max_ack_pending: Math.max(current.max_ack_pending ?? 0, wantAckPending),
          })
          .catch((error: unknown) => this.#report(error, `Cannot adjust the JetStream consumer ${spec.durable}`));
      }
      return;
    }
  }

  async #ensureStreams(): Promise<void> {
    await this.#ensureStream({
      name: this.#options.eventsStream,
      subjects: ['evt.>'],
      storage: StorageType.File,
      // Limits, not interest: nats-server 2.9 was seen losing a just-acknowledged message of an interest stream
      // across a restart. Events are kept for the retention period whether handled or not, which also lets an
      // operator look at recent traffic.
      retention: RetentionPolicy.Limits,
      max_age: nanos(this.#options.eventRetentionMs),
      discard: DiscardPolicy.Old,
      num_replicas: 1,
    });
    await this.#ensureStream({
      name: this.#options.deadLetterStream,
      subjects: ['dlq.>'],
      storage: StorageType.File,
      // Dead letters wait for a human, however long that takes.
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: 1,
    });
  }

  /**
   * Create-or-update, safe to race with other nodes. An existing stream gets our subjects and retention period;
   * what an operator tuned beyond that (size limits, replicas) is left alone.
   */
  async #ensureStream(config: Partial<StreamConfig> & { name: string; subjects: string[] }): Promise<void> {
    const { jsm } = this.#jetstream();
    let existing: StreamConfig | undefined;
    try {
      existing = (await jsm.streams.info(config.name)).config;
    } catch (error) {
      if (!isApiCode(error, JetStreamApiCodes.StreamNotFound)) throw error;
    }
    if (!existing) {
      try {
        await jsm.streams.add(config);
        return;
      } catch (addError) {
        // Another node may have created it in between; anything else (e.g. overlapping subjects) is for a human.
        existing = await jsm.streams.info(config.name).then(
          (info) => info.config,
          () => {
            throw new ChassisError(
              'TRANSPORT',
              `Cannot create the JetStream stream ${config.name}: ${messageOf(addError)}`,
              {
                cause: addError,
                retryable: false,
              },
            );
          },
        );
      }
    }
    if (existing.retention !== config.retention) {
      this.#report(
        new ChassisError('TRANSPORT', `it has retention ${existing.retention}, Chassis expects ${config.retention}`),
        `The JetStream stream ${config.name} was not created by this version; recreate it when it is empty (nats stream rm ${config.name})`,
      );
    }
    const subjects = existing.subjects ?? [];
    const missing = config.subjects.filter((subject) => !subjects.includes(subject));
    const maxAge = config.max_age ?? existing.max_age;
    if (missing.length > 0 || maxAge !== existing.max_age) {
      await jsm.streams.update(config.name, { ...existing, subjects: [...subjects, ...missing], max_age: maxAge });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters

  async deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    checkSubject('queue', queue);
    const headers = {
      ...message.headers,
      [DEAD_REASON]: reason.replace(/[\r\n]+/g, ' '),
      [DEAD_QUEUE]: queue,
      [DEAD_AT]: String(Date.now()),
    };
    const out = await this.#outgoing({ headers, body: message.body }, this.#deadLetterBucket);
    // The same delivery dead-lettered twice (its term got lost) is stored once.
    const id = message.headers[Header.id];
    await this.#confirmedPublish(
      `dlq.${queue}`,
      out.body,
      out.headers,
      id ? `dlq:${queue}:${id}` : undefined,
      `Dead letter of ${queue}`,
    );
  }

  async readDeadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    checkSubject('queue', queue);
    const { js, jsm } = this.#jetstream();
    const stream = this.#options.deadLetterStream;
    // An ephemeral, unacknowledged consumer reads without removing anything and vanishes if we crash.
    const info = await jsm.consumers
      .add(stream, {
        filter_subject: `dlq.${queue}`,
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        inactive_threshold: nanos(30_000),
      })
      .catch((error: unknown) => {
        throw toTransportError(error, `Cannot read the dead letters of ${queue}`);
      });
    try {
      const count = Math.min(Math.max(0, Math.floor(limit)), info.num_pending);
      if (count === 0) return [];
      const consumer = js.consumers.getConsumerFromInfo(info);
      const batch = await consumer.fetch({ max_messages: count, expires: 5_000 });
      const letters: DeadLetter[] = [];
      for await (const msg of batch) {
        const all = fromNatsHeaders(msg.headers);
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(all)) if (!DEAD_HEADERS.has(key)) headers[key] = value;
        const claim = msg.headers?.get(CLAIM_HEADER);
        const body = claim ? await this.#fetchClaim(claim).catch(() => EMPTY) : msg.data;
        letters.push({
          message: { headers, body },
          reason: all[DEAD_REASON] ?? '',
          queue: all[DEAD_QUEUE] ?? queue,
          at: Number(all[DEAD_AT] ?? msg.timestampNanos / 1_000_000n),
        });
        if (letters.length >= count) break;
      }
      return letters;
    } finally {
      jsm.consumers.delete(stream, info.name).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Broadcast

  async broadcast(topic: string, message: WireMessage): Promise<void> {
    checkSubject('topic', topic);
    const nc = this.connection();
    const headers = toNatsHeaders(message.headers);
    if (!this.#fits(message.headers, message.body)) {
      throw new ChassisError(
        'BAD_MESSAGE',
        `The broadcast on ${topic} (${message.body.length} bytes) exceeds the server's max_payload; broadcasts are not stored, keep them small`,
      );
    }
    try {
      nc.publish(`chassis.${topic}`, message.body, { headers });
    } catch (error) {
      throw toTransportError(error, `Cannot broadcast on ${topic}`);
    }
  }

  async listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer> {
    checkSubject('topic', topic);
    const nc = this.connection();
    const sub = nc.subscribe(`chassis.${topic}`, {
      callback: (error, msg) => {
        if (error) {
          this.#report(error, `The subscription to chassis.${topic} failed`);
          return;
        }
        try {
          handler({ headers: fromNatsHeaders(msg.headers), body: msg.data });
        } catch (handlerError) {
          this.#report(handlerError, `A listener of ${topic} threw`);
        }
      },
    });
    await nc.flush();
    return { stop: () => unsubscribe(sub) };
  }

  // ---------------------------------------------------------------------------------------------
  // Bodies and claim checks

  #fits(headers: Record<string, string>, body: Uint8Array): boolean {
    const max = this.#nc?.info?.max_payload ?? 1024 * 1024;
    // An upper bound, cheap enough for every message: UTF-8 takes at most 3 bytes per UTF-16 unit.
    let headerBytes = 0;
    for (const key in headers) headerBytes += (key.length + headers[key]!.length) * 3 + 4;
    return body.length + headerBytes + PAYLOAD_MARGIN <= max;
  }

  /** Headers and body as they go on the wire when the body fits in one message; else undefined. */
  #direct(message: WireMessage): { headers: MsgHdrs | undefined; body: Uint8Array } | undefined {
    return this.#fits(message.headers, message.body)
      ? { headers: toNatsHeaders(message.headers), body: message.body }
      : undefined;
  }

  /**
   * Headers and body as they go on the wire. A body that does not fit in one message is stored in the
   * Object Store and replaced by a header naming it (`<bucket>/<object>`).
   */
  async #outgoing(
    message: WireMessage,
    bucket: string,
  ): Promise<{ headers: MsgHdrs | undefined; body: Uint8Array; claim?: string }> {
    return this.#direct(message) ?? this.#claimed(message, bucket);
  }

  async #claimed(message: WireMessage, bucket: string): Promise<{ headers: MsgHdrs; body: Uint8Array; claim: string }> {
    const headers = toNatsHeaders(message.headers) ?? createHeaders();
    const name = nuid.next();
    try {
      const store = await this.#store(bucket);
      await store.putBlob({ name }, message.body);
    } catch (error) {
      throw toTransportError(error, `Cannot store a ${message.body.length}-byte body in the object store ${bucket}`);
    }
    const claim = `${bucket}/${name}`;
    headers.set(CLAIM_HEADER, claim);
    return { headers, body: EMPTY, claim };
  }

  /** The message as the runtime sees it, when its body came with it (no claim check); else undefined. */
  #received(msg: Msg): WireMessage | undefined {
    if (!msg.headers) return { headers: {}, body: msg.data };
    return msg.headers.has(CLAIM_HEADER) ? undefined : { headers: fromNatsHeaders(msg.headers), body: msg.data };
  }

  /** The message as the runtime sees it; `once` deletes a claimed body read by its only reader. */
  async incoming(msg: Msg, once: boolean): Promise<WireMessage> {
    const direct = this.#received(msg);
    if (direct) return direct;
    const headers = fromNatsHeaders(msg.headers);
    const claim = msg.headers!.get(CLAIM_HEADER);
    const body = await this.#fetchClaim(claim);
    if (once) void this.#deleteClaim(claim);
    return { headers, body };
  }

  async #fetchClaim(claim: string): Promise<Uint8Array> {
    const [bucket, name] = splitClaim(claim);
    let body: Uint8Array | null;
    try {
      body = await (await this.#store(bucket)).getBlob(name);
    } catch (error) {
      throw toTransportError(error, `Cannot fetch the body ${claim} from the object store`);
    }
    if (!body) {
      throw new ChassisError(
        'BAD_MESSAGE',
        `The body ${claim} is no longer in the object store (kept ${this.#options.eventRetentionMs} ms)`,
      );
    }
    return body;
  }

  async #deleteClaim(claim: string): Promise<void> {
    const [bucket, name] = splitClaim(claim);
    try {
      await (await this.#store(bucket)).delete(name);
    } catch (error) {
      this.#report(error, `Cannot delete the body ${claim}; it expires on its own`);
    }
  }

  get #deadLetterBucket(): string {
    return `${this.#options.payloadBucket}-dlq`;
  }

  /** Opens a bucket, creating it if needed: bodies of dead letters are kept, others expire with the events. */
  #store(bucket: string): Promise<ObjectStore> {
    let store = this.#stores.get(bucket);
    if (!store) {
      const { js } = this.#jetstream();
      const expires = bucket !== this.#deadLetterBucket;
      store = new Objm(js).create(bucket, {
        storage: StorageType.File,
        ...(expires ? { ttl: nanos(this.#options.eventRetentionMs) } : {}),
      });
      store.catch(() => this.#stores.delete(bucket));
      this.#stores.set(bucket, store);
    }
    return store;
  }
}

// -----------------------------------------------------------------------------------------------
// Event consumption

interface ConsumerSpec {
  stream: string;
  durable: string;
  filter: string;
  /** The subscription name, used for dead letters. */
  queue: string;
  prefetch: number;
}

/**
 * Pulls from one durable consumer for one instance, keeping `fetched-and-unfinished` at most `prefetch`:
 * a pull request only asks for the free slots, so nothing waits here unstarted while another instance idles.
 * Pull requests live on the server, so they are re-issued after a reconnect, when the server reports them
 * over (408, 409), or when their heartbeats stop.
 */
class PullWorker {
  readonly #transport: NatsTransport;
  readonly #spec: ConsumerSpec;
  readonly #handler: EventHandler;
  readonly #inbox = createInbox();
  /**
   * Open pull requests by id, with their batch. Delivered messages carry their own subject, not the request's,
   * so only the total still to come is known; statuses (408, 409) name their request.
   */
  readonly #requests = new Map<string, { batch: number; expiresAt: number }>();
  /** Messages asked for and not yet received, over all open requests. */
  #outstanding = 0;
  #requestSeq = 0;
  #sub: Subscription | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #retryPull: NodeJS.Timeout | undefined;
  #lastHeard = Date.now();
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #stopping = false;
  #recovering = false;

  constructor(transport: NatsTransport, spec: ConsumerSpec, handler: EventHandler) {
    this.#transport = transport;
    this.#spec = spec;
    this.#handler = handler;
  }

  start(): void {
    const nc = this.#transport.connection();
    this.#sub = nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => this.#onMessage(error, msg) });
    this.#watchdog = setInterval(() => this.#check(), PULL_HEARTBEAT_MS);
    this.#watchdog.unref();
    this.#pull();
  }

  onDisconnect(): void {
    this.#forgetRequests();
  }

  onReconnect(): void {
    // Pull requests died with the old connection (or the old server).
    this.#forgetRequests();
    this.#pull();
  }

  /** Stops pulling; what is in flight finishes and is acked, what arrives now goes back at once. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#clearTimers();
    if (this.#sub) await withTimeout(this.#sub.drain(), 5_000).catch(() => undefined);
    this.#forgetRequests();
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    // The acks of the last handlers are on their way; make sure they reached the server.
    if (!this.#transport.closed) await withTimeout(this.#transport.connection().flush(), 5_000).catch(() => undefined);
  }

  /** The connection is going away: no acks can be sent, JetStream redelivers after ack wait. */
  abandon(): void {
    this.#stopping = true;
    this.#clearTimers();
    this.#forgetRequests();
  }

  #clearTimers(): void {
    clearInterval(this.#watchdog);
    clearTimeout(this.#retryPull);
  }

  #forgetRequests(): void {
    this.#requests.clear();
    this.#outstanding = 0;
  }

  #closeRequest(id: string, undelivered: number): void {
    const request = this.#requests.get(id);
    if (!request) return;
    this.#requests.delete(id);
    this.#outstanding = this.#requests.size === 0 ? 0 : Math.max(0, this.#outstanding - undelivered);
  }

  #pull(): void {
    if (this.#stopping || this.#recovering || !this.#transport.connected) return;
    const want = this.#spec.prefetch - this.#inFlight - this.#outstanding;
    // While a request is open, top up only by a sizeable batch rather than one pull per finished message.
    if (want <= 0 || (this.#outstanding > 0 && want < Math.ceil(this.#spec.prefetch / 2))) return;
    const id = (++this.#requestSeq).toString(36);
    if (this.#requests.size === 0) this.#lastHeard = Date.now();
    this.#requests.set(id, { batch: want, expiresAt: Date.now() + PULL_EXPIRES_MS + PULL_HEARTBEAT_MS });
    this.#outstanding += want;
    const { stream, durable } = this.#spec;
    try {
      this.#transport
        .connection()
        .publish(
          `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
          JSON.stringify({ batch: want, expires: nanos(PULL_EXPIRES_MS), idle_heartbeat: nanos(PULL_HEARTBEAT_MS) }),
          { reply: `${this.#inbox}.${id}` },
        );
    } catch (error) {
      this.#closeRequest(id, want);
      this.#transport.report(error, `Cannot pull from ${durable}`);
    }
  }

  /** Runs every heartbeat interval: forgets pull requests the server has evidently forgotten, then pulls. */
  #check(): void {
    const now = Date.now();
    for (const [id, request] of this.#requests) if (request.expiresAt < now) this.#closeRequest(id, request.batch);
    if (this.#requests.size > 0 && now - this.#lastHeard > 2 * PULL_HEARTBEAT_MS + 1_000) this.#forgetRequests();
    this.#pull();
  }

  #onMessage(error: Error | null, msg: Msg): void {
    if (error) {
      this.#transport.report(error, `The pull subscription of ${this.#spec.durable} failed`);
      return;
    }
    this.#lastHeard = Date.now();
    if (!msg.reply) {
      this.#onStatus(msg);
      return;
    }
    if (this.#outstanding > 0 && --this.#outstanding === 0) this.#requests.clear();
    if (this.#stopping) {
      // Fetched but not started: straight back to the consumer for another instance, not counted as lost.
      this.#inFlight++;
      void this.#nak(msg, '-NAK').finally(() => {
        if (--this.#inFlight === 0) this.#idle?.();
      });
      return;
    }
    this.#inFlight++;
    void this.#handle(msg).finally(() => {
      this.#inFlight--;
      if (this.#stopping) {
        if (this.#inFlight === 0) this.#idle?.();
      } else {
        this.#pull();
      }
    });
  }

  #onStatus(msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat: the request is alive
    const id = msg.subject.slice(this.#inbox.length + 1);
    const batch = this.#requests.get(id)?.batch ?? 0;
    const pending = Number(msg.headers?.get('Nats-Pending-Messages'));
    this.#closeRequest(id, Number.isFinite(pending) && pending > 0 ? pending : batch);
    if (this.#stopping) return;
    const description = msg.headers?.description ?? '';
    if (code === 408 || code === 404) {
      this.#pull(); // the request expired: ask again
    } else if (code === 503 || (code === 409 && /consumer deleted/i.test(description))) {
      void this.#recover(); // no consumer answers: JetStream is starting, or the consumer is gone
    } else {
      // e.g. 409 "Exceeded MaxWaiting": asking again at once would spin.
      if (code === 400) {
        this.#transport.report(
          new ChassisError('TRANSPORT', `${code} ${description}`),
          `JetStream refused a pull from ${this.#spec.durable}`,
        );
      }
      clearTimeout(this.#retryPull);
      this.#retryPull = setTimeout(() => this.#pull(), 1_000);
    }
  }

  async #recover(): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    this.#forgetRequests();
    for (let attempt = 0; !this.#stopping && !this.#transport.closed; attempt++) {
      await sleep(backoff(attempt));
      if (this.#stopping || !this.#transport.connected) continue;
      try {
        await this.#transport.ensureConsumer(this.#spec);
        break;
      } catch (error) {
        if (attempt % 10 === 9)
          this.#transport.report(error, `Still cannot restore the consumer ${this.#spec.durable}`);
      }
    }
    this.#recovering = false;
    this.#pull();
  }

  async #handle(msg: Msg): Promise<void> {
    // Long handlers keep their delivery: JetStream would otherwise hand it to another instance after ack wait.
    const progress = setInterval(() => this.#ack(msg, '+WPI'), Math.max(500, this.#transport.ackWaitMs / 2));
    try {
      let message: WireMessage;
      try {
        message = await this.#transport.incoming(msg, false);
      } catch (error) {
        await this.#dispose(
          msg,
          { headers: fromNatsHeaders(msg.headers), body: EMPTY },
          {
            kind: 'dead',
            reason: toChassisError(error).message,
          },
        );
        return;
      }
      let disposition: Disposition;
      try {
        const attempt = deliveryCount(msg.reply ?? '');
        // Only a redelivery reads the NAK count: a first delivery has lost nothing.
        const unsettled = attempt > 1 ? await this.#transport.lostDeliveries.unsettled(msg.reply!, attempt) : 0;
        disposition = await this.#handler({ message, attempt, unsettled });
      } catch (error) {
        // Handlers do not throw by contract; if one does, try again later rather than lose the event.
        this.#transport.report(error, `The handler of ${this.#spec.queue} threw`);
        disposition = { kind: 'retry', delayMs: 1_000 };
      }
      await this.#dispose(msg, message, disposition);
    } finally {
      clearInterval(progress);
    }
  }

  async #dispose(msg: Msg, message: WireMessage, disposition: Disposition): Promise<void> {
    switch (disposition.kind) {
      case 'ack':
        this.#ack(msg, '+ACK');
        this.#transport.lostDeliveries.settled(msg.reply ?? '');
        return;
      case 'retry': {
        const delayMs = Math.max(0, Math.floor(disposition.delayMs));
        await this.#nak(msg, delayMs > 0 ? `-NAK ${JSON.stringify({ delay: nanos(delayMs) })}` : '-NAK');
        return;
      }
      case 'dead':
        try {
          await this.#transport.deadLetter(this.#spec.queue, message, disposition.reason);
        } catch (error) {
          this.#transport.report(error, `Cannot dead-letter a message of ${this.#spec.queue}; it will be redelivered`);
          await this.#nak(msg, `-NAK ${JSON.stringify({ delay: nanos(5_000) })}`);
          return;
        }
        // Term, not ack: JetStream records it as given up on and never redelivers it.
        this.#ack(msg, '+TERM');
        this.#transport.lostDeliveries.settled(msg.reply ?? '');
        return;
    }
  }

  /** A NAK is recorded before it is sent, so its redelivery does not count it as a lost delivery. */
  async #nak(msg: Msg, payload: string): Promise<void> {
    if (msg.reply) await this.#transport.lostDeliveries.nakked(msg.reply);
    this.#ack(msg, payload);
  }

  #ack(msg: Msg, payload: string): void {
    if (!msg.reply) return;
    try {
      this.#transport.connection().publish(msg.reply, payload);
    } catch {
      // Closed: JetStream redelivers after ack wait.
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Helpers

/**
 * Durable consumer names may not contain dots. `market.order_created` → `market_order_created_<hash>`: readable,
 * and the hash of the original name keeps `a.b_c` and `a_b.c` apart.
 */
export function durableName(subscription: string): string {
  const readable = subscription.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 120);
  const hash = createHash('sha256').update(subscription).digest('hex').slice(0, 10);
  return `${readable}_${hash}`;
}

/** `$JS.ACK.<stream>.<consumer>.<delivered>...` or, with domain and account, `$JS.ACK.<d>.<a>.<stream>.<consumer>.<delivered>...`. */
function deliveryCount(reply: string): number {
  const tokens = reply.split('.');
  const count = Number(tokens.length === 9 ? tokens[4] : tokens[6]);
  return Number.isInteger(count) && count > 0 ? count : 1;
}

/** A request taken off the wire, and when (epoch ms on this node's clock). */
interface Received {
  msg: Msg;
  receivedAt: number;
}

/**
 * The headers of a request handed back after it waited `waitedMs` here: its timeout-ms reduced by that
 * wait; `null` when nothing is left of it. A request without timeout-ms (from an older node, with an
 * absolute deadline, or none) goes back as it came.
 */
function handedBackHeaders(headers: MsgHdrs | undefined, waitedMs: number): MsgHdrs | undefined | null {
  const raw = headers?.get(Header.timeoutMs);
  if (!headers || !raw) return headers;
  const timeoutMs = Number(raw);
  if (!Number.isFinite(timeoutMs)) return headers;
  const left = timeoutMs - waitedMs;
  if (left <= 0) return null;
  const out = createHeaders();
  for (const [key, values] of headers) {
    if (key.toLowerCase() === Header.timeoutMs) continue;
    for (const value of values) out.append(key, value);
  }
  out.set(Header.timeoutMs, encodeTimeoutMs(left));
  return out;
}

/** NATS headers, or none at all for an empty set: a message with no header block is cheaper to send and read. */
function toNatsHeaders(headers: Record<string, string>): MsgHdrs | undefined {
  let out: MsgHdrs | undefined;
  for (const key in headers) {
    const value = headers[key]!;
    out ??= createHeaders();
    try {
      out.set(key, value);
    } catch (error) {
      throw new ChassisError('BAD_MESSAGE', `Header "${key}" cannot be sent over NATS: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
  return out;
}

/** Messages from outside (`nats pub` without headers) have none: they read as `{}`. */
function fromNatsHeaders(headers: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [key, values] of headers) {
    if (HIDDEN_HEADERS.has(key.toLowerCase())) continue;
    const value = values[0];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function splitClaim(claim: string): [string, string] {
  const slash = claim.indexOf('/');
  if (slash <= 0) throw new ChassisError('BAD_MESSAGE', `Unreadable ${CLAIM_HEADER} header "${claim}"`);
  return [claim.slice(0, slash), claim.slice(slash + 1)];
}

const TOKEN = /^[^\s.*>]+$/;

function checkToken(kind: string, value: string): void {
  if (!TOKEN.test(value)) {
    throw new ChassisError(
      'VALIDATION',
      `Invalid ${kind} name "${value}" for NATS: it must be non-empty, without spaces, ".", "*" or ">"`,
    );
  }
}

function checkSubject(kind: string, value: string): void {
  if (!value.split('.').every((token) => TOKEN.test(token))) {
    throw new ChassisError(
      'VALIDATION',
      `Invalid ${kind} name "${value}" for NATS: use dot-separated words without spaces, "*" or ">"`,
    );
  }
}

function closedError(): ChassisError {
  return new ChassisError('TRANSPORT', 'The NATS transport is closed');
}

function toTransportError(error: unknown, context: string): ChassisError {
  if (error instanceof ChassisError) return error;
  return new ChassisError('TRANSPORT', `${context}: ${messageOf(error)}`, { cause: error });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isApiCode(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

function isNoResponders(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e.name === 'NoResponders' || /no responders/i.test(e.message)) return true;
  }
  return false;
}

/** 250 ms, 500 ms, 1 s, 2 s, then 4 s, each with up to 50% jitter. */
function backoff(attempt: number): number {
  const base = Math.min(4_000, 250 * 2 ** attempt);
  return base + Math.floor(Math.random() * base * 0.5);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function unsubscribe(sub: Subscription): Promise<void> {
  if (sub.isClosed()) return;
  await withTimeout(sub.drain(), 5_000).catch(() => sub.unsubscribe());
}
