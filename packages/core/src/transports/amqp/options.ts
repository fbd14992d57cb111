import { ChassisError } from '../../errors.ts';
import { defaultNodeId } from '../../node-id.ts';
import { hasTlsFiles, type TlsFiles } from '../../tls.ts';

export interface AmqpTransportOptions {
  /** `amqp://user:password@host:5672/vhost`, or `amqps://…:5671/vhost` for TLS. */
  url: string;
  /**
   * TLS files for `amqps://`: the CA that signed the broker's certificate (default the system CAs) and,
   * for a broker that verifies clients, this node's certificate and key. Read at every (re)connection,
   * so a rotated Secret is used without a restart.
   */
  tls?: TlsFiles;
  /** Names this node's connection in the RabbitMQ management UI and its consumer tags. Default `defaultNodeId()`. */
  nodeId?: string;
  /**
   * AMQP heartbeat, in ms (the protocol counts whole seconds: rounded, at least 1 s); a dead broker or
   * network is noticed within about twice this. Default 10000.
   */
  heartbeatIntervalMs?: number;
  /**
   * How long `publish`, `deadLetter` and `readDeadLetters` wait for a lost connection to come back before
   * failing with `TRANSPORT`. Requests never wait: they fail at once. Default 5000.
   */
  publishWaitMs?: number;
  /** The ceiling of the reconnect backoff. Default 5000. */
  maxReconnectDelayMs?: number;
}

/** The options with their defaults applied and the URL checked. */
export interface AmqpSettings {
  /** The URL to connect to, with the heartbeat in it. */
  readonly url: string;
  /** The URL without its password, for messages. */
  readonly displayUrl: string;
  readonly nodeId: string;
  /** The TLS files of an `amqps://` URL (`{}`: the system CAs, no client certificate); undefined for `amqp://`. */
  readonly tls: TlsFiles | undefined;
  readonly publishWaitMs: number;
  readonly maxReconnectDelayMs: number;
}

export function amqpSettings(options: AmqpTransportOptions): AmqpSettings {
  let parsed: URL;
  try {
    parsed = new URL(options.url);
  } catch (error) {
    throw new ChassisError('CONFIG', `"${options.url}" is not a RabbitMQ URL; use amqp://user:password@host:5672`, {
      status: 500,
      cause: error,
    });
  }
  const secure = parsed.protocol === 'amqps:';
  if (!secure && hasTlsFiles(options.tls)) {
    throw new ChassisError(
      'CONFIG',
      `TLS files are set for RabbitMQ but the URL ${parsed.protocol}//${parsed.host} is not amqps://: use amqps://host:5671 (the broker's TLS listener)`,
      { status: 500 },
    );
  }
  if (!parsed.searchParams.has('heartbeat')) {
    parsed.searchParams.set(
      'heartbeat',
      String(Math.max(1, Math.round((options.heartbeatIntervalMs ?? 10_000) / 1000))),
    );
  }
  const url = parsed.toString();
  if (parsed.password) parsed.password = '***';
  return {
    url,
    displayUrl: `${parsed.protocol}//${parsed.host}${parsed.pathname}`,
    nodeId: options.nodeId ?? defaultNodeId(),
    tls: secure ? (options.tls ?? {}) : undefined,
    publishWaitMs: options.publishWaitMs ?? 5000,
    maxReconnectDelayMs: options.maxReconnectDelayMs ?? 5000,
  };
}
