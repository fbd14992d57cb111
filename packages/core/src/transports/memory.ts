import { Header } from '../envelope.ts';
import { noServiceError, transportError } from '../errors.ts';
import { PendingReplies } from './shared/pending-replies.ts';
import { StatusListeners } from './shared/status.ts';
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
 * The in-process transport: the all-in-one default. It keeps the semantics of the brokers so a system
 * behaves on one laptop as it does in production: instances of a service compete for a shared queue,
 * each subscribing service gets its own copy of an event, a failed delivery comes back after a delay,
 * dead letters are kept, and a request nobody answers in time fails with `TIMEOUT`.
 *
 * Several transports (one per node) share one `MemoryBroker`, so several nodes in one process form a
 * cluster. Queues live as long as the broker, like durable queues live as long as the server.
 */

interface Delivery<T> {
  item: T;
  attempt: number;
  /** When it was queued (performance.now()): how long it has waited tells how far behind its consumers are. */
  since: number;
  /** Its neighbours in the broker's `PendingDeliveries`, while it is listed there (event deliveries only). */
  older: Delivery<T> | undefined;
  newer: Delivery<T> | undefined;
  listed: boolean;
}

/**
 * The event deliveries not yet handled (queued or being handled) of every queue someone consumes, oldest
 * first, so that how long the oldest has been pending — how far the process is behind with the work it
 * accepted — is read in O(1) on every call from outside, however many subscriptions there are. A list
 * linked through the deliveries themselves: a delivery is appended when queued (no delivery queued later
 * is older), unlinked when handled, and a queue's are taken out while nobody consumes it and merged back
 * in by age when somebody does again (rare: a node starting or stopping).
 */
class PendingDeliveries {
  private oldest: Delivery<unknown> | undefined;
  private newest: Delivery<unknown> | undefined;

  /** How long the oldest delivery listed has been pending, in ms; 0 for none (without reading the clock). */
  delayMs(): number {
    return this.oldest === undefined ? 0 : performance.now() - this.oldest.since;
  }

  /** Lists a delivery just queued: the newest there is. */
  append(delivery: Delivery<unknown>): void {
    this.insertBefore(delivery, undefined);
  }

  /** Lists deliveries (oldest first) of a queue that has a consumer again, each where its age puts it. */
  merge(deliveries: Iterable<Delivery<unknown>>): void {
    let next = this.oldest;
    for (const delivery of deliveries) {
      if (delivery.listed) continue;
      while (next !== undefined && next.since <= delivery.since) next = next.newer;
      this.insertBefore(delivery, next);
    }
  }

  remove(delivery: Delivery<unknown>): void {
    if (!delivery.listed) return;
    delivery.listed = false;
    if (delivery.older === undefined) this.oldest = delivery.newer;
    else delivery.older.newer = delivery.newer;
    if (delivery.newer === undefined) this.newest = delivery.older;
    else delivery.newer.older = delivery.older;
    delivery.older = undefined;
    delivery.newer = undefined;
  }

  /** Links `delivery` in before `next` (at the newest end when `next` is undefined). */
  private insertBefore(delivery: Delivery<unknown>, next: Delivery<unknown> | undefined): void {
    const older = next === undefined ? this.newest : next.older;
    delivery.listed = true;
    delivery.older = older;
    delivery.newer = next;
    if (older === undefined) this.oldest = delivery;
    else older.newer = delivery;
    if (next === undefined) this.newest = delivery;
    else next.older = delivery;
  }
}

type Deliver<T> = (delivery: Delivery<T>) => Promise<void>;

interface QueueConsumer<T> {
  readonly capacity: number;
  inFlight: number;
  active: boolean;
  readonly deliver: Deliver<T>;
}

/** A queue with competing consumers, each taking up to its capacity at once. */
class MemoryQueue<T> {
  private readonly waiting: Delivery<T>[] = [];
  /** Deliveries being handled, in the order they were taken. */
  private readonly handling = new Set<Delivery<T>>();
  private readonly consumers: QueueConsumer<T>[] = [];
  private next = 0;

  private readonly isExpired: (item: T) => boolean;
  /** Told each time a delivery ends or a consumer leaves: what is pending went down. */
  private readonly settled: () => void;
  /** Where an event queue lists its deliveries not yet handled while it has consumers (admission). */
  private readonly pending: PendingDeliveries | undefined;

  constructor(
    isExpired: (item: T) => boolean = () => false,
    settled: () => void = () => undefined,
    pending?: PendingDeliveries,
  ) {
    this.isExpired = isExpired;
    this.settled = settled;
    this.pending = pending;
  }

  push(item: T, attempt = 1): void {
    const delivery: Delivery<T> = {
      item,
      attempt,
      since: performance.now(),
      older: undefined,
      newer: undefined,
      listed: false,
    };
    this.waiting.push(delivery);
    // Pending behind work in this process only while someone here consumes the queue.
    if (this.consumers.length > 0) this.pending?.append(delivery);
    this.dispatch();
  }

  get consumerCount(): number {
    return this.consumers.length;
  }

  get depth(): number {
    return this.waiting.length;
  }

  addConsumer(capacity: number, deliver: Deliver<T>): QueueConsumer<T> {
    const consumer: QueueConsumer<T> = { capacity: Math.max(1, capacity), inFlight: 0, active: true, deliver };
    this.consumers.push(consumer);
    // Its first consumer: what it holds is pending behind work in this process again. Those being handled
    // were taken before those waiting, in queue order, so this is oldest first.
    if (this.consumers.length === 1) this.pending?.merge([...this.handling, ...this.waiting]);
    this.dispatch();
    this.settled();
    return consumer;
  }

  removeConsumer(consumer: QueueConsumer<T>): void {
    consumer.active = false;
    const index = this.consumers.indexOf(consumer);
    if (index >= 0) this.consumers.splice(index, 1);
    // Nobody consumes it: what waits is for a later process, not behind work in this one.
    if (this.consumers.length === 0 && this.pending) {
      for (const delivery of this.handling) this.pending.remove(delivery);
      for (const delivery of this.waiting) this.pending.remove(delivery);
    }
    this.settled();
  }

  private pickConsumer(): QueueConsumer<T> | undefined {
    for (let i = 0; i < this.consumers.length; i++) {
      const consumer = this.consumers[(this.next + i) % this.consumers.length]!;
      if (consumer.inFlight < consumer.capacity) {
        this.next = (this.next + i + 1) % this.consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const consumer = this.pickConsumer();
      if (!consumer) return;
      const delivery = this.waiting.shift()!;
      if (this.isExpired(delivery.item)) {
        this.pending?.remove(delivery);
        continue;
      }
      consumer.inFlight++;
      this.handling.add(delivery);
      // Delivered on a later tick, as from a socket, so a handler never runs inside its caller's stack.
      setImmediate(() => {
        consumer
          .deliver(delivery)
          .catch(() => undefined)
          .finally(() => {
            consumer.inFlight--;
            this.handling.delete(delivery);
            this.pending?.remove(delivery);
            this.dispatch();
            this.settled();
          });
      });
    }
  }
}

interface PendingRequest {
  action: string;
  message: WireMessage;
  expiresAt: number;
  /** Its token among the caller's pending replies. */
  token: string;
  answer: (token: string, reply: WireMessage) => void;
}

export class MemoryBroker {
  readonly rpc = new Map<string, MemoryQueue<PendingRequest>>();
  readonly queues = new Map<string, MemoryQueue<WireMessage>>();
  /** event name → subscription names bound to it */
  readonly bindings = new Map<string, Set<string>>();
  readonly deadLetters = new Map<string, DeadLetter[]>();
  readonly listeners = new Map<string, Set<(message: WireMessage) => void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Work from outside waiting to be admitted (see `admit`), in arrival order. */
  private readonly admissions: { maxDelayMs: number; admit: () => void }[] = [];
  private readonly settled = (): void => this.admitWaiting();
  /** Every event delivery pending in a queue someone consumes, oldest first. */
  private readonly pendingEvents = new PendingDeliveries();

  rpcQueue(service: string): MemoryQueue<PendingRequest> {
    let queue = this.rpc.get(service);
    if (!queue) {
      queue = new MemoryQueue<PendingRequest>((request) => request.expiresAt <= Date.now());
      this.rpc.set(service, queue);
    }
    return queue;
  }

  eventQueue(binding: EventBinding): MemoryQueue<WireMessage> {
    const name = subscriptionName(binding);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new MemoryQueue<WireMessage>(undefined, this.settled, this.pendingEvents);
      this.queues.set(name, queue);
      const bound = this.bindings.get(binding.event) ?? new Set();
      bound.add(name);
      this.bindings.set(binding.event, bound);
    }
    return queue;
  }

  /**
   * How long the oldest event delivery not yet handled has been pending, in ms, over every subscription
   * someone consumes. Every node on the broker is in this process: this is how far the process is
   * behind with the work it accepted.
   */
  eventDelayMs(): number {
    return this.pendingEvents.delayMs();
  }

  /**
   * Undefined (go on at once) while no event delivery has been pending over `maxDelayMs` and nobody else waits
   * to be admitted; else a promise that resolves, in the order the waiters came, once none has — or
   * rejects if `waitMs` pass first. It resolves to `done`, to call when the admitted work is over.
   *
   * Waiters go in one at a time — one each time a delivery ends or admitted work is done — not all at
   * once, which would put them on the queues together, each behind the others' work; the work admitted
   * before a waiter always ends, so none is stranded.
   */
  admit(maxDelayMs: number, waitMs: number): Promise<() => void> | undefined {
    if (this.admissions.length === 0 && this.eventDelayMs() <= maxDelayMs) return undefined;
    return new Promise<() => void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.admissions.indexOf(waiter);
        if (index >= 0) this.admissions.splice(index, 1);
        reject(new Error(`not admitted within ${waitMs} ms`));
      }, waitMs);
      const waiter = {
        maxDelayMs,
        admit: () => {
          clearTimeout(timer);
          resolve(this.settled);
        },
      };
      this.admissions.push(waiter);
      this.admitWaiting();
    });
  }

  /** Lets the next waiter in, if the oldest delivery pending has not been pending too long. */
  private admitWaiting(): void {
    const next = this.admissions[0];
    if (next === undefined || this.eventDelayMs() > next.maxDelayMs) return;
    this.admissions.shift();
    next.admit();
  }

  later(delayMs: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, delayMs);
    this.timers.add(timer);
  }

  addDeadLetter(queue: string, message: WireMessage, reason: string): void {
    const list = this.deadLetters.get(queue) ?? [];
    list.push({ message, reason, queue, at: Date.now() });
    this.deadLetters.set(queue, list);
  }
}

/** The broker every memory transport uses unless given its own: one process, one cluster. */
export const defaultMemoryBroker = new MemoryBroker();

export interface MemoryTransportOptions {
  broker?: MemoryBroker;
}

export function memoryTransport(options: MemoryTransportOptions = {}): Transport {
  return new MemoryTransport(options.broker ?? defaultMemoryBroker);
}

class MemoryTransport implements Transport {
  readonly kind = 'memory';
  private readonly status = new StatusListeners('disconnected');
  private readonly pending = new PendingReplies<WireMessage>();
  /** Bound once: every request carries it back to the caller's pending replies. */
  private readonly answer = (token: string, reply: WireMessage): void => {
    this.pending.resolve(token, reply);
  };
  private readonly consumers = new Set<Consumer>();

  private readonly broker: MemoryBroker;

  constructor(broker: MemoryBroker) {
    this.broker = broker;
  }

  async connect(): Promise<void> {
    this.status.set('connected');
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((consumer) => consumer.stop()));
    this.pending.failAll(transportError('The memory transport was closed while the request waited'));
    this.status.set('closed');
  }

  private ensureOpen(): void {
    if (this.status.status !== 'connected') {
      throw transportError(`The memory transport is ${this.status.status}; call connect() first`);
    }
  }

  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    this.ensureOpen();
    const queue = this.broker.rpc.get(service);
    if (!queue || queue.consumerCount === 0) {
      return Promise.reject(noServiceError({ service, action }));
    }
    return this.pending.open(service, action, options.timeoutMs, (token) =>
      queue.push({ action, message, expiresAt: Date.now() + options.timeoutMs, token, answer: this.answer }),
    );
  }

  async serve(service: string, handler: RpcHandler, options: ServeOptions): Promise<Consumer> {
    this.ensureOpen();
    const queue = this.broker.rpcQueue(service);
    const inFlight = new Set<Promise<void>>();
    const consumer = queue.addConsumer(options.concurrency, async ({ item }) => {
      const work = Promise.resolve(handler({ action: item.action, message: item.message })).then((reply) => {
        try {
          item.answer(item.token, reply);
        } finally {
          reply.sent?.();
        }
      });
      inFlight.add(work);
      try {
        await work;
      } finally {
        inFlight.delete(work);
      }
    });
    return this.track(async () => {
      queue.removeConsumer(consumer);
      await Promise.allSettled([...inFlight]);
    });
  }

  async publish(event: string, message: WireMessage): Promise<void> {
    this.ensureOpen();
    for (const name of this.broker.bindings.get(event) ?? []) this.broker.queues.get(name)?.push(message);
  }

  async subscribe(binding: EventBinding, handler: EventHandler, options: SubscribeOptions): Promise<Consumer> {
    this.ensureOpen();
    const queue = this.broker.eventQueue(binding);
    const name = subscriptionName(binding);
    const inFlight = new Set<Promise<Disposition>>();
    const consumer = queue.addConsumer(options.prefetch, async ({ item, attempt }) => {
      const work = handler({ message: item, attempt });
      inFlight.add(work);
      let disposition: Disposition;
      try {
        disposition = await work;
      } catch {
        // A handler must not throw; if one does, the message is not lost: it comes back.
        disposition = { kind: 'retry', delayMs: 1000 };
      } finally {
        inFlight.delete(work);
      }
      if (disposition.kind === 'retry') {
        this.broker.later(disposition.delayMs, () => queue.push(item, attempt + 1));
      } else if (disposition.kind === 'dead') {
        this.broker.addDeadLetter(name, item, disposition.reason);
      }
    });
    return this.track(async () => {
      queue.removeConsumer(consumer);
      await Promise.allSettled([...inFlight]);
    });
  }

  async backlog(binding: EventBinding): Promise<number> {
    return this.broker.eventQueue(binding).depth;
  }

  admit(maxDelayMs: number, waitMs: number): Promise<() => void> | undefined {
    return this.broker.admit(maxDelayMs, waitMs);
  }

  async deadLetter(queue: string, message: WireMessage, reason: string): Promise<void> {
    this.broker.addDeadLetter(queue, message, reason);
  }

  async readDeadLetters(queue: string, limit = 100): Promise<DeadLetter[]> {
    return (this.broker.deadLetters.get(queue) ?? []).slice(0, limit);
  }

  async countDeadLetters(queue: string): Promise<number> {
    return this.broker.deadLetters.get(queue)?.length ?? 0;
  }

  async removeDeadLetters(queue: string, ids: readonly string[] | 'all'): Promise<number> {
    const letters = this.broker.deadLetters.get(queue) ?? [];
    const wanted = ids === 'all' ? undefined : new Set(ids);
    const kept = wanted ? letters.filter((letter) => !wanted.has(letter.message.headers[Header.id] ?? '')) : [];
    this.broker.deadLetters.set(queue, kept);
    return letters.length - kept.length;
  }

  async broadcast(topic: string, message: WireMessage): Promise<void> {
    this.ensureOpen();
    for (const listener of this.broker.listeners.get(topic) ?? []) {
      setImmediate(() => listener(message));
    }
  }

  async listen(topic: string, handler: (message: WireMessage) => void): Promise<Consumer> {
    this.ensureOpen();
    const set = this.broker.listeners.get(topic) ?? new Set();
    set.add(handler);
    this.broker.listeners.set(topic, set);
    return this.track(async () => {
      set.delete(handler);
    });
  }

  onStatus(listener: (status: TransportStatus) => void): () => void {
    return this.status.add(listener);
  }

  private track(stop: () => Promise<void>): Consumer {
    let stopping: Promise<void> | undefined;
    const consumer: Consumer = {
      stop: () => {
        stopping ??= stop().finally(() => this.consumers.delete(consumer));
        return stopping;
      },
    };
    this.consumers.add(consumer);
    return consumer;
  }
}
