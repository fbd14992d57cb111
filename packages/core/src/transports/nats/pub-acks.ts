import { type ApiError, JetStreamApiError } from '@nats-io/jetstream';
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  headers as natsHeaders,
  type Subscription,
  TimeoutError,
} from '@nats-io/transport-node';
import { PendingReplies, type ReplyFailures } from '../shared/pending-replies.ts';
import type { PublishBatch } from './publish-batch.ts';

/** Failures read as `js.publish`'s, not as `ChassisError`s: `confirmedPublish` tells them apart by their nats.js class. */
const asNatsErrors: ReplyFailures<Error> = {
  timedOut: () => new TimeoutError(),
  notSent: (_request, error) => asError(error),
};

/**
 * JetStream publishes of one connection and their PubAcks, over one reply subscription.
 *
 * `js.publish` is a request: nats.js gives each a `RequestOne` with a timer of its own, and creates an
 * `Error` per publish only to keep its stack (its `cancel()`, ~0.4% of a SimpleBank process's CPU in
 * `RequestError` alone). Here each publish is a core publish with a reply subject under one inbox
 * (`<inbox>.<token>`), waiting in `PendingReplies` as the transports' requests do: the answer settles the
 * publish it names, and the deadlines of all share one timer. Publishes of one connection reach the
 * server in the order they were made, as with `js.publish`.
 *
 * The answer is read as `js.publish` reads it: a JetStream error is a `JetStreamApiError`, a 503 status
 * (no stream takes the subject) a `NoRespondersError`, an answer past the deadline a `TimeoutError`.
 */
export class PubAcks {
  readonly #nc: NatsConnection;
  readonly #outgoing: PublishBatch | undefined;
  readonly #inbox = createInbox();
  readonly #prefixLength = this.#inbox.length + 1;
  readonly #waiting = new PendingReplies<{ duplicate: boolean }, Error>(asNatsErrors);
  #sub: Subscription | undefined;

  /**
   * With `outgoing`, publishes leave with the other publishes of their turn of the event loop (one socket
   * write for a relay's batch, the acks and the replies made in that turn); one made while nothing else
   * waits for its PubAck goes at once.
   */
  constructor(nc: NatsConnection, outgoing?: PublishBatch) {
    this.#nc = nc;
    this.#outgoing = outgoing;
  }

  /**
   * Publishes `body` to `subject` and resolves once JetStream stored it (or had it already: `duplicate`).
   * `together`: one of several published in this turn, to leave in one write with the others (never at once).
   */
  publish(
    subject: string,
    body: Uint8Array,
    headers: MsgHdrs | undefined,
    msgID: string | undefined,
    timeoutMs: number,
    together = false,
  ): Promise<{ duplicate: boolean }> {
    let hdrs = headers;
    if (msgID) {
      hdrs ??= natsHeaders();
      hdrs.set('Nats-Msg-Id', msgID);
    }
    // A closed connection throws in `send`: the publish fails with that error, never throws at its caller.
    return this.#waiting.open('jetstream', subject, timeoutMs, (token) => {
      this.#subscribe();
      const options = { reply: `${this.#inbox}.${token}`, ...(hdrs ? { headers: hdrs } : {}) };
      if (!this.#outgoing) {
        this.#nc.publish(subject, body, options);
        return;
      }
      this.#outgoing.publish(
        this.#nc,
        subject,
        body,
        options,
        (error) => this.#waiting.fail(token, error),
        !together && this.#waiting.size === 1,
        () => this.#waiting.has(token),
      );
    });
  }

  #subscribe(): void {
    if (this.#sub && !this.#sub.isClosed()) return;
    const sub = this.#nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => this.#answer(error, msg) });
    this.#sub = sub;
    // A connection closed (or the subscription refused): nothing waiting will be answered.
    const closed = (error: unknown) => {
      if (this.#sub === sub) {
        this.#waiting.failAll(error ? asError(error) : new Error('the connection closed before the PubAck came'));
      }
    };
    void sub.closed.then(closed, closed);
  }

  #answer(error: Error | null, msg: Msg): void {
    if (error) {
      this.#waiting.failAll(error);
      return;
    }
    const waiting = this.#waiting.take(msg.subject.slice(this.#prefixLength));
    if (!waiting) return; // answered after its deadline
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiting.reject(new NoRespondersError(msg.subject));
      return;
    }
    try {
      waiting.resolve(readPubAck(msg.data));
    } catch (readError) {
      waiting.reject(asError(readError));
    }
  }
}

/** What was thrown, as an `Error` (nats.js and `JSON.parse` throw nothing else). */
function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

const decoder = new TextDecoder();

/** A PubAck, `{ stream, seq, duplicate? }`, or JetStream's refusal, `{ error: { code, err_code, description } }`. */
function readPubAck(data: Uint8Array): { duplicate: boolean } {
  const answer = JSON.parse(decoder.decode(data)) as {
    stream?: string;
    duplicate?: boolean;
    error?: ApiError;
  };
  if (answer.error) throw new JetStreamApiError(answer.error);
  if (!answer.stream) throw new Error('invalid ack response');
  return { duplicate: answer.duplicate === true };
}

const byConnection = new WeakMap<NatsConnection, PubAcks>();

/** The multiplexer of `nc`, made on first use. */
export function pubAcksOf(nc: NatsConnection, outgoing?: PublishBatch): PubAcks {
  let acks = byConnection.get(nc);
  if (!acks) {
    acks = new PubAcks(nc, outgoing);
    byConnection.set(nc, acks);
  }
  return acks;
}
