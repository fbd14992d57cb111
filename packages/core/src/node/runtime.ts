import { type Client as FlagClient, OpenFeature } from '@openfeature/server-sdk';
import type { ActionContract } from '../contracts.ts';
import { type Codec, codecFor } from '../envelope.ts';
import type { NodeExtension } from '../extension.ts';
import type { IdentityVerifier } from '../identity.ts';
import { createLogger, type Logger } from '../logger.ts';
import { defaultNodeId } from '../node-id.ts';
import type { OpsServer } from '../observability/health.ts';
import { NodeMetrics } from '../observability/metrics.ts';
import { Tracing } from '../observability/tracing.ts';
import { type CallPolicies, type HandlerPolicies, PolicyEngine } from '../policies/index.ts';
import { Registry } from '../registry.ts';
import type { ServiceDefinition } from '../service.ts';
import { memoryTransport } from '../transports/memory.ts';
import { CallDeadlines } from '../transports/shared/deadlines.ts';
import type { Consumer, Transport, TransportStatus } from '../transports/transport.ts';
import { send } from './calls.ts';
import type { HandlerContext, Outbound } from './handler-context.ts';
import { readiness } from './health.ts';
import { tracedFetch } from './http-client.ts';
import { Roster, Tally } from './in-flight.ts';
import { type NodeState, nodeInfo } from './lifecycle.ts';
import type { OpsTable } from './ops.ts';
import { type NodeOptions, type NodeSettings, settingsOf } from './options.ts';
import { publish } from './publish.ts';
import { Schedules } from './schedules.ts';

/**
 * Everything the stages of a message's life share, in one object each stage receives: what the node is
 * (its id, services, transport, codec, settings), what watches it (log, metrics, tracing), what guards
 * it (policies, identity, extensions), and the work it has in flight. Its shape is fixed at creation, so
 * reading a field on the hot path costs what reading a class's field does.
 */
export interface NodeRuntime {
  readonly id: string;
  /** As given: the parts read only at start and by health checks (ops port, tracing, flags, checks). */
  readonly options: NodeOptions;
  readonly services: readonly ServiceDefinition[];
  /** The services this node serves actions of, by name, for local calls. */
  readonly servingHere: ReadonlyMap<string, ServiceDefinition>;
  readonly transport: Transport;
  readonly codec: Codec;
  readonly settings: NodeSettings;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  /** A pass-through tracer until `start` makes the one the options ask for. */
  tracing: Tracing;
  /** Every target's breaker, bulkhead and retry budget. */
  readonly policies: PolicyEngine;
  readonly identity: IdentityVerifier | undefined;
  readonly flags: FlagClient;
  readonly extensions: readonly NodeExtension[];
  /** Extensions that wrap handlers; the first extension given is the outermost. */
  readonly arounds: readonly NodeExtension[];
  /** Extensions offered each event a handler emits. */
  readonly emitters: readonly NodeExtension[];
  readonly registry: Registry;
  /** How a handler's `ctx` reaches the send and publish stages. */
  readonly outbound: Outbound;
  readonly startedAt: number;
  state: NodeState;
  transportStatus: TransportStatus;
  opsServer: OpsServer | undefined;
  /** The ops API's actions, once the node starts; and its consumer on the transport. */
  ops: OpsTable | undefined;
  opsConsumer: Consumer | undefined;
  /** What takes requests and events off the transport: stopped first when the node drains. */
  readonly consumers: Consumer[];
  /** Handlers running now, aborted when a drain gives up on them. */
  readonly inFlight: Roster<HandlerContext>;
  /** Local calls whose handlers still run (the caller may have stopped waiting): drained at stop. */
  readonly localCalls: Tally;
  /** The deadlines of the local calls whose callers wait, on one timer. */
  readonly localDeadlines: CallDeadlines;
  /** The services' scheduled work, started with the consumers and stopped with them. */
  readonly schedules: Schedules;
  /** Each contract's call policies, resolved on its first call. */
  readonly contractPolicies: WeakMap<ActionContract, Required<CallPolicies>>;
  /** Each handler's policies (action or event handler), resolved on its first message. */
  readonly handlerPolicies: WeakMap<object, Required<HandlerPolicies>>;
}

export function createRuntime(options: NodeOptions): NodeRuntime {
  const names = new Set<string>();
  for (const service of options.services) {
    if (names.has(service.name)) throw new TypeError(`Service "${service.name}" is listed twice for one node`);
    names.add(service.name);
  }
  const extensions = options.extensions ?? [];
  const services = options.services;
  const id = options.nodeId ?? defaultNodeId();
  const transport = options.transport ?? memoryTransport();
  const log = options.logger ?? createLogger({ nodeId: id, level: options.logLevel ?? 'info' });
  const settings = settingsOf(options);
  // The hooks below run only once the node works, by when `rt` is made.
  const registry = new Registry(transport, () => nodeInfo(rt), log, settings.heartbeatIntervalMs);
  const policies = new PolicyEngine(options.policies, {
    breakerStateChanged: (target, state) => {
      rt.metrics.breakerTransitions.inc({ target, state });
      log[state === 'open' ? 'warn' : 'info']({ target, state }, `circuit breaker of ${target} is ${state}`);
    },
    retried: (target, { attempt, delayMs, error }) => {
      rt.metrics.retries.inc({ target });
      log.debug({ target, attempt, delayMs, code: error.code }, `retrying ${target} in ${delayMs} ms`);
    },
    retryBudgetExhausted: (target) => {
      rt.metrics.retryBudgetExhausted.inc({ target });
      log.warn({ target }, `retry budget of ${target} exhausted: failing without retrying`);
    },
    rejected: (target, code) => rt.metrics.rejections.inc({ target, code }),
    policyCreated: (target, kind) => rt.metrics.initializePolicy(target, kind),
  });
  const metrics = new NodeMetrics(policies, { defaultMetrics: options.defaultMetrics ?? false });
  const bindings = services.flatMap((service) =>
    service.events.map((handler) => ({ event: handler.contract.name, service: service.name, handler: handler.name })),
  );
  metrics.watchBacklogs(bindings, (binding) => transport.backlog(binding));
  metrics.initializeQueues(
    bindings,
    services.filter((service) => service.actions.size > 0).map((service) => service.name),
  );
  metrics.watchReadiness(async () => (await readiness(rt)).status !== 'fail');
  const rt: NodeRuntime = {
    id,
    options,
    services,
    servingHere: new Map(
      services.filter((service) => service.actions.size > 0).map((service) => [service.name, service]),
    ),
    transport,
    codec: codecFor(options.serializer ?? 'json'),
    settings,
    log,
    metrics,
    tracing: new Tracing(undefined),
    policies,
    identity: options.identity,
    flags: OpenFeature.getClient(id),
    extensions,
    arounds: extensions.filter((extension) => extension.around),
    emitters: extensions.filter((extension) => extension.emit),
    registry,
    outbound: {
      send: (contract, input, callOptions, origin) => send(rt, contract, input, callOptions, origin),
      publish: (contract, payload, emitOptions, origin, ctx) =>
        publish(rt, contract, payload, emitOptions, origin, ctx),
      startSpan: (parent, name, kind, attributes) => rt.tracing.child(parent, name, kind, attributes),
      fetch: (parent, url, init) => tracedFetch(rt.tracing, parent, url, init),
      traceHeaders: (span) => {
        const headers: Record<string, string> = {};
        rt.tracing.inject(span, headers);
        return headers;
      },
    },
    startedAt: Date.now(),
    state: 'idle',
    transportStatus: 'disconnected',
    opsServer: undefined,
    ops: undefined,
    opsConsumer: undefined,
    consumers: [],
    inFlight: new Roster(),
    localCalls: new Tally(),
    localDeadlines: new CallDeadlines(),
    schedules: new Schedules(),
    contractPolicies: new WeakMap(),
    handlerPolicies: new WeakMap(),
  };
  transport.onStatus((status) => {
    if (status !== rt.transportStatus) {
      log[status === 'connected' ? 'info' : 'warn']({ status }, `transport ${transport.kind} ${status}`);
    }
    rt.transportStatus = status;
  });
  return rt;
}
