import type { ChassisError } from '../../errors.ts';
import { defaultNodeId } from '../../node-id.ts';
import type { TlsFiles } from '../../tls.ts';

/**
 * The NATS transport: core NATS for RPC and broadcasts, JetStream for events and dead letters, and a
 * JetStream Object Store for bodies too large for one NATS message (claim check).
 *
 * Subjects: `rpc.<service>.<action>` (queue group `<service>`), `evt.<event>` in the events stream,
 * `dlq.<queue>` in the dead-letter stream, `chassis.<topic>` for broadcasts.
 */
export interface NatsTransportOptions {
  /**
   * Server URL, e.g. `nats://127.0.0.1:4222`; several may be given separated by commas. `tls://host:port`
   * requires TLS (as `tls` does); on `nats://` TLS is used when the server requires it.
   */
  url: string;
  /**
   * TLS: the CA that signed the server's certificate (default the system CAs) and, for servers that
   * verify clients, this node's certificate and key. Setting it (even `{}`) requires TLS. The files are
   * read at every (re)connection, so a rotated Secret is used without a restart.
   */
  tls?: TlsFiles;
  /** This node's id; names the connection so `nats server report connections` shows who is who. */
  nodeId?: string;
  /** Connection name shown by the server. Default `chassis-<nodeId>`. */
  name?: string;
  /** JetStream stream that stores events (subjects `evt.>`). Default `CHASSIS_EVENTS`. */
  eventsStream?: string;
  /** JetStream stream that stores dead letters (subjects `dlq.>`). Default `CHASSIS_DLQ`. */
  deadLetterStream?: string;
  /**
   * Object Store bucket for bodies larger than the server's max_payload. Default `chassis-payloads`.
   * Dead-lettered large bodies go to `<bucket>-dlq`, which keeps them until deleted.
   */
  payloadBucket?: string;
  /**
   * How long the events stream keeps an event, handled or not, and the object store a large body: the longest
   * an event can wait for a subscription whose instances are all down. Default 7 days.
   */
  eventRetentionMs?: number;
  /**
   * How long an event delivery may stay unacknowledged before JetStream gives it to another instance, e.g.
   * when the process died. Handlers running longer keep their delivery alive with progress acks. Default 30 s.
   */
  ackWaitMs?: number;
  /**
   * Where RPC requests carry their envelope (id, `timeout-ms`, trace context, token): `frame` (the
   * default), at the front of the body, or `headers`, in NATS headers, as nodes before frames sent it —
   * for a rolling upgrade while older nodes still serve. Every node reads both forms, and replies in the
   * form its request came in.
   */
  rpcEnvelope?: 'frame' | 'headers';
  /**
   * Told about failures nobody awaits (a reply that could not be sent, a consumer being recreated).
   * Default: `process.emitWarning`.
   */
  onError?: (error: ChassisError) => void;
}

/** The options with every default filled in. */
export type NatsSettings = Required<Omit<NatsTransportOptions, 'nodeId' | 'name' | 'tls'>> & {
  name: string;
  /** TLS files when TLS is required (a `tls://` URL or the `tls` option), else undefined. */
  tls: TlsFiles | undefined;
};

const DEFAULT_EVENTS_STREAM = 'CHASSIS_EVENTS';
const DEFAULT_DLQ_STREAM = 'CHASSIS_DLQ';
const DEFAULT_BUCKET = 'chassis-payloads';
const DEFAULT_EVENT_RETENTION_MS = 7 * 24 * 3600_000;
const DEFAULT_ACK_WAIT_MS = 30_000;

export function natsSettings(options: NatsTransportOptions): NatsSettings {
  const nodeId = options.nodeId ?? defaultNodeId();
  return {
    url: options.url,
    tls: options.tls ?? (/(^|,)\s*tls:\/\//.test(options.url) ? {} : undefined),
    name: options.name ?? `chassis-${nodeId}`,
    eventsStream: options.eventsStream ?? DEFAULT_EVENTS_STREAM,
    deadLetterStream: options.deadLetterStream ?? DEFAULT_DLQ_STREAM,
    payloadBucket: options.payloadBucket ?? DEFAULT_BUCKET,
    eventRetentionMs: options.eventRetentionMs ?? DEFAULT_EVENT_RETENTION_MS,
    ackWaitMs: options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    rpcEnvelope: options.rpcEnvelope ?? 'frame',
    onError: options.onError ?? ((error) => process.emitWarning(error)),
  };
}

/**
 * Between tries at something the server should soon accept again (a PubAck through a restart, streams and
 * consumers being restored): 250 ms doubling up to 4 s, full jitter, by the shared formula.
 */
export const RECOVERY_BACKOFF = { initialDelayMs: 250, maxDelayMs: 4_000 } as const;
