import { type ChassisError, timeoutError } from '../../errors.ts';
import { CallDeadlines, Due } from './deadlines.ts';
import { asTransportError } from './errors.ts';

/** Which request waits, and for how long at most. */
export interface RequestWaiting {
  readonly service: string;
  readonly action: string;
  readonly timeoutMs: number;
}

/** A request waiting for its reply, as handed back by `take`. */
export interface PendingReply<T, E extends Error = ChassisError> extends RequestWaiting {
  readonly resolve: (reply: T) => void;
  readonly reject: (error: E) => void;
}

/**
 * What a request's failures read as: `ChassisError`s for the transports' requests (`TIMEOUT`, `TRANSPORT`);
 * a client library's own errors for a user that must keep reading as that library (JetStream's PubAcks).
 */
export interface ReplyFailures<E extends Error> {
  /** No reply came within `timeoutMs`. */
  timedOut(request: RequestWaiting): E;
  /** Sending the request failed, with `error`. */
  notSent(request: RequestWaiting, error: unknown): E;
}

const asChassisErrors: ReplyFailures<ChassisError> = {
  timedOut: ({ service, action, timeoutMs }) => timeoutError({ service, action, timeoutMs }),
  notSent: ({ service, action }, error) => asTransportError(error, `Cannot send the request to ${service}.${action}`),
};

/** A waiting request: its own link in the deadline list, so waiting allocates no timer. */
class Entry<T, E extends Error> extends Due implements PendingReply<T, E> {
  readonly deadline: number;
  readonly owner: PendingReplies<T, E>;
  readonly token: string;
  readonly service: string;
  readonly action: string;
  readonly timeoutMs: number;
  readonly resolve: (reply: T) => void;
  readonly reject: (error: E) => void;

  constructor(
    owner: PendingReplies<T, E>,
    token: string,
    service: string,
    action: string,
    timeoutMs: number,
    resolve: (reply: T) => void,
    reject: (error: E) => void,
  ) {
    super();
    this.owner = owner;
    this.token = token;
    this.service = service;
    this.action = action;
    this.timeoutMs = timeoutMs;
    this.resolve = resolve;
    this.reject = reject;
    this.deadline = Date.now() + Math.max(0, timeoutMs);
  }

  expire(): void {
    if (this.owner.take(this.token) === undefined) return;
    this.reject(this.owner.failures.timedOut(this));
  }
}

/**
 * The requests of one node waiting for their replies, told apart by a token the transport sends along
 * (the last token of a NATS reply subject, an AMQP correlation id), so one reply subscription serves every
 * request — like nats.js's `muxsubscription`. Each request is settled exactly once: by its reply, by its
 * timeout (`TIMEOUT`), by failing to be sent, or by `failAll` when the connection or transport goes away.
 * Their timeouts share one timer (`CallDeadlines`): with one request at a time, a timer each was set and
 * cleared on every request, and each clear emptied Node's timer list for that duration and each set made
 * it again.
 *
 * Failures read as `ChassisError`s unless the owner says otherwise (`failures`).
 */
export class PendingReplies<T, E extends Error = ChassisError> {
  readonly #pending = new Map<string, Entry<T, E>>();
  readonly #deadlines = new CallDeadlines();
  #sequence = 0;
  /** What a timeout or a failed send reads as. */
  readonly failures: ReplyFailures<E>;

  constructor(...failures: ChassisError extends E ? [failures?: ReplyFailures<E>] : [failures: ReplyFailures<E>]) {
    // Only `E = ChassisError` may leave `failures` out (the rest parameter's type says so), so the default fits E.
    this.failures = failures[0] ?? (asChassisErrors as unknown as ReplyFailures<E>);
  }

  /** Requests still waiting. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request, then calls `send` with its token to put it on the wire. The promise settles with
   * the reply given to `resolve(token, …)`, or rejects: `TIMEOUT` after `timeoutMs`, the error `send`
   * throws or rejects with (a `ChassisError` as it is, anything else as `TRANSPORT`), or what `failAll` says
   * (timeouts and failed sends as `failures` reads them, when given).
   */
  open(service: string, action: string, timeoutMs: number, send: (token: string) => void | Promise<void>): Promise<T> {
    const token = (++this.#sequence).toString(36);
    return new Promise<T>((resolve, reject) => {
      const entry = new Entry(this, token, service, action, timeoutMs, resolve, reject);
      this.#pending.set(token, entry);
      this.#deadlines.add(entry);
      try {
        const sending = send(token);
        if (sending) sending.catch((error: unknown) => this.fail(token, error));
      } catch (error) {
        this.fail(token, error);
      }
    });
  }

  /** Fails a request whose sending failed: in `send` itself, or later (a batch handed over at the end of the turn). */
  fail(token: string, error: unknown): void {
    const entry = this.take(token);
    entry?.reject(this.failures.notSent(entry, error));
  }

  /** Takes the request out and stops its timer; undefined when it was settled already (timed out, say). */
  take(token: string): PendingReply<T, E> | undefined {
    const entry = this.#pending.get(token);
    if (!entry) return undefined;
    this.#pending.delete(token);
    this.#deadlines.delete(entry);
    return entry;
  }

  /** Whether the request still waits: a late step of sending can skip one that has settled meanwhile. */
  has(token: string): boolean {
    return this.#pending.has(token);
  }

  /** Settles the request with its reply; false when nothing waited for it any more. */
  resolve(token: string, reply: T): boolean {
    const entry = this.take(token);
    entry?.resolve(reply);
    return entry !== undefined;
  }

  /** Rejects every waiting request: with `error`, or with what `error` makes of each request. */
  failAll(error: E | ((pending: PendingReply<T, E>) => E)): void {
    for (const token of [...this.#pending.keys()]) {
      const entry = this.take(token);
      if (entry) entry.reject(error instanceof Error ? error : error(entry));
    }
  }
}
