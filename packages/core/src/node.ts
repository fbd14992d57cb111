import { hostname } from 'node:os';
import { type Client as FlagClient, type Provider as FlagProvider, OpenFeature } from '@openfeature/server-sdk';
import { ROOT_CONTEXT, type Context as TraceContext } from '@opentelemetry/api';
import type { LevelWithSilent } from 'pino';
import { type CallOptions, type Context, contextStorage, type EmitOptions } from './context.ts';
import {
  type ActionContract,
  type EventContract,
  fieldErrors,
  type InputOf,
  type OutputOf,
  type PayloadInputOf,
} from './contracts.ts';
import {
  type Codec,
  ContentType,
  codecFor,
  codecOf,
  deadlineOf,
  decodeBody,
  encodeTimeoutMs,
  Header,
  newId,
  requestDeadlineOf,
  type Serializer,
} from './envelope.ts';
import { ChassisError, toChassisError } from './errors.ts';
import type { Invocation, NodeExtension } from './extension.ts';
import type { Identity, IdentityVerifier } from './identity.ts';
import { createLogger, type Logger } from './logger.ts';
import { HandlerTimeout, timeLeft } from './node/deadline.ts';
import { dispositionOf, failureReason } from './node/disposition.ts';
import { EnvironmentFlagProvider } from './observability/flags.ts';
import {
  type CheckResult,
  type HealthCheck,
  type HealthReport,
  type OpsServer,
  runChecks,
  startOpsServer,
} from './observability/health.ts';
import { NodeMetrics, outcomeOf } from './observability/metrics.ts';
import { contextOf, type Span, SpanKind, Tracing, type TracingOptions } from './observability/tracing.ts';
import { type CallPolicies, type HandlerPolicies, type PolicyDefaults, PolicyEngine } from './policies/index.ts';
import { resolveDeadline } from './policies/timeout.ts';
import { type NodeInfo, Registry } from './registry.ts';
import type { ActionHandler, EventHandlerDefinition, ServiceDefinition, ServiceHandle } from './service.ts';
import { memoryTransport } from './transports/memory.ts';
import {
  type Consumer,
  type Disposition,
  type EventDelivery,
  type RpcRequest,
  rpcQueueName,
  type Transport,
  type TransportStatus,
  type WireMessage,
} from './transports/transport.ts';

export { redeliveryDelay } from './node/disposition.ts';

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
  /** Requests one instance of a service handles at once. */
  rpcConcurrency?: number;
  /** Events one handler instance handles at once. */
  eventPrefetch?: number;
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
  /** Serve `/health/live`, `/health/ready` and `/metrics` on this port (0 picks a free one). */
  opsPort?: number;
  opsHost?: string;
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

export type NodeState = 'idle' | 'starting' | 'running' | 'draining' | 'stopped';

/** What a call from outside any handler may add: the edge's correlation id and the caller's token. */
export interface OutsideCallOptions<C extends ActionContract = ActionContract> extends CallOptions<C> {
  correlationId?: string;
  /** The W3C trace context the call continues (the gateway passes the HTTP request's). */
  traceparent?: string;
  tracestate?: string;
}

/** Where a call or emit comes from: what it inherits from the message being handled, if any. */
interface Origin {
  messageId: string;
  /** Unset for a call from outside that named none: the message's own id then serves. */
  correlationId: string | undefined;
  causationId?: string | undefined;
  deadline: number;
  auth: string | undefined;
  /** Whose token `auth` is, once verified (requests only). */
  user?: Identity;
  /** The trace context new spans are children of. */
  trace: TraceContext;
  /** True inside a handler: what is sent is caused by the message being handled. */
  inherited: boolean;
}

/** What a served request answered, with the error for metrics and spans when it failed. */
interface Answer {
  message: WireMessage;
  error?: ChassisError;
}

/** What became of one event delivery, with the error when the handler failed. */
interface Settled {
  disposition: Disposition;
  error?: unknown;
}

const defaults = {
  callTimeoutMs: 5000,
  maxDeliveries: 5,
  redelivery: { initialDelayMs: 1000, maxDelayMs: 60_000 },
  rpcConcurrency: 100,
  eventPrefetch: 10,
  eventTimeoutMs: 30_000,
  drainTimeoutMs: 10_000,
  heartbeatIntervalMs: 5000,
};

const pass: CheckResult = { status: 'pass' };

export function createNode(options: NodeOptions): ChassisNode {
  return new ChassisNode(options);
}

/**
 * A node: one process hosting one or more services. It connects the transport, starts the services,
 * serves their actions and consumes their events, and drains gracefully on `stop()`. Every action,
 * handler, call and publish gets metrics, a span and log lines carrying its correlation id, with no
 * user code.
 */
export class ChassisNode {
  readonly id: string;
  readonly transport: Transport;
  readonly log: Logger;
  readonly registry: Registry;
  readonly services: readonly ServiceDefinition[];
  /** Every target's breaker, bulkhead and retry budget. */
  readonly policies: PolicyEngine;
  readonly metrics: NodeMetrics;
  /** Feature flags through OpenFeature (also `ctx.flags` in handlers). */
  readonly flags: FlagClient;
  private tracing = new Tracing(undefined);
  private readonly options: NodeOptions;
  private readonly extensions: readonly NodeExtension[];
  /** Extensions that wrap handlers, innermost first (so building the chain ends with the outermost). */
  private readonly arounds: readonly NodeExtension[];
  private readonly emitters: readonly NodeExtension[];
  private readonly codec: Codec;
  private readonly identity: IdentityVerifier | undefined;
  private readonly settings: typeof defaults & { validateOutput: boolean; localCalls: boolean };
  /** The services this node serves actions of, by name, for local calls. */
  private readonly servingHere: ReadonlyMap<string, ServiceDefinition>;
  /** Local calls whose handlers still run (the caller may have stopped waiting): drained at stop. */
  private readonly localCalls = new Set<Promise<unknown>>();
  private readonly consumers: Consumer[] = [];
  private readonly inFlight = new Set<HandlerContext>();
  private readonly contractPolicies = new WeakMap<ActionContract, Required<CallPolicies>>();
  private readonly outbound: Outbound = {
    send: (contract, input, options, origin) => this.send(contract, input, options, origin),
    publish: (contract, payload, options, origin, ctx) => this.publish(contract, payload, options, origin, ctx),
  };
  private readonly startedAt = Date.now();
  private readonly resolvedHandlerPolicies = new Map<string, Required<HandlerPolicies>>();
  private currentState: NodeState = 'idle';
  private transportStatus: TransportStatus = 'disconnected';
  private opsServer: OpsServer | undefined;

  constructor(options: NodeOptions) {
    const names = new Set<string>();
    for (const service of options.services) {
      if (names.has(service.name)) throw new TypeError(`Service "${service.name}" is listed twice for one node`);
      names.add(service.name);
    }
    this.options = options;
    this.extensions = options.extensions ?? [];
    // The first extension given is the outermost.
    this.arounds = this.extensions.filter((extension) => extension.around);
    this.emitters = this.extensions.filter((extension) => extension.emit);
    this.services = options.services;
    this.id = options.nodeId ?? `${hostname()}-${process.pid}-${newId().slice(0, 8)}`;
    this.transport = options.transport ?? memoryTransport();
    this.log = options.logger ?? createLogger({ nodeId: this.id, level: options.logLevel ?? 'info' });
    this.codec = codecFor(options.serializer ?? 'json');
    this.identity = options.identity;
    this.settings = {
      callTimeoutMs: options.callTimeoutMs ?? defaults.callTimeoutMs,
      maxDeliveries: options.maxDeliveries ?? defaults.maxDeliveries,
      redelivery: options.redelivery ?? defaults.redelivery,
      rpcConcurrency: options.rpcConcurrency ?? defaults.rpcConcurrency,
      eventPrefetch: options.eventPrefetch ?? defaults.eventPrefetch,
      eventTimeoutMs: options.eventTimeoutMs ?? defaults.eventTimeoutMs,
      drainTimeoutMs: options.drainTimeoutMs ?? defaults.drainTimeoutMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs,
      validateOutput: options.validateOutput ?? process.env.NODE_ENV !== 'production',
      localCalls: options.localCalls ?? true,
    };
    this.servingHere = new Map(
      options.services.filter((service) => service.actions.size > 0).map((service) => [service.name, service]),
    );
    this.registry = new Registry(this.transport, () => this.info(), this.log, this.settings.heartbeatIntervalMs);
    this.policies = new PolicyEngine(options.policies, {
      breakerStateChanged: (target, state) => {
        this.metrics.breakerTransitions.inc({ target, state });
        this.log[state === 'open' ? 'warn' : 'info']({ target, state }, `circuit breaker of ${target} is ${state}`);
      },
      retried: (target, { attempt, delayMs, error }) => {
        this.metrics.retries.inc({ target });
        this.log.debug({ target, attempt, delayMs, code: error.code }, `retrying ${target} in ${delayMs} ms`);
      },
      retryBudgetExhausted: (target) => {
        this.metrics.retryBudgetExhausted.inc({ target });
        this.log.warn({ target }, `retry budget of ${target} exhausted: failing without retrying`);
      },
      rejected: (target, code) => this.metrics.rejections.inc({ target, code }),
    });
    this.metrics = new NodeMetrics(this.policies, { defaultMetrics: options.defaultMetrics ?? false });
    this.metrics.watchBacklogs(
      this.services.flatMap((service) =>
        service.events.map((handler) => ({
          event: handler.contract.name,
          service: service.name,
          handler: handler.name,
        })),
      ),
      (binding) => this.transport.backlog(binding),
    );
    this.flags = OpenFeature.getClient(this.id);
    this.transport.onStatus((status) => {
      if (status !== this.transportStatus) {
        this.log[status === 'connected' ? 'info' : 'warn']({ status }, `transport ${this.transport.kind} ${status}`);
      }
      this.transportStatus = status;
    });
  }

  get state(): NodeState {
    return this.currentState;
  }

  /** The port `/health/*` and `/metrics` are served on, once started with `opsPort`. */
  get opsPort(): number | undefined {
    return this.opsServer?.port;
  }

  /** What this node runs, as its heartbeats tell it. */
  info(): NodeInfo {
    const status = this.currentState === 'stopped' ? 'left' : this.currentState === 'draining' ? 'draining' : 'up';
    return {
      nodeId: this.id,
      host: hostname(),
      pid: process.pid,
      transport: this.transport.kind,
      startedAt: this.startedAt,
      status,
      services: this.services.map((service) => ({
        name: service.name,
        version: service.version,
        actions: [...service.actions.values()].map((handler) => handler.contract.name),
        events: service.events.map((handler) => handler.contract.name),
      })),
    };
  }

  async start(): Promise<void> {
    if (this.currentState !== 'idle') throw new Error(`The node is ${this.currentState}; a node starts once`);
    this.currentState = 'starting';
    try {
      // The ops port answers first, so a probe sees "starting" rather than a refused connection.
      if (this.options.opsPort !== undefined) {
        this.opsServer = await startOpsServer(
          this.options.opsPort,
          { live: () => this.liveness(), ready: () => this.readiness(), metrics: () => this.metrics.text() },
          this.options.opsHost,
        );
      }
      this.tracing = await Tracing.create({
        ...this.options.tracing,
        nodeId: this.id,
        defaultServiceName: this.services.map((s) => s.name).join(',') || 'chassis',
      });
      await OpenFeature.setProviderAndWait(this.id, this.options.flags ?? new EnvironmentFlagProvider());
      await this.transport.connect();
      for (const extension of this.extensions) await extension.start?.(this);
      for (const service of this.services) await service.start?.(this.handleOf(service));
      for (const service of this.services) {
        if (service.actions.size > 0) {
          this.consumers.push(
            await this.transport.serve(service.name, (request) => this.serveRequest(service, request), {
              concurrency: this.settings.rpcConcurrency,
            }),
          );
        }
        for (const handler of service.events) {
          this.consumers.push(
            await this.transport.subscribe(
              { event: handler.contract.name, service: service.name, handler: handler.name },
              (delivery) => this.consume(service, handler, delivery),
              { prefetch: handler.options.prefetch ?? this.settings.eventPrefetch },
            ),
          );
        }
      }
      await this.registry.start();
      this.currentState = 'running';
      this.log.info(
        { services: this.services.map((s) => s.name), transport: this.transport.kind, opsPort: this.opsPort },
        `node started: ${this.services.map((s) => s.name).join(', ') || 'no services'} on ${this.transport.kind}`,
      );
    } catch (error) {
      this.currentState = 'stopped';
      await Promise.allSettled(this.consumers.splice(0).map((consumer) => consumer.stop()));
      await this.transport.close().catch(() => undefined);
      await this.opsServer?.close();
      throw error;
    }
  }

  /**
   * Drains: not ready → stop taking messages → finish the ones in flight (up to the drain timeout, after
   * which their handlers are aborted and the broker redelivers them elsewhere) → stop hooks → close.
   */
  async stop(): Promise<void> {
    if (this.currentState !== 'running' && this.currentState !== 'starting') return;
    this.currentState = 'draining';
    this.log.info('node draining');
    const stopped = Promise.allSettled([
      ...this.consumers.splice(0).map((consumer) => consumer.stop()),
      ...this.localCalls,
    ]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      stopped.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.settings.drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn(
        { inFlight: this.inFlight.size },
        `drain timed out after ${this.settings.drainTimeoutMs} ms; aborting work in flight`,
      );
      const reason = new ChassisError('UNAVAILABLE', 'The node is shutting down');
      for (const ctx of this.inFlight) ctx.abort(reason);
    }
    for (const service of [...this.services].reverse()) {
      try {
        await service.stop?.(this.handleOf(service));
      } catch (error) {
        this.log.error({ err: error, service: service.name }, 'stop hook failed');
      }
    }
    for (const extension of [...this.extensions].reverse()) {
      try {
        await extension.stop?.(this);
      } catch (error) {
        this.log.error({ err: error, extension: extension.name }, `extension ${extension.name} failed to stop`);
      }
    }
    this.currentState = 'stopped';
    await this.registry.stop().catch(() => undefined);
    await this.transport.close();
    await this.tracing.shutdown().catch((error) => this.log.warn({ err: error }, 'spans could not be flushed'));
    await this.opsServer?.close();
    this.log.info('node stopped');
  }

  /** Alive unless stopped: a failing liveness probe means "restart me". */
  liveness(): Promise<HealthReport> {
    return runChecks(`chassis node ${this.id}`, {
      'node:process': () =>
        this.currentState === 'stopped' ? { status: 'fail', output: 'the node has stopped' } : pass,
    });
  }

  /**
   * Ready to take work: running (not starting or draining), the transport connected, and every declared
   * check passing. An open circuit breaker makes it `warn`: the node works, a dependency does not.
   */
  readiness(): Promise<HealthReport> {
    const checks: Record<string, HealthCheck> = {
      'node:state': () =>
        this.currentState === 'running'
          ? pass
          : { status: 'fail', output: `the node is ${this.currentState}`, observedValue: this.currentState },
      'transport:connection': () =>
        this.transportStatus === 'connected'
          ? { status: 'pass', observedValue: this.transport.kind }
          : { status: 'fail', output: `${this.transport.kind} transport is ${this.transportStatus}` },
      'circuit-breakers': () => {
        const open = this.policies.breakerStates().filter((b) => b.state !== 'closed');
        return open.length === 0
          ? pass
          : { status: 'warn', output: `open: ${open.map((b) => b.target).join(', ')}`, observedValue: open };
      },
      ...this.options.checks,
    };
    for (const extension of this.extensions) Object.assign(checks, extension.checks?.());
    for (const service of this.services) {
      for (const [name, check] of Object.entries(service.health)) checks[`${service.name}:${name}`] = check;
    }
    return runChecks(`chassis node ${this.id}`, checks);
  }

  /** Calls an action from outside any handler (a script, a test, the gateway). */
  call<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: OutsideCallOptions<C> = {},
  ): Promise<OutputOf<C>> {
    return this.send(contract, input, options, {
      messageId: '',
      correlationId: options.correlationId,
      deadline: Number.POSITIVE_INFINITY,
      auth: options.auth,
      trace:
        options.traceparent === undefined
          ? ROOT_CONTEXT
          : this.tracing.extract({
              traceparent: options.traceparent,
              ...(options.tracestate === undefined ? {} : { tracestate: options.tracestate }),
            }),
      inherited: false,
    });
  }

  /** Publishes an event from outside any handler. */
  emit<E extends EventContract>(
    contract: E,
    payload: PayloadInputOf<E>,
    options: EmitOptions & { correlationId?: string } = {},
  ): Promise<void> {
    return this.publish(contract, payload, options, {
      messageId: '',
      correlationId: options.correlationId,
      deadline: Number.POSITIVE_INFINITY,
      auth: undefined,
      trace: ROOT_CONTEXT,
      inherited: false,
    });
  }

  private async send<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: CallOptions<C>,
    origin: Origin,
  ): Promise<OutputOf<C>> {
    const started = performance.now();
    const deadline = resolveDeadline({
      now: Date.now(),
      callTimeoutMs: options.timeoutMs,
      callDeadline: options.deadline,
      contractTimeoutMs: contract.timeoutMs,
      defaultTimeoutMs: this.settings.callTimeoutMs,
      inherited: origin.deadline,
    });
    const span = this.tracing.recording
      ? this.tracing.start(`call ${contract.name}`, SpanKind.CLIENT, origin.trace, {
          'rpc.system': 'chassis',
          'rpc.service': contract.service,
          'rpc.method': contract.action,
        })
      : Tracing.passThrough(origin.trace);
    let failure: unknown;
    try {
      if (deadline <= Date.now()) {
        throw new ChassisError(
          'TIMEOUT',
          origin.inherited
            ? `The deadline of the request being handled has passed; ${contract.name} was not called`
            : `The deadline passed before ${contract.name} was called`,
          { data: { action: contract.name } },
        );
      }
      const local = this.localService(contract.service);
      const body = local ? undefined : this.encode(input, contract.name);
      return await this.policies.call<InputOf<C>, OutputOf<C>>({
        target: contract.name,
        idempotent: contract.idempotent,
        deadline,
        input,
        policies: this.callPolicies(contract, options),
        fallback: options.fallback,
        attempt: this.attempts(local, contract, input, body, deadline, origin, span),
      });
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      this.metrics.observeClient(contract.name, outcomeOf(failure), (performance.now() - started) / 1000);
      Tracing.end(span, failure);
    }
  }

  /**
   * One attempt of a call, as the policies run it. Made here rather than inline: the hot paths keep
   * their closures out of variable and property positions, where tsx (esbuild's keepNames) names each
   * one with a property write on every call.
   */
  private attempts<C extends ActionContract>(
    local: ServiceDefinition | undefined,
    contract: C,
    input: InputOf<C>,
    body: Uint8Array | undefined,
    deadline: number,
    origin: Origin,
    span: Span,
  ): (attempt: number) => Promise<OutputOf<C>> {
    return local
      ? (attempt) => this.callLocal(local, contract, input, deadline, origin, span, attempt)
      : (attempt) => this.sendOnce(contract, body!, deadline, origin, span, attempt);
  }

  /** The policies of a call: the contract's over the node's, resolved once, unless the call overrides. */
  private callPolicies(contract: ActionContract, options: CallPolicies): Required<CallPolicies> {
    const { retry, breaker, bulkhead, cache } = options;
    if (retry !== undefined || breaker !== undefined || bulkhead !== undefined || cache !== undefined) {
      return this.policies.resolveCall(contract.policies, { retry, breaker, bulkhead, cache });
    }
    let resolved = this.contractPolicies.get(contract);
    if (!resolved) {
      resolved = this.policies.resolveCall(contract.policies);
      this.contractPolicies.set(contract, resolved);
    }
    return resolved;
  }

  /**
   * The service this node runs, when calls to it may stay in the process: same validation, deadline,
   * identity, policies, metrics and spans as over the wire, without encoding, decoding or the broker.
   */
  private localService(name: string): ServiceDefinition | undefined {
    if (!this.settings.localCalls || this.currentState !== 'running') return undefined;
    return this.servingHere.get(name);
  }

  /** One attempt at a call served by this node's own instance of the service. */
  private callLocal<C extends ActionContract>(
    service: ServiceDefinition,
    contract: C,
    input: unknown,
    deadline: number,
    caller: Origin,
    clientSpan: Span,
    attempt: number,
  ): Promise<OutputOf<C>> {
    let remainingMs: number;
    try {
      remainingMs = timeLeft(contract, deadline, attempt, Date.now());
    } catch (error) {
      return Promise.reject(error);
    }
    const handler = service.actions.get(contract.action);
    if (!handler) return Promise.reject(unknownAction(service, contract.action));
    const started = performance.now();
    const span = this.startServing(service, contract.action, contextOf(clientSpan));
    const messageId = newId();
    const origin: Origin = {
      messageId,
      correlationId: caller.correlationId ?? messageId,
      causationId: caller.inherited ? caller.messageId : undefined,
      deadline,
      auth: caller.auth,
      trace: contextOf(span),
      inherited: true,
    };
    const work = this.runAction(service, handler, input, origin, span);
    this.localCalls.add(work);
    // One promise for the caller, settled by the handler or by the timer, whichever comes first: the
    // caller waits no longer than over the wire would, and the handler, as there, runs on. (Not
    // Promise.race: that costs three more promises on the path every local call takes.)
    return new Promise<OutputOf<C>>((resolve, reject) => {
      let answered = false;
      const timer = setTimeout(() => {
        answered = true;
        const timeout = new ChassisError('TIMEOUT', `No reply from ${contract.name} within ${remainingMs} ms`, {
          data: { action: contract.name },
        });
        this.endServing(service, contract.action, span, started, timeout);
        reject(ChassisError.fromJSON(timeout.toJSON()));
      }, remainingMs);
      work.then(
        (output) => {
          this.localCalls.delete(work);
          clearTimeout(timer);
          if (answered) return;
          this.endServing(service, contract.action, span, started, undefined);
          resolve(output as OutputOf<C>);
        },
        (error: unknown) => {
          this.localCalls.delete(work);
          clearTimeout(timer);
          if (answered) return;
          this.endServing(service, contract.action, span, started, error);
          // What the caller gets is what the wire would carry: the error's serialized form.
          reject(ChassisError.fromJSON(toChassisError(error).toJSON()));
        },
      );
    });
  }

  /** One attempt at a call: one request on the wire, with whatever time is left. */
  private async sendOnce<C extends ActionContract>(
    contract: C,
    body: Uint8Array,
    deadline: number,
    origin: Origin,
    span: Span,
    attempt: number,
  ): Promise<OutputOf<C>> {
    const remainingMs = timeLeft(contract, deadline, attempt, Date.now());
    const headers = this.headersFor(origin, span);
    // The time left, not the deadline itself: the receiver counts it on its own clock, so clock skew
    // between the nodes does not move it.
    headers[Header.timeoutMs] = encodeTimeoutMs(remainingMs);
    if (attempt > 1) headers[Header.attempt] = String(attempt);
    if (origin.auth) headers[Header.auth] = origin.auth;
    const reply = await this.transport.request(
      contract.service,
      contract.action,
      { headers, body },
      { timeoutMs: remainingMs },
    );
    const decoded = decodeBody(reply);
    if (reply.headers[Header.status] === 'error') throw ChassisError.fromJSON(decoded);
    return decoded as OutputOf<C>;
  }

  private async publish<E extends EventContract>(
    contract: E,
    payload: PayloadInputOf<E>,
    options: EmitOptions,
    origin: Origin,
    ctx?: Context,
  ): Promise<void> {
    const parsed = contract.payload.safeParse(payload);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new ChassisError('VALIDATION', `Event ${contract.name} not emitted: ${describeFields(fields)}`, {
        data: { event: contract.name, fields },
      });
    }
    const span = this.tracing.recording
      ? this.tracing.start(`publish ${contract.name}`, SpanKind.PRODUCER, origin.trace, {
          'messaging.system': this.transport.kind,
          'messaging.destination.name': contract.name,
        })
      : Tracing.passThrough(origin.trace);
    let failure: unknown;
    try {
      const headers = this.headersFor(origin, span);
      headers[Header.type] = contract.name;
      if (options.deadline !== undefined) headers[Header.deadline] = String(options.deadline);
      const message = { headers, body: this.encode(parsed.data, contract.name) };
      // An extension may take it (into an outbox, in the handler's transaction); else it goes out now.
      if (ctx) {
        for (const extension of this.emitters) {
          if (await extension.emit!(ctx, contract.name, message)) return;
        }
      }
      await this.transport.publish(contract.name, message);
      this.metrics.published.inc({ event: contract.name });
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      Tracing.end(span, failure);
    }
  }

  /**
   * The envelope headers of an outgoing request or event. A header with a default is left out when the
   * default holds — no correlation id means the message's own id, no content-type means JSON — since
   * every header costs on every message (NATS validates and encodes each one).
   */
  private headersFor(origin: Origin, span: Span): Record<string, string> {
    const headers: Record<string, string> = { [Header.id]: newId() };
    if (origin.correlationId !== undefined) headers[Header.correlationId] = origin.correlationId;
    if (origin.inherited) headers[Header.causationId] = origin.messageId;
    if (this.codec.contentType !== ContentType.json) headers[Header.contentType] = this.codec.contentType;
    this.tracing.inject(span, headers);
    return headers;
  }

  private encode(value: unknown, what: string, codec: Codec = this.codec): Uint8Array {
    try {
      return codec.encode(value);
    } catch (error) {
      throw new ChassisError('VALIDATION', `The data of ${what} cannot be encoded as ${codec.contentType}`, {
        cause: error,
      });
    }
  }

  /** Serves one request with its span, metrics and in-flight count around it. */
  private async serveRequest(service: ServiceDefinition, request: RpcRequest): Promise<WireMessage> {
    const started = performance.now();
    // Only declared actions become label values: garbage names must not grow the metric's cardinality.
    const action = service.actions.has(request.action) ? request.action : '(unknown)';
    const span = this.startServing(service, action, this.tracing.extract(request.message.headers));
    let failure: unknown;
    try {
      const answer = await this.answer(service, request, span);
      failure = answer.error;
      return answer.message;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      this.endServing(service, action, span, started, failure);
    }
  }

  /** A request served here begins, over the wire or by a local call: its server span, the in-flight count. */
  private startServing(service: ServiceDefinition, action: string, parent: TraceContext): Span {
    this.metrics.inFlightRpc.inc();
    return this.tracing.recording
      ? this.tracing.start(`serve ${service.name}.${action}`, SpanKind.SERVER, parent, {
          'rpc.system': 'chassis',
          'rpc.service': service.name,
          'rpc.method': action,
          'chassis.node': this.id,
        })
      : Tracing.passThrough(parent);
  }

  /** …and ends: the server histogram, the span, the in-flight count. */
  private endServing(service: ServiceDefinition, action: string, span: Span, started: number, failure: unknown): void {
    this.metrics.inFlightRpc.dec();
    this.metrics.observeServer(service.name, action, outcomeOf(failure), (performance.now() - started) / 1000);
    Tracing.end(span, failure);
  }

  private async answer(
    service: ServiceDefinition,
    { action, message, receivedAt = Date.now() }: RpcRequest,
    span: Span,
  ): Promise<Answer> {
    let codec = this.codec;
    // A reply says only what is not implied: an error says so (`status: error`), and a body that is
    // not JSON says what it is. A plain JSON answer travels with no header at all.
    const reply = (status: 'ok' | 'error', body: unknown): WireMessage => {
      const headers: Record<string, string> = {};
      if (status === 'error') headers[Header.status] = 'error';
      if (codec.contentType !== ContentType.json) headers[Header.contentType] = codec.contentType;
      const encoded = status === 'ok' ? this.encode(body, `${service.name}.${action}`, codec) : codec.encode(body);
      return { headers, body: encoded };
    };
    const fail = (error: ChassisError): Answer => ({ message: reply('error', error.toJSON()), error });

    let input: unknown;
    try {
      codec = codecOf(message);
      input = decodeBody(message);
    } catch (error) {
      const reason = toChassisError(error);
      const queue = rpcQueueName(service.name);
      this.log.warn(
        { service: service.name, action, reason: reason.message },
        `dead-lettered an unreadable request on ${queue}`,
      );
      this.metrics.deadLetters.inc({ queue });
      await this.transport
        .deadLetter(queue, message, reason.message)
        .catch((deadLetterError) => this.log.error({ err: deadLetterError }, 'could not dead-letter a request'));
      return fail(reason);
    }

    const handler = service.actions.get(action);
    if (!handler) return fail(unknownAction(service, action));
    const deadline =
      requestDeadlineOf(message, receivedAt) ??
      receivedAt + (handler.contract.timeoutMs ?? this.settings.callTimeoutMs);
    try {
      const output = await this.runAction(service, handler, input, this.inboundOrigin(message, deadline, span), span);
      return { message: reply('ok', output) };
    } catch (error) {
      return fail(toChassisError(error));
    }
  }

  /**
   * Runs an action for a request, wherever it came from (the transport or a local call): its deadline,
   * its input against the contract, the caller's identity, the handler's policies, and its output
   * against the contract. Resolves with the output, throws a `ChassisError`.
   */
  private async runAction(
    service: ServiceDefinition,
    handler: ActionHandler,
    input: unknown,
    origin: Origin,
    span: Span,
  ): Promise<unknown> {
    const { contract } = handler;
    const { deadline } = origin;
    if (deadline <= Date.now()) {
      // Nobody waits for this answer any more: running it would only waste work.
      this.log.debug({ action: contract.name }, 'skipped a request whose deadline had passed');
      throw new ChassisError('TIMEOUT', `The deadline of ${contract.name} passed before it was handled`);
    }
    const parsed = contract.input.safeParse(input);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new ChassisError('VALIDATION', `Invalid input for ${contract.name}: ${describeFields(fields)}`, {
        data: { action: contract.name, fields },
      });
    }
    if (origin.auth !== undefined && this.identity) origin.user = await this.identity(origin.auth);
    const target = `${service.name}.${contract.action}`;
    let output: unknown;
    try {
      output = await this.policies.handle(target, this.handlerPolicies(target, handler.policies), () =>
        this.runInContext({ kind: 'action', service }, origin, 1, span, false, (ctx) => handler.run(parsed.data, ctx)),
      );
    } catch (error) {
      const chassisError = toChassisError(error);
      if (chassisError.code === 'INTERNAL') {
        this.log.error({ err: error, action: contract.name }, `${contract.name} failed`);
      } else {
        this.log.debug(
          { code: chassisError.code, action: contract.name },
          `${contract.name} answered ${chassisError.code}`,
        );
      }
      throw chassisError;
    }
    // Finished after its deadline (its signal aborted, say, and it returned anyway): whatever it
    // returned arrives too late to be an answer.
    if (Date.now() >= deadline) throw new ChassisError('TIMEOUT', `${contract.name} finished after its deadline`);
    if (!this.settings.validateOutput) return output;
    const checked = contract.output.safeParse(output);
    if (!checked.success) {
      const fields = fieldErrors(checked.error);
      this.log.error({ action: contract.name, fields }, 'handler output does not match its contract');
      throw new ChassisError(
        'INTERNAL',
        `The output of ${contract.name} does not match its contract: ${describeFields(fields)}`,
        { data: { action: contract.name, fields } },
      );
    }
    return checked.data;
  }

  /** Handles one event delivery with its span, metrics and in-flight count around it. */
  private async consume(
    service: ServiceDefinition,
    handler: EventHandlerDefinition,
    delivery: EventDelivery,
  ): Promise<Disposition> {
    const started = performance.now();
    const subscription = `${service.name}.${handler.name}`;
    const parent = this.tracing.extract(delivery.message.headers);
    const span = this.tracing.recording
      ? this.tracing.start(`consume ${handler.contract.name}`, SpanKind.CONSUMER, parent, {
          'messaging.system': this.transport.kind,
          'messaging.destination.name': handler.contract.name,
          'messaging.consumer.group.name': subscription,
          'chassis.attempt': delivery.attempt,
        })
      : Tracing.passThrough(parent);
    this.metrics.inFlightEvents.inc();
    try {
      const { disposition, error } = await this.settle(service, handler, subscription, delivery, span);
      if (disposition.kind === 'retry') this.metrics.redeliveries.inc({ subscription });
      if (disposition.kind === 'dead') this.metrics.deadLetters.inc({ queue: subscription });
      const outcome = disposition.kind === 'dead' && error === undefined ? 'BAD_MESSAGE' : outcomeOf(error);
      this.metrics.observeEvent(
        service.name,
        subscription,
        handler.contract.name,
        outcome,
        (performance.now() - started) / 1000,
      );
      Tracing.end(span, error ?? (disposition.kind === 'dead' ? new Error(disposition.reason) : undefined));
      return disposition;
    } finally {
      this.metrics.inFlightEvents.dec();
    }
  }

  private async settle(
    service: ServiceDefinition,
    handler: EventHandlerDefinition,
    subscription: string,
    { message, attempt }: EventDelivery,
    span: Span,
  ): Promise<Settled> {
    const { contract } = handler;
    const dead = (reason: string, error?: unknown): Settled => {
      this.log.warn(
        { subscription, event: contract.name, attempt, reason },
        `dead-lettered ${contract.name}: ${reason}`,
      );
      return { disposition: { kind: 'dead', reason }, error };
    };
    let payload: unknown;
    try {
      payload = decodeBody(message);
    } catch (error) {
      return dead(toChassisError(error).message);
    }
    const eventDeadline = deadlineOf(message);
    if (eventDeadline !== undefined && eventDeadline <= Date.now()) {
      return dead(`expired at ${new Date(eventDeadline).toISOString()} before it was handled`);
    }
    const parsed = contract.payload.safeParse(payload);
    if (!parsed.success) {
      return dead(`payload does not match ${contract.name}: ${describeFields(fieldErrors(parsed.error))}`);
    }
    const timeoutMs = handler.options.timeoutMs ?? this.settings.eventTimeoutMs;
    const deadline = Math.min(Date.now() + timeoutMs, eventDeadline ?? Number.POSITIVE_INFINITY);
    const origin = this.inboundOrigin(message, deadline, span);
    try {
      await this.policies.handle(subscription, this.handlerPolicies(subscription, handler.options), () =>
        this.runInContext({ kind: 'event', service, subscription }, origin, attempt, span, true, (ctx) =>
          handler.run(parsed.data, ctx),
        ),
      );
      return { disposition: { kind: 'ack' } };
    } catch (error) {
      const disposition = dispositionOf(error, attempt, {
        maxDeliveries: handler.options.maxDeliveries ?? this.settings.maxDeliveries,
        redelivery: this.settings.redelivery,
      });
      if (disposition.kind === 'dead') return dead(disposition.reason, error);
      this.log.info(
        { subscription, attempt, delayMs: disposition.delayMs, reason: failureReason(error) },
        `${contract.name} will be redelivered`,
      );
      return { disposition, error };
    }
  }

  private inboundOrigin(message: WireMessage, deadline: number, span: Span): Origin {
    const messageId = message.headers[Header.id] ?? newId();
    return {
      messageId,
      correlationId: message.headers[Header.correlationId] ?? messageId,
      causationId: message.headers[Header.causationId],
      deadline,
      auth: message.headers[Header.auth],
      trace: contextOf(span),
      inherited: true,
    };
  }

  /**
   * Runs a handler inside its context. Its abort signal fires at the deadline (or when a drain gives
   * up). An event handler is also abandoned at its deadline (`race`), so a hung one gives its delivery
   * back; a request handler is not — its caller has stopped waiting anyway, and the late answer is dropped.
   */
  private async runInContext<T>(
    invocation: Omit<Invocation, 'ctx'>,
    origin: Origin,
    attempt: number,
    span: Span,
    race: boolean,
    run: (ctx: Context) => Promise<T> | T,
  ): Promise<T> {
    const { service } = invocation;
    const ctx = new HandlerContext(this.outbound, service.name, this.id, origin, attempt, span, this.log, this.flags);
    this.inFlight.add(ctx);
    try {
      // Extensions wrap the handler, outermost first, all inside the handler's async context.
      const work = (
        this.arounds.length === 0
          ? contextStorage.run(ctx, run, ctx)
          : contextStorage.run(ctx, () => this.wrapped(0, { ...invocation, ctx }, run))
      ) as Promise<T> | T;
      return race ? await Promise.race([work, ctx.expiry()]) : await work;
    } finally {
      ctx.finish();
      this.inFlight.delete(ctx);
    }
  }

  /** The handler inside the extensions from the `index`th inwards. */
  private async wrapped<T>(index: number, invocation: Invocation, run: (ctx: Context) => Promise<T> | T): Promise<T> {
    const extension = this.arounds[index];
    if (!extension) return run(invocation.ctx);
    return extension.around!(invocation, () => this.wrapped(index + 1, invocation, run)) as Promise<T>;
  }

  private handlerPolicies(target: string, own: HandlerPolicies): Required<HandlerPolicies> {
    let resolved = this.resolvedHandlerPolicies.get(target);
    if (!resolved) {
      resolved = this.policies.resolveHandler({ bulkhead: own.bulkhead, rateLimit: own.rateLimit });
      this.resolvedHandlerPolicies.set(target, resolved);
    }
    return resolved;
  }

  private handleOf(service: ServiceDefinition): ServiceHandle {
    return {
      name: service.name,
      nodeId: this.id,
      log: this.log.child({ service: service.name }),
      call: (contract, input) => this.call(contract, input),
      breaker: (target, settings) => this.policies.breaker(target, settings),
    };
  }
}

/** How a handler's context reaches the node's private send and publish. */
interface Outbound {
  send<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: CallOptions<C>,
    origin: Origin,
  ): Promise<OutputOf<C>>;
  publish<E extends EventContract>(
    contract: E,
    payload: PayloadInputOf<E>,
    options: EmitOptions,
    origin: Origin,
    ctx: Context,
  ): Promise<void>;
}

/**
 * A handler's `ctx`. A class rather than an object of closures, and its abort signal (with the timer
 * behind it) is made only when a handler asks for it: most never do, and every request pays for what
 * is made here.
 */
class HandlerContext implements Context {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly outbound: Outbound,
    readonly service: string,
    readonly nodeId: string,
    private readonly origin: Origin,
    readonly attempt: number,
    readonly span: Span,
    readonly log: Logger,
    readonly flags: FlagClient,
  ) {}

  get messageId(): string {
    return this.origin.messageId;
  }
  get correlationId(): string {
    return this.origin.correlationId ?? this.origin.messageId;
  }
  get causationId(): string | undefined {
    return this.origin.causationId;
  }
  get deadline(): number {
    return this.origin.deadline;
  }
  get auth(): string | undefined {
    return this.origin.auth;
  }
  get user(): Identity | undefined {
    return this.origin.user;
  }

  get signal(): AbortSignal {
    return this.abortController().signal;
  }

  remainingMs(): number {
    return Math.max(0, this.origin.deadline - Date.now());
  }

  call<C extends ActionContract>(contract: C, input: InputOf<C>, options: CallOptions<C> = {}): Promise<OutputOf<C>> {
    const origin = options.auth === undefined ? this.origin : { ...this.origin, auth: options.auth };
    return this.outbound.send(contract, input, options, origin);
  }

  emit<E extends EventContract>(contract: E, payload: PayloadInputOf<E>, options: EmitOptions = {}): Promise<void> {
    return this.outbound.publish(contract, payload, options, this.origin, this);
  }

  abort(reason: unknown): void {
    this.abortController().abort(reason);
  }

  /** Rejects with the handler's own TIMEOUT at the deadline, aborting its signal. */
  expiry(): Promise<never> {
    const { signal } = this.abortController();
    return new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }

  finish(): void {
    clearTimeout(this.timer);
  }

  private abortController(): AbortController {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      this.timer = setTimeout(
        () => controller.abort(new HandlerTimeout(`The deadline passed while ${this.service} was handling it`)),
        Math.max(0, this.origin.deadline - Date.now()),
      );
    }
    return this.controller;
  }
}

function unknownAction(service: ServiceDefinition, action: string): ChassisError {
  const known = [...service.actions.keys()];
  return new ChassisError(
    'UNKNOWN_ACTION',
    `Service "${service.name}" has no action "${action}"; it serves: ${known.join(', ')}`,
    {
      data: { service: service.name, action, actions: known },
    },
  );
}

function describeFields(fields: { path: string; message: string }[]): string {
  return fields.map((field) => `${field.path}: ${field.message}`).join('; ');
}
