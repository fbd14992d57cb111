/**
 * The one interface every transport implements. Transports move bytes and headers; they know nothing of
 * contracts, validation or handlers. The node runtime decides what a message means and what happens
 * to it (ack, retry later, dead-letter), and a transport carries that out the way its broker does.
 *
 * Naming, shared by every transport so a topology reads the same on each:
 * - RPC for service `orders`, action `sellShares`: NATS subject `rpc.orders.sellShares`, queue group
 *   `orders`; RabbitMQ queue `rpc-orders`, routing key `orders.sellShares`.
 * - Event `orders.order_created` consumed by handler `order_created` of service `market`: one durable
 *   subscription named `market.order_created` shared by every instance of `market`
 *   (RabbitMQ quorum queue `evtq-orders-order_created--market.order_created`).
 * - Dead letters are kept per subscription (`market.order_created`) or per RPC service (`rpc.orders`).
 */

/** Headers and an encoded body: what crosses a broker. */
export interface WireMessage {
  headers: Record<string, string>;
  body: Uint8Array;
}

export interface RpcRequest {
  /** The action's short name, e.g. `sellShares`. */
  action: string;
  message: WireMessage;
  /**
   * Epoch ms on this node's clock when the transport took the request off the wire, where it then held it
   * before handing it over (waiting for a free slot): the request's `timeout-ms` counts from here. Default:
   * when the handler is called.
   */
  receivedAt?: number;
}

/**
 * A request's reply. `sent`, when present, is the handler's work that waits for the reply to be on its way
 * (the runtime ends the server span and records the metrics there): the transport calls it exactly once,
 * right after handing the reply to its connection, or after dropping it (no reply wanted, or it could not
 * be sent). The caller does not wait for the server's bookkeeping.
 */
export interface RpcReply extends WireMessage {
  sent?(): void;
}

/**
 * Answers a request: with its reply itself when it has it at once (a handler that needs not wait, so the
 * transport can answer in the same turn, with no promise), or a promise of it. It never throws: errors are
 * encoded into the reply by the runtime.
 */
export type RpcHandler = (request: RpcRequest) => RpcReply | Promise<RpcReply>;

export interface EventDelivery {
  message: WireMessage;
  /** 1 on first delivery, 2 on the first redelivery, and so on. */
  attempt: number;
  /**
   * Of the earlier deliveries, those that ended with no disposition (the consumer's process or connection
   * died mid-handler), as the broker counts them. The runtime dead-letters a message that keeps killing its
   * consumer by this count; a transport whose broker cannot tell a lost delivery from a requested retry
   * leaves it out.
   */
  unsettled?: number;
}

/** What the runtime decided to do with a delivered event. */
export type Disposition = { kind: 'ack' } | { kind: 'retry'; delayMs: number } | { kind: 'dead'; reason: string };

/** Handles one event delivery. It never throws: failures are expressed as a disposition. */
export type EventHandler = (delivery: EventDelivery) => Promise<Disposition>;

export interface EventBinding {
  /** The event's full name, e.g. `orders.order_created`. */
  event: string;
  /** The subscribing service, e.g. `market`. */
  service: string;
  /** The handler's name inside that service, e.g. `order_created`. */
  handler: string;
}

export interface ServeOptions {
  /** Requests handled at once by this instance; the rest wait in the broker. */
  concurrency: number;
  /**
   * This instance alone serves the name, and its queue goes with it (RabbitMQ: an exclusive, auto-deleted
   * queue rather than a durable one): for a name that addresses one node, such as its ops API.
   */
  exclusive?: boolean;
}

export interface SubscribeOptions {
  /** Deliveries handled at once by this instance (RabbitMQ prefetch, JetStream max ack pending per instance). */
  prefetch: number;
}

export interface RequestOptions {
  /**
   * How long to wait for the reply. The runtime derives it from the call's deadline, and sends the same
   * remaining time in the request's `timeout-ms` header.
   */
  timeoutMs: number;
}

export interface DeadLetter {
  message: WireMessage;
  /** Why it was dead-lettered, e.g. `handler failed 5 times: <message>` or `undecodable body`. */
  reason: string;
  /** The subscription or RPC queue it came from, e.g. `market.order_created` or `rpc.orders`. */
  queue: string;
  /** Epoch ms. */
  at: number;
}

/** A running consumer. */
export interface Consumer {
  /**
   * Stops taking new messages, waits for the ones being handled to finish (acking them), and returns
   * what was fetched but not started to the broker so another instance gets it.
   */
  stop(): Promise<void>;
}

export type TransportStatus = 'connected' | 'disconnected' | 'reconnecting' | 'closed';

/** An event of `Transport.publishInOrder`. */
export interface OrderedEvent {
  event: string;
  message: WireMessage;
}

/** What `Transport.publishInOrder` did: the first `stored` events are stored; `error` is the next one's. */
export interface PublishedInOrder {
  stored: number;
  error?: unknown;
}

export interface Transport {
  /** `memory`, `nats` or `amqp`. */
  readonly kind: string;
  connect(): Promise<void>;
  /** Closes the connection; requests still waiting fail with a `TRANSPORT` error. */
  close(): Promise<void>;

  /**
   * Sends a request to one instance of `service` and waits for its reply.
   * Fails with `NO_SERVICE` at once where the broker can tell nobody serves it, `TIMEOUT` when the
   * reply does not come in time, `TRANSPORT` (retryable) when the connection is lost meanwhile.
   */
  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage>;
  /** Serves every action of `service`; instances of one service compete for requests. */
  serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer>;

  /** Publishes an event; resolves once the broker has it stored (confirmed). */
  publish(event: string, message: WireMessage): Promise<void>;
  /**
   * Publishes events in the order given, pipelined: sent together, their confirmations awaited together,
   * where `publish` one after another waits a round trip for each (an outbox relay's batch). Resolves to how
   * many of them, from the first, are stored, and the error of the one after them if one failed (the events
   * after that one were not confirmed: they may be stored, and are published again — deduplicated by their
   * id). A transport offers it only when the broker stores events in the order they were sent, so that an
   * event stored means every event before it in the list was stored first, as with `publish` in turn.
   */
  publishInOrder?(events: readonly OrderedEvent[]): Promise<PublishedInOrder>;
  /**
   * Consumes an event through the durable subscription `<service>.<handler>`, shared by all instances
   * of that service. The subscription outlives the process: events published while no instance runs
   * wait for the next one.
   */
  subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer>;

  /**
   * Messages waiting in a durable subscription: published and not yet handled (delivered and not
   * acknowledged included where the broker counts them). What queue-depth alerts watch.
   */
  backlog(binding: EventBinding): Promise<number>;

  /**
   * Optional, for a transport that sees all the work of the system it carries (the memory transport: one
   * process): undefined while no event delivery has been pending (queued or being handled) over
   * `maxDelayMs`, else a
   * promise that resolves once none has — to `done`, to call when the admitted work is over — or rejects
   * after `waitMs`. The node holds calls from outside with it (`maxEventDelayMs`), so that new work waits
   * for the work already accepted.
   */
  admit?(maxDelayMs: number, waitMs: number): Promise<() => void> | undefined;

  /** Stores a message that cannot be handled (e.g. garbage bytes on an RPC queue). */
  deadLetter(queue: string, message: WireMessage, reason: string): Promise<void>;
  /** Reads, without removing, up to `limit` dead letters of a queue, oldest first. */
  readDeadLetters(queue: string, limit?: number): Promise<DeadLetter[]>;
  /** How many dead letters a queue holds. */
  countDeadLetters(queue: string): Promise<number>;
  /**
   * Deletes dead letters of a queue: those whose message `id` header is one of `ids`, or every one
   * (`'all'`). Resolves with how many were deleted.
   */
  removeDeadLetters(queue: string, ids: readonly string[] | 'all'): Promise<number>;

  /** Fire-and-forget fan-out to every listening node (not stored): used for node heartbeats. */
  broadcast(topic: string, message: WireMessage): Promise<void>;
  listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer>;

  /** Tells about connection changes; returns a function that stops telling. */
  onStatus(listener: (status: TransportStatus) => void): () => void;
}

/** The name of the durable subscription of an event binding. */
export function subscriptionName(binding: EventBinding): string {
  return `${binding.service}.${binding.handler}`;
}

/** The dead-letter queue name of a service's RPC requests. */
export function rpcQueueName(service: string): string {
  return `rpc.${service}`;
}
