import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { ChassisError, transportError } from '../../errors.ts';
import { readTlsFiles, tlsFailure } from '../../tls.ts';
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
  const tls = settings.tls;
  // A missing or unreadable file is a CONFIG error naming it, not nats.js's ENOENT.
  if (tls) readTlsFiles(tls);
  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers: url.split(',').map((s) => s.trim()),
      // nats.js reads the files at each connection, so a renewed certificate needs no restart; `tls`
      // set requires TLS, and left out nats.js still upgrades when the server requires it.
      ...(tls ? { tls: { ...tls } } : {}),
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
    const address = url.replace(/\b(nats|tls):\/\//g, '');
    throw (
      tlsFailure(error, { server: 'NATS', address, ...(tls ? { files: tls } : {}) }) ??
      transportError(`Cannot connect to NATS at ${url}: ${messageOf(error)}; ${connectHint(error, tls)}`, {
        cause: error,
      })
    );
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

/** What to check when a connection failed for a reason that is not a known TLS failure. */
function connectHint(error: unknown, tls: NatsSettings['tls']): string {
  // A server verifying client certificates closes a TLS 1.3 connection after the handshake, which
  // nats.js reports only as a timeout.
  if (tls && !tls.certFile && /timeout/i.test(messageOf(error))) {
    return 'if the server verifies clients (mutual TLS), set CHASSIS_TLS_CERT_FILE and CHASSIS_TLS_KEY_FILE; else is nats-server running?';
  }
  return 'is nats-server running?';
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
