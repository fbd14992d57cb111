import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { ChassisError, transportError } from '../../errors.ts';
import { backoffDelay } from '../shared/backoff.ts';
import { messageOf } from '../shared/errors.ts';
import type { NatsSettings } from './options.ts';

const RECONNECT_BACKOFF = { initialDelayMs: 100, maxDelayMs: 2_000 } as const;

/**
 * Connects with reconnects for ever, and checks the server can carry what Chassis sends (headers,
 * JetStream); a `TRANSPORT` error says what to fix.
 */
export async function openConnection(settings: NatsSettings, reconnectDelay: () => number): Promise<NatsConnection> {
  const url = settings.url;
  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers: url.split(',').map((s) => s.trim()),
      name: settings.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: reconnectDelay,
      // A dead peer without a TCP reset is noticed within ~1 minute instead of the default 4.
      pingInterval: 20_000,
      maxPingOut: 3,
      timeout: 5_000,
      // nats.js would otherwise make an Error (a stack capture) for every request and publish, only to
      // show where a timeout was asked for; our errors say which action or event timed out.
      noAsyncTraces: true,
    });
  } catch (error) {
    throw transportError(`Cannot connect to NATS at ${url}: ${messageOf(error)}; is nats-server running?`, {
      cause: error,
    });
  }
  if (!nc.info?.headers || !nc.info.jetstream) {
    await nc.close();
    throw new ChassisError(
      'TRANSPORT',
      `The NATS server at ${url} has ${nc.info?.headers ? 'JetStream disabled' : 'no header support'}; run nats-server 2.9+ with -js`,
      { retryable: false },
    );
  }
  return nc;
}

/**
 * The wait between reconnect rounds, by the shared formula with the outage's length in seconds as the
 * attempt: 100 ms doubling to 2 s, full jitter, so a fleet that lost its server together does not come
 * back in step. By time, not by call: nats.js asks again every time it wakes up to check.
 */
export class ReconnectDelay {
  #downSince: number | undefined;

  next(): number {
    this.#downSince ??= Date.now();
    const downSeconds = Math.floor((Date.now() - this.#downSince) / 1000);
    return backoffDelay(downSeconds + 1, RECONNECT_BACKOFF);
  }

  /** Connected again: the next outage starts from the shortest wait. */
  reset(): void {
    this.#downSince = undefined;
  }
}
