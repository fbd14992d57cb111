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

/** How often waiting publishes are checked for their deadline. */
const SWEEP_MS = 250;

interface Waiting {
  resolve: (ack: { duplicate: boolean }) => void;
  reject: (error: unknown) => void;
  deadline: number;
}

/**
 * JetStream publishes of one connection and their PubAcks, over one reply subscription.
 *
 * `js.publish` is a request: nats.js gives each a `RequestOne` with a timer of its own, and creates an
 * `Error` per publish only to keep its stack (its `cancel()`, ~0.4% of a SimpleBank process's CPU in
 * `RequestError` alone). Here each publish is a core publish with a reply subject under one inbox
 * (`<inbox>.<token>`); the answer settles the publish it names, and one timer checks deadlines for all.
 * Publishes of one connection reach the server in the order they were made, as with `js.publish`.
 *
 * The answer is read as `js.publish` reads it: a JetStream error is a `JetStreamApiError`, a 503 status
 * (no stream takes the subject) a `NoRespondersError`, an answer past the deadline a `TimeoutError`.
 */
export class PubAcks {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #prefixLength = this.#inbox.length + 1;
  readonly #waiting = new Map<string, Waiting>();
  #sub: Subscription | undefined;
  #seq = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** Publishes `body` to `subject` and resolves once JetStream stored it (or had it already: `duplicate`). */
  publish(
    subject: string,
    body: Uint8Array,
    headers: MsgHdrs | undefined,
    msgID: string | undefined,
    timeoutMs: number,
  ): Promise<{ duplicate: boolean }> {
    const token = (++this.#seq).toString(36);
    let hdrs = headers;
    if (msgID) {
      hdrs ??= natsHeaders();
      hdrs.set('Nats-Msg-Id', msgID);
    }
    return new Promise((resolve, reject) => {
      this.#waiting.set(token, { resolve, reject, deadline: Date.now() + timeoutMs });
      try {
        // Inside the promise: a closed connection fails the publish, never throws at its caller.
        this.#subscribe();
        this.#nc.publish(subject, body, { reply: `${this.#inbox}.${token}`, ...(hdrs ? { headers: hdrs } : {}) });
      } catch (error) {
        this.#waiting.delete(token);
        reject(error);
        return;
      }
      this.#sweeper ??= setInterval(this.#sweep, SWEEP_MS).unref();
    });
  }

  #subscribe(): void {
    if (this.#sub && !this.#sub.isClosed()) return;
    const sub = this.#nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => this.#answer(error, msg) });
    this.#sub = sub;
    // A connection closed (or the subscription refused): nothing waiting will be answered.
    const closed = (error: unknown) => {
      if (this.#sub === sub) this.#failAll(error ?? new Error('the connection closed before the PubAck came'));
    };
    void sub.closed.then(closed, closed);
  }

  #answer(error: Error | null, msg: Msg): void {
    if (error) {
      this.#failAll(error);
      return;
    }
    const token = msg.subject.slice(this.#prefixLength);
    const waiting = this.#waiting.get(token);
    if (!waiting) return; // answered after its deadline
    this.#waiting.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiting.reject(new NoRespondersError(msg.subject));
      return;
    }
    try {
      waiting.resolve(readPubAck(msg.data));
    } catch (readError) {
      waiting.reject(readError);
    }
  }

  readonly #sweep = (): void => {
    const now = Date.now();
    for (const [token, waiting] of this.#waiting) {
      if (waiting.deadline > now) continue;
      this.#waiting.delete(token);
      waiting.reject(new TimeoutError());
    }
    if (this.#waiting.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  };

  #failAll(error: unknown): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const { reject } of waiting) reject(error);
  }
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
export function pubAcksOf(nc: NatsConnection): PubAcks {
  let acks = byConnection.get(nc);
  if (!acks) {
    acks = new PubAcks(nc);
    byConnection.set(nc, acks);
  }
  return acks;
}
