import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PolicyEngine, PolicyKind } from '../policies/index.ts';
import { type EventBinding, rpcQueueName, subscriptionName } from '../transports/transport.ts';
import { BoundHistogram } from './bound-histogram.ts';

/**
 * The metrics every node exposes with no user code (prom-client, Prometheus text on `/metrics`).
 * Each node has its own registry, so several nodes in one process never collide.
 *
 * Durations are histograms in seconds with an `outcome` label: `ok`, or the error code
 * (`TIMEOUT`, `VALIDATION`, `INSUFFICIENT_SHARES`, …) — codes are a bounded set, so cardinality stays low.
 */
const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const breakerValue = { closed: 0, 'half-open': 0.5, open: 1 } as const;

/** How often the event loop delay histogram samples (see `collectDefaultMetrics` below). */
const EVENT_LOOP_SAMPLE_MS = 100;

export class NodeMetrics {
  readonly registry = new Registry();

  readonly rpcServer = new Histogram({
    name: 'chassis_rpc_server_duration_seconds',
    help: 'Time to handle a request, by service, action and outcome',
    labelNames: ['service', 'action', 'outcome'] as const,
    buckets,
    registers: [this.registry],
  });
  readonly rpcClient = new Histogram({
    name: 'chassis_rpc_client_duration_seconds',
    help: 'Time a call took as its caller saw it, retries included, by target action and outcome',
    labelNames: ['target', 'outcome'] as const,
    buckets,
    registers: [this.registry],
  });
  readonly eventHandler = new Histogram({
    name: 'chassis_event_handler_duration_seconds',
    help: 'Time to handle one delivery of an event, by subscription and outcome',
    labelNames: ['service', 'subscription', 'event', 'outcome'] as const,
    buckets,
    registers: [this.registry],
  });
  readonly schedule = new Histogram({
    name: 'chassis_schedule_duration_seconds',
    help: 'Time a run of scheduled work took, by service, schedule and outcome',
    labelNames: ['service', 'schedule', 'outcome'] as const,
    buckets,
    registers: [this.registry],
  });
  readonly published = new Counter({
    name: 'chassis_events_published_total',
    help: 'Events published (confirmed by the broker)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'chassis_retries_total',
    help: 'Calls retried, by target',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });
  readonly retryBudgetExhausted = new Counter({
    name: 'chassis_retry_budget_exhausted_total',
    help: 'Retries refused because the target’s retry budget was spent',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });
  readonly redeliveries = new Counter({
    name: 'chassis_redeliveries_total',
    help: 'Event deliveries handed back to the broker to come again later',
    labelNames: ['subscription'] as const,
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'chassis_dead_letters_total',
    help: 'Messages dead-lettered, by subscription or RPC queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly rejections = new Counter({
    name: 'chassis_policy_rejections_total',
    help: 'Work refused by a policy: circuit open, bulkhead full, rate limited',
    labelNames: ['target', 'code'] as const,
    registers: [this.registry],
  });
  readonly breakerTransitions = new Counter({
    name: 'chassis_circuit_breaker_transitions_total',
    help: 'Circuit breaker state changes, by target and new state',
    labelNames: ['target', 'state'] as const,
    registers: [this.registry],
  });
  /**
   * Requests and event deliveries being handled now, counted in plain numbers on every message and read
   * into `chassis_in_flight` at scrape time: prom-client's `inc`/`dec` hash the labels each time.
   */
  readonly handling = { rpc: 0, event: 0 };

  /**
   * `chassis_subscription_backlog{subscription}`: messages waiting in each durable subscription this
   * node consumes, read from the broker at scrape time (the book's "messages accumulating in the queue"
   * alert watches it). A broker that does not answer in time leaves the subscription out of that scrape.
   */
  watchBacklogs(bindings: readonly EventBinding[], backlog: (binding: EventBinding) => Promise<number>): void {
    if (bindings.length === 0) return;
    new Gauge({
      name: 'chassis_subscription_backlog',
      help: 'Messages waiting in a durable event subscription (published, not yet handled)',
      labelNames: ['subscription'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        await Promise.all(
          bindings.map(async (binding) => {
            const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000).unref());
            const depth = await Promise.race([backlog(binding).catch(() => undefined), timeout]);
            if (depth !== undefined) this.set({ subscription: subscriptionName(binding) }, depth);
          }),
        );
      },
    });
  }

  /**
   * Starts the dead-letter and redelivery counters of every queue this node consumes at 0. A counter that
   * appears only at its first increment hides that increment from `increase()` and `rate()` (Prometheus
   * sees 1 as the first sample, not a rise from 0): the DeadLettersGrowing alert would miss the first
   * dead letter, and a dashboard would show no data instead of a flat 0.
   */
  initializeQueues(bindings: readonly EventBinding[], rpcServices: readonly string[]): void {
    for (const binding of bindings) {
      const subscription = subscriptionName(binding);
      this.deadLetters.inc({ queue: subscription }, 0);
      this.redeliveries.inc({ subscription }, 0);
    }
    for (const service of rpcServices) this.deadLetters.inc({ queue: rpcQueueName(service) }, 0);
  }

  /**
   * Starts the counters of a target's new policy at 0, for the same reason as `initializeQueues`: the first
   * breaker opening, rejection or retry is then a rise `increase()` sees, and a dashboard a flat 0.
   */
  initializePolicy(target: string, kind: PolicyKind): void {
    if (kind === 'breaker') {
      for (const state of Object.keys(breakerValue)) this.breakerTransitions.inc({ target, state }, 0);
      this.rejections.inc({ target, code: 'CIRCUIT_OPEN' }, 0);
    } else if (kind === 'bulkhead') {
      this.rejections.inc({ target, code: 'BULKHEAD_FULL' }, 0);
    } else if (kind === 'rateLimit') {
      this.rejections.inc({ target, code: 'RATE_LIMITED' }, 0);
    } else {
      this.retries.inc({ target }, 0);
      this.retryBudgetExhausted.inc({ target }, 0);
    }
  }

  /**
   * `chassis_node_ready`: 1 while the node's readiness (`/health/ready`) passes or warns, 0 while it fails
   * (starting, draining, its transport disconnected, a declared check failing), read when scraped. `up`
   * says whether Prometheus reached the node; this says whether the node would take work: a pod that
   * answers scrapes but fails its readiness probe is out of its Service and serves nothing.
   */
  watchReadiness(ready: () => Promise<boolean>): void {
    new Gauge({
      name: 'chassis_node_ready',
      help: 'Whether the node is ready to take work: 1 when /health/ready passes or warns, 0 when it fails',
      registers: [this.registry],
      async collect() {
        this.set((await ready().catch(() => false)) ? 1 : 0);
      },
    });
  }

  constructor(policies: PolicyEngine, options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}) {
    if (options.labels) this.registry.setDefaultLabels(options.labels);
    const handling = this.handling;
    new Gauge({
      name: 'chassis_in_flight',
      help: 'Requests and event deliveries being handled now',
      labelNames: ['kind'] as const,
      registers: [this.registry],
      collect() {
        this.set({ kind: 'rpc' }, handling.rpc);
        this.set({ kind: 'event' }, handling.event);
      },
    });
    new Gauge({
      name: 'chassis_circuit_breaker_state',
      help: 'Circuit breaker state by target: 0 closed, 0.5 half-open, 1 open',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { target, state } of policies.breakerStates()) this.set({ target }, breakerValue[state]);
      },
    });
    new Gauge({
      name: 'chassis_bulkhead_in_flight',
      help: 'Work running inside a bulkhead, by target',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const use of policies.bulkheadUse()) this.set({ target: use.target }, use.inFlight);
      },
    });
    new Gauge({
      name: 'chassis_bulkhead_queued',
      help: 'Work waiting for a bulkhead slot, by target',
      labelNames: ['target'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const use of policies.bulkheadUse()) this.set({ target: use.target }, use.queued);
      },
    });
    // The event loop delay histogram (nodejs_eventloop_lag_p50/p99/max_seconds) samples with a timer:
    // prom-client's every 10 ms woke an idle process 100 times a second. The embedded SimpleBank, idle
    // (60-120 s after start): 88-99 main-thread wake-ups/s and 0.96-1.13% of a core; at 100 ms, 12/s and
    // 0.51-0.68%. A stall longer than 100 ms is still seen whole; nodejs_eventloop_lag_seconds is
    // measured when scraped, not by this timer.
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    }
  }

  // Each label set bound once, found through maps by label value (no key string built per call):
  // prom-client would otherwise validate and hash the labels on every observation.
  private readonly serverChildren = new Map<string, Map<string, Map<string, BoundHistogram>>>();
  private readonly clientChildren = new Map<string, Map<string, BoundHistogram>>();
  // A subscription names its service and event: they need no level of their own.
  private readonly eventChildren = new Map<string, Map<string, BoundHistogram>>();

  observeServer(service: string, action: string, outcome: string, seconds: number): void {
    let byAction = this.serverChildren.get(service);
    if (!byAction) {
      byAction = new Map();
      this.serverChildren.set(service, byAction);
    }
    let byOutcome = byAction.get(action);
    if (!byOutcome) {
      byOutcome = new Map();
      byAction.set(action, byOutcome);
    }
    let child = byOutcome.get(outcome);
    if (!child) {
      child = new BoundHistogram(this.rpcServer, { service, action, outcome }, buckets);
      byOutcome.set(outcome, child);
    }
    child.observe(seconds);
  }

  observeClient(target: string, outcome: string, seconds: number): void {
    let byOutcome = this.clientChildren.get(target);
    if (!byOutcome) {
      byOutcome = new Map();
      this.clientChildren.set(target, byOutcome);
    }
    let child = byOutcome.get(outcome);
    if (!child) {
      child = new BoundHistogram(this.rpcClient, { target, outcome }, buckets);
      byOutcome.set(outcome, child);
    }
    child.observe(seconds);
  }

  observeEvent(service: string, subscription: string, event: string, outcome: string, seconds: number): void {
    let byOutcome = this.eventChildren.get(subscription);
    if (!byOutcome) {
      byOutcome = new Map();
      this.eventChildren.set(subscription, byOutcome);
    }
    let child = byOutcome.get(outcome);
    if (!child) {
      child = new BoundHistogram(this.eventHandler, { service, subscription, event, outcome }, buckets);
      byOutcome.set(outcome, child);
    }
    child.observe(seconds);
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** `ok`, or the error's code. */
export function outcomeOf(error: unknown): string {
  if (error === undefined) return 'ok';
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'INTERNAL';
}
