import type { Msg } from '@nats-io/transport-node';
import { withTimeout } from '../shared/timing.ts';
import type { Consumer, RpcHandler, RpcReply, ServeOptions, WireMessage } from '../transport.ts';
import type { ClaimCheck, Outgoing } from './claim-check.ts';
import { handedBackFrame, isFramed } from './frame.ts';
import { handedBackHeaders, type ReadHeaders, readHeaders } from './headers.ts';
import { checkToken } from './names.ts';
import type { NatsSession } from './session.ts';

/** A request taken off the wire, and when (epoch ms on this node's clock). */
interface Received {
  msg: Msg;
  receivedAt: number;
}

/**
 * Serves `rpc.<service>.*` in queue group `<service>`, at most `concurrency` requests at once. Stopping
 * drains the subscription, hands unstarted requests back to the group and waits for the running ones.
 */
export async function serveRpc(
  session: NatsSession,
  claims: ClaimCheck,
  service: string,
  handler: RpcHandler,
  options: ServeOptions,
): Promise<Consumer> {
  checkToken('service', service);
  const nc = session.connection();
  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const waiting: Received[] = [];
  let active = 0;
  let stopping = false;
  let idle: (() => void) | undefined;
  /**
   * Requests taken off the wire in this turn (one socket read's worth, handled before its microtasks run),
   * and in the turn before. A reply goes out at once only when its request came alone, as the last one
   * did: a handler that answers at once frees its slot before the next request of the same read is even
   * parsed, so the count in flight no longer tells a lone request from one of a burst, and the replies of
   * a burst must leave together, in one write.
   */
  let arrived = 0;
  let arrivedBefore = 0;
  const turnEnded = (): void => {
    arrivedBefore = arrived;
    arrived = 0;
  };

  /**
   * Answers one request. A handler that answers at once is replied to in this same call, with no promise
   * and no turn of the microtask queue: undefined then. Otherwise the promise of the reply being sent.
   * Never rejects: what fails is reported.
   */
  const handle = (msg: Msg, receivedAt: number): Promise<void> | undefined => {
    const action = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    let read: ReadHeaders;
    let message: WireMessage | undefined;
    try {
      read = readHeaders(msg, true);
      message = claims.received(msg, read);
    } catch (error) {
      notHandled(action, error);
      return undefined;
    }
    // The reply goes in the form its request came in: a caller that sent headers may predate frames.
    const framed = read.framed;
    if (!message) {
      return claims.incoming(msg, true, read).then(
        (fetched) => answer(msg, action, fetched, receivedAt, framed),
        (error: unknown) => notHandled(action, error),
      );
    }
    return answer(msg, action, message, receivedAt, framed);
  };
  const answer = (
    msg: Msg,
    action: string,
    message: WireMessage,
    receivedAt: number,
    framed: boolean,
  ): Promise<void> | undefined => {
    let reply: RpcReply | Promise<RpcReply>;
    try {
      reply = handler({ action, message, receivedAt });
    } catch (error) {
      notHandled(action, error);
      return undefined;
    }
    if (!isPromiseLike(reply)) return respond(msg, action, reply, framed);
    return reply.then(
      (settled) => respond(msg, action, settled, framed),
      (error: unknown) => notHandled(action, error),
    );
  };
  const notHandled = (action: string, error: unknown): void => {
    session.report(error, `rpc.${service}.${action}: the request could not be handled, so it gets no reply`);
  };
  /** Sends the reply (unless nobody waits for one), then lets the handler finish its work after it. */
  const respond = (msg: Msg, action: string, reply: RpcReply, framed: boolean): Promise<void> | undefined => {
    let to = msg.reply;
    let out: Outgoing | undefined;
    try {
      if (!to) return undefined; // a plain publish: nobody waits for the answer
      out = claims.direct(reply, true, framed);
      if (out) publish(to, action, out);
    } catch (error) {
      session.report(error, `rpc.${service}.${action}: the reply could not be sent`);
      to = undefined;
    } finally {
      if (!to || out) sent(action, reply);
    }
    if (!to || out) return undefined;
    // Too large for one message: the body goes to the object store first.
    return claims
      .claimed(reply, session.settings.payloadBucket)
      .then(
        (claimed) => publish(to, action, claimed),
        (error: unknown) => session.report(error, `rpc.${service}.${action}: the reply could not be sent`),
      )
      .finally(() => sent(action, reply));
  };
  /** The handler's work after its reply; a failure there is reported, it does not reach nats.js. */
  const sent = (action: string, reply: RpcReply): void => {
    try {
      reply.sent?.();
    } catch (error) {
      session.report(error, `rpc.${service}.${action}: the work after the reply failed`);
    }
  };
  const publish = (to: string, action: string, out: Outgoing): void => {
    session.outgoing.publish(
      nc,
      to,
      out.body,
      out.headers ? { headers: out.headers } : undefined,
      (error) => session.report(error, `rpc.${service}.${action}: the reply could not be sent`),
      active === 1 && waiting.length === 0 && arrived <= 1 && arrivedBefore <= 1,
    );
  };
  /** Starts a request; one answered at once frees its slot at once. */
  const run = (msg: Msg, receivedAt: number): void => {
    active++;
    const work = handle(msg, receivedAt);
    if (work) work.then(finished, finished);
    else active--;
  };
  let pumping = false;
  /** A slot is free: the waiting requests start, in arrival order, in a loop rather than a recursion. */
  const finished = (): void => {
    active--;
    if (pumping) return;
    pumping = true;
    try {
      while (!stopping && active < concurrency && waiting.length > 0) {
        const next = waiting.shift()!;
        run(next.msg, next.receivedAt);
      }
    } finally {
      pumping = false;
    }
    if (active === 0) idle?.();
  };
  // Core NATS holds nothing back, so requests beyond `concurrency` wait here, in arrival order.
  const sub = nc.subscribe(`rpc.${service}.*`, {
    queue: service,
    callback: (error, msg) => {
      if (error) {
        session.report(error, `The subscription to rpc.${service}.* failed`);
        return;
      }
      // Stamped now, not when a slot frees: the request's timeout-ms counts from its arrival.
      const receivedAt = Date.now();
      if (arrived++ === 0) settledPromise.then(turnEnded);
      if (!stopping && active < concurrency) run(msg, receivedAt);
      else waiting.push({ msg, receivedAt });
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
        const waited = Date.now() - receivedAt;
        const headers = handedBackHeaders(msg.headers, waited);
        const data = !msg.headers && isFramed(msg.data) ? handedBackFrame(msg.data, waited) : msg.data;
        if (headers === null || data === null) continue;
        try {
          nc.publish(msg.subject, data, { reply: msg.reply || undefined, headers });
        } catch (error) {
          session.report(error, `rpc.${service}: an unstarted request could not be handed back`);
        }
      }
      if (active > 0) await new Promise<void>((resolve) => (idle = resolve));
      session.outgoing.flush();
      await withTimeout(nc.flush(), 5_000).catch(() => undefined);
    },
  };
}

/**
 * For a step at the end of the microtasks queued now: `then` on a settled promise queues it as
 * `queueMicrotask` does, in the same queue and order, without the async resource (and its scope around
 * the step) that Node's `queueMicrotask` makes every time — once a request here.
 */
const settledPromise = Promise.resolve();

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
