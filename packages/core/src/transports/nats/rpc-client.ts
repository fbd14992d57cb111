import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { type ChassisError, noServiceError, toChassisError, transportError } from '../../errors.ts';
import { PendingReplies } from '../shared/pending-replies.ts';
import type { RequestOptions, WireMessage } from '../transport.ts';
import type { ClaimCheck, Outgoing } from './claim-check.ts';
import { readHeaders } from './headers.ts';
import { checkToken } from './names.ts';
import type { NatsSession } from './session.ts';

/** Subjects kept once checked: the actions a node calls, with room to spare. */
const MAX_SUBJECTS = 4096;

/**
 * Outgoing requests over core NATS: `rpc.<service>.<action>`, answered on one reply subscription per node
 * (`<inbox>.*`); the last token of the reply subject picks out the waiting request.
 */
export class RpcClient {
  readonly #session: NatsSession;
  readonly #claims: ClaimCheck;
  readonly #inbox = createInbox();
  readonly #replies = new PendingReplies<WireMessage>();
  readonly #subjects = new Map<string, Map<string, string>>();
  #subjectCount = 0;

  constructor(session: NatsSession, claims: ClaimCheck) {
    this.#session = session;
    this.#claims = claims;
  }

  /** Subscribes the reply inbox on a new connection (it follows the connection through reconnects). */
  listen(nc: NatsConnection): void {
    nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => this.#onReply(error, msg) });
  }

  /**
   * Not an async function: a body that fits (nearly every one) goes out with no promise and no turn of
   * the microtask queue of its own before the one the reply settles.
   */
  request(service: string, action: string, message: WireMessage, options: RequestOptions): Promise<WireMessage> {
    let nc: NatsConnection;
    let out: Outgoing | undefined;
    let subject: string;
    try {
      subject = this.#subject(service, action);
      const session = this.#session;
      nc = session.connection();
      if (!session.connected) {
        throw transportError(
          `Not connected to NATS at ${session.settings.url} (${session.status.status}); the request to ${service}.${action} was not sent`,
        );
      }
      out = this.#claims.direct(message, true, session.settings.rpcEnvelope === 'frame');
    } catch (error) {
      return Promise.reject(error);
    }
    if (out) return this.#send(nc, subject, service, action, out, options);
    return this.#claims
      .claimed(message, this.#session.settings.payloadBucket)
      .then((claimed) => this.#send(nc, subject, service, action, claimed, options));
  }

  /**
   * `rpc.<service>.<action>`, its tokens checked: once per action called (up to a bound), not a string
   * and two regular expressions on every request.
   */
  #subject(service: string, action: string): string {
    let byAction = this.#subjects.get(service);
    let subject = byAction?.get(action);
    if (subject !== undefined) return subject;
    checkToken('service', service);
    checkToken('action', action);
    subject = `rpc.${service}.${action}`;
    if (this.#subjectCount < MAX_SUBJECTS) {
      if (!byAction) {
        byAction = new Map();
        this.#subjects.set(service, byAction);
      }
      byAction.set(action, subject);
      this.#subjectCount++;
    }
    return subject;
  }

  #send(
    nc: NatsConnection,
    subject: string,
    service: string,
    action: string,
    out: Outgoing,
    options: RequestOptions,
  ): Promise<WireMessage> {
    return this.#replies.open(service, action, options.timeoutMs, (token) =>
      this.#session.outgoing.publish(
        nc,
        subject,
        out.body,
        { reply: `${this.#inbox}.${token}`, headers: out.headers },
        (error) => this.#replies.fail(token, error),
        this.#replies.size === 1,
        () => this.#replies.has(token),
      ),
    );
  }

  /** Fails every request still waiting: its reply can no longer come. */
  failAll(error: ChassisError): void {
    this.#replies.failAll(error);
  }

  #onReply(error: Error | null, msg: Msg): void {
    if (error) {
      this.#session.report(error, 'The reply subscription failed');
      return;
    }
    const pending = this.#replies.take(msg.subject.slice(this.#inbox.length + 1));
    if (!pending) return; // timed out or failed already
    const read = readHeaders(msg, true);
    // The server answers a request nobody subscribes to with an empty 503 status message (no responders).
    if (read.code === 503 && msg.data.length === 0) {
      const { service, action } = pending;
      pending.reject(noServiceError({ service, action }, `start one (nothing subscribes to rpc.${service}.${action})`));
      return;
    }
    const direct = this.#claims.received(msg, read);
    if (direct) pending.resolve(direct);
    else
      this.#claims
        .incoming(msg, true, read)
        .then(pending.resolve, (cause: unknown) => pending.reject(toChassisError(cause)));
  }
}
