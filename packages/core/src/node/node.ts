import type { Client as FlagClient } from '@openfeature/server-sdk';
import type { EmitOptions } from '../context.ts';
import type { ActionContract, EventContract, InputOf, OutputOf, PayloadInputOf } from '../contracts.ts';
import type { Logger } from '../logger.ts';
import type { HealthReport } from '../observability/health.ts';
import type { NodeMetrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { PolicyEngine } from '../policies/index.ts';
import type { NodeInfo, Registry } from '../registry.ts';
import type { ServiceDefinition } from '../service.ts';
import type { Transport } from '../transports/transport.ts';
import { admitFromOutside, admitNow, type OutsideCallOptions } from './calls.ts';
import { liveness, readiness } from './health.ts';
import { type NodeState, nodeInfo, startNode, stopNode } from './lifecycle.ts';
import type { NodeOptions } from './options.ts';
import { emitFromOutside } from './publish.ts';
import { createRuntime, type NodeRuntime } from './runtime.ts';

export type { NodeOptions, NodeState, OutsideCallOptions };

export function createNode(options: NodeOptions): ChassisNode {
  return new ChassisNode(options);
}

/**
 * A node: one process hosting one or more services. It connects the transport, starts the services,
 * serves their actions and consumes their events, and drains gracefully on `stop()`. Every action,
 * handler, call and publish gets metrics, a span and log lines carrying its correlation id, with no
 * user code. The class is the node's public face; each stage of a message's life is a function of this
 * folder that receives the node's runtime.
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
  private readonly runtime: NodeRuntime;

  constructor(options: NodeOptions) {
    const runtime = createRuntime(options);
    this.runtime = runtime;
    this.id = runtime.id;
    this.transport = runtime.transport;
    this.log = runtime.log;
    this.registry = runtime.registry;
    this.services = runtime.services;
    this.policies = runtime.policies;
    this.metrics = runtime.metrics;
    this.flags = runtime.flags;
  }

  get state(): NodeState {
    return this.runtime.state;
  }

  /**
   * The node's tracer, for work the node does not carry itself but traces like its own (a gRPC server's
   * requests, a gRPC client's calls): `unrecorded` then `record` make a span as the node samples,
   * `extract` and `inject` carry the W3C trace context, `Tracing.end` ends a span with its outcome. The
   * node makes it as it starts: read it per use, not once before `start()`.
   */
  get tracing(): Tracing {
    return this.runtime.tracing;
  }

  /** The port `/health/*` and `/metrics` are served on, once started with `opsPort`. */
  get opsPort(): number | undefined {
    return this.runtime.opsServer?.port;
  }

  /** What this node runs, as its heartbeats tell it. */
  info(): NodeInfo {
    return nodeInfo(this.runtime);
  }

  start(): Promise<void> {
    return startNode(this.runtime, this);
  }

  /**
   * Drains: not ready → stop taking messages → finish the ones in flight (up to the drain timeout, after
   * which their handlers are aborted and the broker redelivers them elsewhere) → stop hooks → close.
   */
  stop(): Promise<void> {
    return stopNode(this.runtime, this);
  }

  /** Alive unless stopped: a failing liveness probe means "restart me". */
  liveness(): Promise<HealthReport> {
    return liveness(this.runtime);
  }

  /**
   * Ready to take work: running (not starting or draining), the transport connected, and every declared
   * check passing. An open circuit breaker makes it `warn`: the node works, a dependency does not.
   */
  readiness(): Promise<HealthReport> {
    return readiness(this.runtime);
  }

  /**
   * Calls an action from outside any handler (a script, a test, the gateway). New work: it waits while
   * an event delivery has waited `maxEventDelayMs` for its handler (see NodeOptions).
   */
  call<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: OutsideCallOptions<C> = {},
  ): Promise<OutputOf<C>> {
    return admitFromOutside(this.runtime, contract, input, options);
  }

  /**
   * `call`, for a hot path that can take an answer either way (the gateway): the output itself when a
   * local handler gave it at once, else a promise. It saves the promise and the microtask hop of an
   * answer that was already there. A failure is always a rejected promise, never a throw.
   */
  callNow<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: OutsideCallOptions<C> = {},
  ): Promise<OutputOf<C>> | OutputOf<C> {
    return admitNow(this.runtime, contract, input, options);
  }

  /** Publishes an event from outside any handler. */
  emit<E extends EventContract>(
    contract: E,
    payload: PayloadInputOf<E>,
    options: EmitOptions & { correlationId?: string } = {},
  ): Promise<void> {
    return emitFromOutside(this.runtime, contract, payload, options);
  }
}
