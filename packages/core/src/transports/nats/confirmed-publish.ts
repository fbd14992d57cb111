import { JetStreamApiError } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import { ChassisError } from '../../errors.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { asTransportError } from '../shared/errors.ts';
import { sleep } from '../shared/timing.ts';
import { isNoResponders } from './errors.ts';
import { RECOVERY_BACKOFF } from './options.ts';
import { pubAcksOf } from './pub-acks.ts';
import type { NatsSession } from './session.ts';
import type { Topology } from './topology.ts';

/** How long `publish` keeps trying before it reports the event as not confirmed (covers a server restart). */
const PUBLISH_CONFIRM_MS = 10_000;
/** The longest one attempt waits for its PubAck before the publish is sent again. */
export const PUBACK_WAIT_MS = 5_000;

/**
 * Publishes to JetStream and waits for the PubAck (through the connection's `PubAcks`), retrying through
 * reconnects for up to 10 s; the msg id makes retries safe (JetStream stores a duplicate once and says so).
 */
export async function confirmedPublish(
  session: NatsSession,
  topology: Topology,
  subject: string,
  out: { body: Uint8Array; headers: MsgHdrs | undefined },
  msgID: string | undefined,
  what: string,
): Promise<{ duplicate: boolean }> {
  const until = Date.now() + PUBLISH_CONFIRM_MS;
  for (let attempt = 1; ; attempt++) {
    await untilConnected(session, until);
    const acks = pubAcksOf(session.connection(), session.outgoing);
    let lastError: unknown;
    if (session.connected) {
      // A PubAck the old connection was waiting for never comes: resend on the new one instead of timing out.
      const lost = session.status.changed();
      const publishing = acks.publish(
        subject,
        out.body,
        out.headers,
        msgID,
        Math.max(1_000, Math.min(PUBACK_WAIT_MS, until - Date.now())),
      );
      publishing.catch(() => undefined);
      try {
        const outcome = await Promise.race([publishing, lost]);
        if (outcome !== 'status') return outcome;
        lastError = new Error('the connection was lost before the PubAck came');
      } catch (error) {
        if (error instanceof JetStreamApiError) {
          throw new ChassisError('TRANSPORT', `${what} was refused by JetStream: ${error.message}`, {
            cause: error,
            retryable: false,
          });
        }
        lastError = error;
      }
    }
    if (session.closed || Date.now() >= until) {
      throw asTransportError(
        lastError ?? new Error(`not connected (${session.status.status})`),
        `${what} was not confirmed by JetStream within ${PUBLISH_CONFIRM_MS} ms`,
      );
    }
    // "No responders" means no stream takes the subject yet: JetStream is starting, or lost its state.
    if (isNoResponders(lastError)) await topology.ensureStreams().catch(() => undefined);
    if (session.connected) await sleep(backoffDelay(attempt, RECOVERY_BACKOFF));
  }
}

async function untilConnected(session: NatsSession, until: number): Promise<void> {
  while (!session.connected && !session.closed && Date.now() < until) {
    await session.status.nextChange(until - Date.now()).changed;
  }
}
