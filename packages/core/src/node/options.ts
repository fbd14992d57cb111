import type { Provider as FlagProvider } from '@openfeature/server-sdk';
import type { LevelWithSilent } from 'pino';
import type { Serializer } from '../envelope.ts';
import type { NodeExtension } from '../extension.ts';
import type { IdentityVerifier } from '../identity.ts';
import type { Logger } from '../logger.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { TracingOptions } from '../observability/tracing.ts';
import type { PolicyDefaults } from '../policies/index.ts';
import type { ServiceDefinition } from '../service.ts';
import type { Transport } from '../transports/transport.ts';

export interface NodeOptions {
  /** The services this node hosts. */
  services: readonly ServiceDefinition[];
  /** Defaults to the in-process memory transport. */
  transport?: Transport;
  nodeId?: string;
  /** Body encoding of what this node sends; replies use the encoding of the request. */
  serializer?: Serializer;
  logger?: Logger;
  logLevel?: LevelWithSilent;
  /** Time a call waits when neither the call, the contract nor an inherited deadline says otherwise. */
  callTimeoutMs?: number;
  /** Attempts at an event before it is dead-lettered. */
  maxDeliveries?: number;
  /** Delay before redelivering a failed event: doubles per attempt from `initialDelayMs` up to `maxDelayMs`, jittered. */
  redelivery?: { initialDelayMs: number; maxDelayMs: number };
  /** Requests one instance of a service handles at once (the transport's `concurrency`). */
  concurrency?: number;
  /** Events one handler instance handles at once, unless the handler sets its own (the broker's `prefetch`). */
  prefetch?: number;
  /**
   * Calls from outside any handler (`node.call`: the gateway's, a script's) — work that starts something
   * new — wait while an event delivery has been pending this long (ms: queued, or being handled), where
   * the transport sees all the system's work (the memory transport: one process). Work already accepted
   * then finishes before more is taken, and clients in a closed loop slow to the pace at which it
   * finishes, instead of piling accepted work behind ever longer queues. Keep it above the usual time of
   * the slowest event handler (one that waits on a remote system, say). A call waits no longer than its
   * deadline (then `TIMEOUT`). Default 500; `Infinity` turns it off. Brokers elsewhere (NATS, RabbitMQ):
   * no effect.
   */
  maxEventDelayMs?: number;
  /** How long one attempt at an event may take. */
  eventTimeoutMs?: number;
  /** How long `stop()` waits for work in flight before abandoning it to be redelivered. */
  drainTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Check handlers' outputs against their contracts; on by default except when NODE_ENV=production. */
  validateOutput?: boolean;
  /**
   * Calls to a service this node runs stay in the process (default true): validated, timed, guarded and
   * measured as over the wire, without encoding or the broker. `false` sends every call through the
   * transport, so that other instances share them.
   */
  localCalls?: boolean;
  /** Defaults for call policies (retry, breaker, bulkhead, cache) and handler policies (bulkhead, rate limit). */
  policies?: PolicyDefaults;
  /**
   * Serve `/health/live`, `/health/ready`, `/metrics` and the ops API (`/ops/…`) on this port (0 picks a
   * free one).
   */
  opsPort?: number;
  opsHost?: string;
  /**
   * The secret that opens this node's ops API (`CHASSIS_OPS_SECRET`), beside a token with `opsRole`.
   * Without it (and without `identity`) the ops API refuses everyone.
   */
  opsSecret?: string;
  /** The role a token needs to use the ops API. Default `admin`. */
  opsRole?: string;
  /** Where spans go; by default OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else nowhere. */
  tracing?: TracingOptions;
  /** Also expose Node's own metrics (event loop, heap, GC). `runNode` turns it on. */
  defaultMetrics?: boolean;
  /** The OpenFeature provider behind `ctx.flags`; by default flags from the environment and `CHASSIS_FLAGS_FILE`. */
  flags?: FlagProvider;
  /** Readiness checks of the node's own dependencies, beside those its services declare. */
  checks?: Record<string, HealthCheck>;
  /** Capabilities added to every service, e.g. `@chassis/data`'s database, outbox and inbox. */
  extensions?: readonly NodeExtension[];
  /**
   * Verifies the caller's token (`auth` header) of every request before its handler runs: an invalid
   * one is refused with `UNAUTHENTICATED`, a valid one is `ctx.user`. Without it `ctx.user` is unset.
   * `runNode` makes one from `CHASSIS_JWT_SECRET` or `CHASSIS_JWKS_URL`.
   */
  identity?: IdentityVerifier;
}

const defaults = {
  callTimeoutMs: 5000,
  maxDeliveries: 5,
  redelivery: { initialDelayMs: 1000, maxDelayMs: 60_000 },
  concurrency: 100,
  prefetch: 10,
  maxEventDelayMs: 500,
  eventTimeoutMs: 30_000,
  drainTimeoutMs: 10_000,
  heartbeatIntervalMs: 5000,
};

/** The options the stages read on every message, with their defaults filled in. */
export type NodeSettings = typeof defaults & { validateOutput: boolean; localCalls: boolean };

export function settingsOf(options: NodeOptions): NodeSettings {
  return {
    callTimeoutMs: options.callTimeoutMs ?? defaults.callTimeoutMs,
    maxDeliveries: options.maxDeliveries ?? defaults.maxDeliveries,
    redelivery: options.redelivery ?? defaults.redelivery,
    concurrency: options.concurrency ?? defaults.concurrency,
    prefetch: options.prefetch ?? defaults.prefetch,
    maxEventDelayMs: options.maxEventDelayMs ?? defaults.maxEventDelayMs,
    eventTimeoutMs: options.eventTimeoutMs ?? defaults.eventTimeoutMs,
    drainTimeoutMs: options.drainTimeoutMs ?? defaults.drainTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs,
    validateOutput: options.validateOutput ?? process.env.NODE_ENV !== 'production',
    localCalls: options.localCalls ?? true,
  };
}
