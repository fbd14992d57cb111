import { ChassisError } from '../../errors.ts';
import { asTransportError } from '../shared/errors.ts';
import { withTimeout } from '../shared/timing.ts';
import type { Consumer, WireMessage } from '../transport.ts';
import type { ClaimCheck } from './claim-check.ts';
import { fromNatsHeaders, toNatsHeaders } from './headers.ts';
import { checkSubject } from './names.ts';
import type { NatsSession } from './session.ts';

/** Broadcasts go on core NATS (`chassis.<topic>`) to every listener, stored nowhere: at most once. */
export function broadcast(session: NatsSession, claims: ClaimCheck, topic: string, message: WireMessage): void {
  checkSubject('topic', topic);
  const nc = session.connection();
  const headers = toNatsHeaders(message.headers);
  if (!claims.fits(message.headers, message.body)) {
    throw new ChassisError(
      'BAD_MESSAGE',
      `The broadcast on ${topic} (${message.body.length} bytes) exceeds the server's max_payload; broadcasts are not stored, keep them small`,
    );
  }
  try {
    nc.publish(`chassis.${topic}`, message.body, { headers });
  } catch (error) {
    throw asTransportError(error, `Cannot broadcast on ${topic}`);
  }
}

export async function listen(
  session: NatsSession,
  topic: string,
  handler: (message: WireMessage) => void,
): Promise<Consumer> {
  checkSubject('topic', topic);
  const nc = session.connection();
  const sub = nc.subscribe(`chassis.${topic}`, {
    callback: (error, msg) => {
      if (error) {
        session.report(error, `The subscription to chassis.${topic} failed`);
        return;
      }
      try {
        handler({ headers: fromNatsHeaders(msg.headers), body: msg.data });
      } catch (handlerError) {
        session.report(handlerError, `A listener of ${topic} threw`);
      }
    },
  });
  await nc.flush();
  return {
    stop: async () => {
      if (sub.isClosed()) return;
      await withTimeout(sub.drain(), 5_000).catch(() => sub.unsubscribe());
    },
  };
}
