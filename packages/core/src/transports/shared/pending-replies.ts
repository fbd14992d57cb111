import { ChassisError, timeoutError } from '../../errors.ts';
import { CallDeadlines, Due } from './deadlines.ts';
import { asTransportError } from './errors.ts';

/** A request waiting for its reply, as handed back by `take`. */
export interface PendingReply<T> {
  readonly service: string;
  readonly action: string;
  readonly resolve: (reply: T) => void;
  readonly reject: (error: ChassisError) => void;
}

/** A waiting request: its own link in the deadline list, so waiting allocates no timer. */
class Entry<T> extends Due implements PendingReply<T> {
  readonly deadline: number;
  readonly owner: PendingReplies<T>;
  readonly token: string;
  readonly service: string;
  readonly action: string;
  readonly timeoutMs: number;
  readonly resolve: (reply: T) => void;
  readonly reject: (error: ChassisError) => void;

  constructor(
    owner: PendingReplies<T>,
    token: string,
    service: string,
    action: string,
    timeoutMs: number,
    resolve: (reply: T) => void,
    reject: (error: ChassisError) => void,
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
    this.reject(timeoutError({ service: this.service, action: this.action, timeoutMs: this.timeoutMs }));
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
 */
export class PendingReplies<T> {
  readonly #pending = new Map<string, Entry<T>>();
  readonly #deadlines = new CallDeadlines();
  #sequence = 0;

  /** Requests still waiting. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request, then calls `send` with its token to put it on the wire. The promise settles with
   * the reply given to `resolve(token, …)`, or rejects: `TIMEOUT` after `timeoutMs`, the error `send`
   * throws or rejects with (a `ChassisError` as it is, anything else as `TRANSPORT`), or what `failAll` says.
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
    entry?.reject(asTransportError(error, `Cannot send the request to ${entry.service}.${entry.action}`));
  }

  /** Takes the request out and stops its timer; undefined when it was settled already (timed out, say). */
  take(token: string): PendingReply<T> | undefined {
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
  failAll(error: ChassisError | ((pending: PendingReply<T>) => ChassisError)): void {
    for (const token of [...this.#pending.keys()]) {
      const entry = this.take(token);
      if (entry) entry.reject(error instanceof ChassisError ? error : error(entry));
    }
  }
}
