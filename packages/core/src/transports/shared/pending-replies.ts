import { ChassisError, timeoutError } from '../../errors.ts';
import { asTransportError } from './errors.ts';

/** A request waiting for its reply, as handed back by `take`. */
export interface PendingReply<T> {
  readonly service: string;
  readonly action: string;
  readonly resolve: (reply: T) => void;
  readonly reject: (error: ChassisError) => void;
}

interface Entry<T> extends PendingReply<T> {
  readonly timer: NodeJS.Timeout;
}

/**
 * The requests of one node waiting for their replies, told apart by a token the transport sends along
 * (the last token of a NATS reply subject, an AMQP correlation id), so one reply subscription serves every
 * request — like nats.js's `muxsubscription`. Each request is settled exactly once: by its reply, by its
 * timeout (`TIMEOUT`), by failing to be sent, or by `failAll` when the connection or transport goes away.
 */
export class PendingReplies<T> {
  readonly #pending = new Map<string, Entry<T>>();
  #sequence = 0;

  /** Bound once: a timer per request calls it with the token, with no closure allocated per request. */
  readonly #expire = (token: string, timeoutMs: number): void => {
    const entry = this.take(token);
    entry?.reject(timeoutError({ service: entry.service, action: entry.action, timeoutMs }));
  };

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
      const timer = setTimeout(this.#expire, Math.max(0, timeoutMs), token, timeoutMs);
      this.#pending.set(token, { service, action, resolve, reject, timer });
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
    clearTimeout(entry.timer);
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
