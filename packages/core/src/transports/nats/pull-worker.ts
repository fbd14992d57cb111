import { createInbox, type Msg, nanos, type Subscription } from '@nats-io/transport-node';
import { toChassisError, transportError } from '../../errors.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { sleep, withTimeout } from '../shared/timing.ts';
import type { Disposition, EventHandler, WireMessage } from '../transport.ts';
import { type ClaimCheck, EMPTY } from './claim-check.ts';
import type { DeadLetters } from './dead-letters.ts';
import { fromNatsHeaders } from './headers.ts';
import type { LostDeliveries } from './lost-deliveries.ts';
import { RECOVERY_BACKOFF } from './options.ts';
import type { NatsSession } from './session.ts';
import type { ConsumerSpec, Topology } from './topology.ts';

const PULL_EXPIRES_MS = 30_000;
const PULL_HEARTBEAT_MS = 5_000;

/** What a worker hands its deliveries to: claimed bodies, its consumer when it vanished, dead letters. */
export interface PullWorkerParts {
  claims: ClaimCheck;
  topology: Topology;
  deadLetters: DeadLetters;
  /** NAK counts, so a redelivery can tell deliveries lost with their consumer from requested retries. */
  lostDeliveries: LostDeliveries;
}

/**
 * Pulls from one durable consumer for one instance, keeping `fetched-and-unfinished` at most `prefetch`:
 * a pull request only asks for the free slots, so nothing waits here unstarted while another instance idles.
 * Pull requests live on the server, so they are re-issued after a reconnect, when the server reports them
 * over (408, 409), or when their heartbeats stop.
 */
export class PullWorker {
  readonly #session: NatsSession;
  readonly #parts: PullWorkerParts;
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
  /** Messages being handled: what the progress sweep keeps from redelivery. */
  readonly #handling = new Set<Msg>();
  /** The progress sweep, running while messages are handled (and one period after the last). */
  #progress: NodeJS.Timeout | undefined;
  #idle: (() => void) | undefined;
  #stopping = false;
  #recovering = false;

  constructor(session: NatsSession, parts: PullWorkerParts, spec: ConsumerSpec, handler: EventHandler) {
    this.#session = session;
    this.#parts = parts;
    this.#spec = spec;
    this.#handler = handler;
  }

  start(): void {
    const nc = this.#session.connection();
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
    if (!this.#session.closed) {
      this.#session.outgoing.flush();
      await withTimeout(this.#session.connection().flush(), 5_000).catch(() => undefined);
    }
  }

  /** The connection is going away: no acks can be sent, JetStream redelivers after ack wait. */
  abandon(): void {
    this.#stopping = true;
    this.#clearTimers();
    clearInterval(this.#progress);
    this.#progress = undefined;
    this.#forgetRequests();
  }

  #clearTimers(): void {
    clearInterval(this.#watchdog);
    clearTimeout(this.#retryPull);
  }

  /** How often the messages being handled are told to the server as still in progress. */
  #progressPeriodMs(): number {
    return Math.max(500, this.#session.settings.ackWaitMs / 2);
  }

  /**
   * Long handlers keep their delivery: JetStream would otherwise hand it to another instance after ack
   * wait. One timer per worker tells every message being handled in progress (`+WPI`) once a period,
   * instead of a timer made and cleared for each message: none goes longer than a period (half of ack
   * wait) without word, as before; a message that started just before a sweep is told early, which costs
   * one small publish. The sweep stops once it finds nothing to do, so an idle worker runs no timer for it.
   */
  #startProgress(msg: Msg): void {
    this.#handling.add(msg);
    // Kept while stopping: the messages in flight then still finish, however long they take.
    if (this.#progress !== undefined) return;
    const periodMs = this.#progressPeriodMs();
    this.#progress = setInterval(() => {
      if (this.#handling.size === 0) {
        clearInterval(this.#progress);
        this.#progress = undefined;
        return;
      }
      for (const handled of this.#handling) this.#ack(handled, '+WPI');
    }, periodMs);
    this.#progress.unref();
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
    if (this.#stopping || this.#recovering || !this.#session.connected) return;
    const want = this.#spec.prefetch - this.#inFlight - this.#outstanding;
    // While a request is open, top up only by a sizeable batch rather than one pull per finished message.
    if (want <= 0 || (this.#outstanding > 0 && want < Math.ceil(this.#spec.prefetch / 2))) return;
    const id = (++this.#requestSeq).toString(36);
    if (this.#requests.size === 0) this.#lastHeard = Date.now();
    this.#requests.set(id, { batch: want, expiresAt: Date.now() + PULL_EXPIRES_MS + PULL_HEARTBEAT_MS });
    this.#outstanding += want;
    const { stream, durable } = this.#spec;
    try {
      // With the acks of this turn, in one write (see `#ack`).
      this.#session.outgoing.publish(
        this.#session.connection(),
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
        Buffer.from(
          JSON.stringify({ batch: want, expires: nanos(PULL_EXPIRES_MS), idle_heartbeat: nanos(PULL_HEARTBEAT_MS) }),
        ),
        { reply: `${this.#inbox}.${id}` },
        (error) => {
          this.#closeRequest(id, want);
          this.#session.report(error, `Cannot pull from ${durable}`);
        },
        false,
      );
    } catch (error) {
      this.#closeRequest(id, want);
      this.#session.report(error, `Cannot pull from ${durable}`);
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
      this.#session.report(error, `The pull subscription of ${this.#spec.durable} failed`);
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
        this.#session.report(
          transportError(`${code} ${description}`),
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
    for (let attempt = 0; !this.#stopping && !this.#session.closed; attempt++) {
      await sleep(backoffDelay(attempt + 1, RECOVERY_BACKOFF));
      if (this.#stopping || !this.#session.connected) continue;
      try {
        await this.#parts.topology.ensureConsumer(this.#spec);
        break;
      } catch (error) {
        if (attempt % 10 === 9) this.#session.report(error, `Still cannot restore the consumer ${this.#spec.durable}`);
      }
    }
    this.#recovering = false;
    this.#pull();
  }

  async #handle(msg: Msg): Promise<void> {
    this.#startProgress(msg);
    try {
      let message: WireMessage;
      try {
        message = await this.#parts.claims.incoming(msg, false);
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
        const unsettled = attempt > 1 ? await this.#parts.lostDeliveries.unsettled(msg.reply ?? '', attempt) : 0;
        disposition = await this.#handler({ message, attempt, unsettled });
      } catch (error) {
        // Handlers do not throw by contract; if one does, try again later rather than lose the event.
        this.#session.report(error, `The handler of ${this.#spec.queue} threw`);
        disposition = { kind: 'retry', delayMs: 1_000 };
      }
      await this.#dispose(msg, message, disposition);
    } finally {
      this.#handling.delete(msg);
    }
  }

  async #dispose(msg: Msg, message: WireMessage, disposition: Disposition): Promise<void> {
    switch (disposition.kind) {
      case 'ack':
        this.#ack(msg, '+ACK');
        this.#parts.lostDeliveries.settled(msg.reply ?? '');
        return;
      case 'retry': {
        const delayMs = Math.max(0, Math.floor(disposition.delayMs));
        await this.#nak(msg, delayMs > 0 ? `-NAK ${JSON.stringify({ delay: nanos(delayMs) })}` : '-NAK');
        return;
      }
      case 'dead':
        try {
          await this.#parts.deadLetters.add(this.#spec.queue, message, disposition.reason);
        } catch (error) {
          this.#session.report(error, `Cannot dead-letter a message of ${this.#spec.queue}; it will be redelivered`);
          await this.#nak(msg, `-NAK ${JSON.stringify({ delay: nanos(5_000) })}`);
          return;
        }
        // Term, not ack: JetStream records it as given up on and never redelivers it.
        this.#ack(msg, '+TERM');
        this.#parts.lostDeliveries.settled(msg.reply ?? '');
        return;
    }
  }

  /** A NAK is recorded before it is sent, so its redelivery does not count it as a lost delivery. */
  async #nak(msg: Msg, payload: string): Promise<void> {
    if (msg.reply) await this.#parts.lostDeliveries.nakked(msg.reply);
    this.#ack(msg, payload);
  }

  /**
   * Handed to the session's batch, not written at the end of its microtask: a handler's ack leaves with
   * the acks, pulls, requests, replies and JetStream publishes of the same turn of the event loop in one
   * socket write, where each went in a write of its own (a write is a syscall, and on a VM a costly one).
   * Nothing waits for an ack but the server's ack wait, seconds away.
   */
  #ack(msg: Msg, payload: string): void {
    if (!msg.reply) return;
    try {
      this.#session.outgoing.publish(
        this.#session.connection(),
        msg.reply,
        ackBytes(payload),
        undefined,
        undefined,
        false,
      );
    } catch {
      // Closed: JetStream redelivers after ack wait.
    }
  }
}

const ACK = Buffer.from('+ACK');
const IN_PROGRESS = Buffer.from('+WPI');

/** The ack's body: the two frequent ones made once. */
function ackBytes(payload: string): Uint8Array {
  if (payload === '+ACK') return ACK;
  if (payload === '+WPI') return IN_PROGRESS;
  return Buffer.from(payload);
}

/** `$JS.ACK.<stream>.<consumer>.<delivered>...` or, with domain and account, `$JS.ACK.<d>.<a>.<stream>.<consumer>.<delivered>...`. */
function deliveryCount(reply: string): number {
  const tokens = reply.split('.');
  const count = Number(tokens.length === 9 ? tokens[4] : tokens[6]);
  return Number.isInteger(count) && count > 0 ? count : 1;
}
