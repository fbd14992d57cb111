import type { Msg } from '@nats-io/transport-node';
import { withTimeout } from '../shared/timing.ts';
import type { Consumer, RpcHandler, ServeOptions, WireMessage } from '../transport.ts';
import type { ClaimCheck } from './claim-check.ts';
import { handedBackHeaders } from './headers.ts';
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

  const handle = async ({ msg, receivedAt }: Received): Promise<void> => {
    const action = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    let reply: WireMessage;
    try {
      const message = claims.received(msg) ?? (await claims.incoming(msg, true));
      reply = await handler({ action, message, receivedAt });
    } catch (error) {
      session.report(error, `rpc.${service}.${action}: the request could not be handled, so it gets no reply`);
      return;
    }
    if (!msg.reply) return; // a plain publish: nobody waits for the answer
    try {
      const out = claims.direct(reply, true) ?? (await claims.claimed(reply, session.settings.payloadBucket));
      session.outgoing.publish(
        nc,
        msg.reply,
        out.body,
        out.headers ? { headers: out.headers } : undefined,
        (error) => session.report(error, `rpc.${service}.${action}: the reply could not be sent`),
        active === 1 && waiting.length === 0,
      );
    } catch (error) {
      session.report(error, `rpc.${service}.${action}: the reply could not be sent`);
    }
  };
  const run = (received: Received): void => {
    active++;
    void handle(received).finally(() => {
      active--;
      const next = stopping ? undefined : waiting.shift();
      if (next) run(next);
      else if (active === 0) idle?.();
    });
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
      const received = { msg, receivedAt: Date.now() };
      if (!stopping && active < concurrency) run(received);
      else waiting.push(received);
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
        const headers = handedBackHeaders(msg.headers, Date.now() - receivedAt);
        if (headers === null) continue;
        try {
          nc.publish(msg.subject, msg.data, { reply: msg.reply || undefined, headers });
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
