import type { z } from 'zod';
import type { Context } from './context.ts';
import type { ActionContract, AnyContract, EventContract, InputOf, OutputOf, PayloadOf } from './contracts.ts';
import type { HealthCheck } from './observability/health.ts';
import type { BreakerPolicy, CircuitBreaker, HandlerPolicies } from './policies/index.ts';

/**
 * A service definition: the actions it serves, the events it handles, the contracts it calls or emits,
 * and start/stop hooks. It is plain data, so a topology can be listed without running anything.
 */

// The handler receives the input after parsing (defaults applied) and returns what the output schema accepts.
type ParsedInput<C extends ActionContract> = z.output<C['input']>;
type ReturnedOutput<C extends ActionContract> = z.input<C['output']>;

// `run` is declared as a method so that handlers of different contracts fit in one list (method
// parameters are compared bivariantly); each handler is still typed exactly by `handle`.
export interface ActionHandler<C extends ActionContract = ActionContract> {
  readonly contract: C;
  /** This handler's bulkhead and rate limit, over the node's defaults. */
  readonly policies: HandlerPolicies;
  run(input: ParsedInput<C>, ctx: Context): Promise<ReturnedOutput<C>> | ReturnedOutput<C>;
}

export interface EventHandlerDefinition<E extends EventContract = EventContract> {
  readonly contract: E;
  /** Names the durable subscription `<service>.<name>`; defaults to the event's own name. */
  readonly name: string;
  run(payload: PayloadOf<E>, ctx: Context): Promise<void> | void;
  readonly options: EventHandlerOptions;
}

export interface EventHandlerOptions extends HandlerPolicies {
  /** Handler name, for a service with two handlers of one event. */
  name?: string;
  /** Deliveries handled at once per instance. */
  prefetch?: number;
  /** Attempts before the event is dead-lettered. */
  maxDeliveries?: number;
  /** How long one attempt may run, in ms. */
  timeoutMs?: number;
  /**
   * The handler's effects are idempotent by themselves — a versioned upsert, an insert that ignores a
   * conflict on the event's id — so applying a redelivered event again changes nothing. The data kit
   * then records no inbox row for it (one statement less per event); its writes still commit together.
   * Such a handler cannot emit events: a redelivery would emit them twice — unless it is
   * `'with-emits'`: it decides from state it reads under a lock in its own transaction and emits only
   * with the change it writes there (an event-sourced aggregate's next event, a row it inserts once), so
   * a redelivery finds the change made and emits nothing either. Calls it makes before writing run again
   * on a redelivery, so they must be idempotent too.
   */
  idempotent?: boolean | 'with-emits';
  /**
   * With the data kit: deliveries of this subscription in flight together share one transaction — the
   * first opens it, those that arrive while it is open run one after another in it, it commits once and
   * each is acknowledged only after that commit (a group holds at most the deliveries in flight: the
   * prefetch). If one fails, the group rolls back and each runs again alone, so its neighbours are
   * applied once and only it is retried or dead-lettered. For projections and upserts that write only
   * their own database: a handler that locks rows may deadlock with another group, and one that calls
   * other services does so while the group's transaction is open.
   */
  groupCommit?: boolean;
}

export function handle<C extends ActionContract>(
  contract: C,
  run: (input: ParsedInput<C>, ctx: Context) => Promise<ReturnedOutput<C>> | ReturnedOutput<C>,
  policies: HandlerPolicies = {},
): ActionHandler<C> {
  return { contract, run, policies };
}

export function on<E extends EventContract>(
  contract: E,
  run: (payload: PayloadOf<E>, ctx: Context) => Promise<void> | void,
  options: EventHandlerOptions = {},
): EventHandlerDefinition<E> {
  return { contract, name: options.name ?? contract.event, run, options };
}

/**
 * Work a service does on a clock rather than on a message: a sweep for what a crash left half done,
 * expiry, a cache refresh. Made with `every`.
 */
export interface ScheduleDefinition {
  /** Lower-case letters, digits and dashes; unique within the service: `sweep-stale-orders`. */
  readonly name: string;
  /** Time from the start of one run to the start of the next (or, after a run that took longer, its end). */
  readonly everyMs: number;
  readonly options: ScheduleOptions;
  run(ctx: Context): Promise<void> | void;
}

export interface ScheduleOptions {
  /**
   * `cluster` (default): one instance of the service runs it at a time, the one holding its lease —
   * kept by the node's extensions (the data kit keeps it in the service's database); a service no
   * extension keeps leases for runs it on every instance, and its node says so at start.
   * `instance`: every instance runs it (a cache of its own, say).
   */
  scope?: 'cluster' | 'instance';
  /** A run's deadline (`ctx.deadline`), after which it is abandoned. Default `everyMs`, at least 1 s. */
  timeoutMs?: number;
}

/**
 * Scheduled work: `every('sweep-stale-orders', 30_000, async (ctx) => …)`. A run gets a handler's
 * context — `ctx.call`, `ctx.emit`, its own unit of work with the data kit, a deadline, a span, logs —
 * and is timed in `chassis_schedule_duration_seconds`. A run that fails is logged and the next one
 * comes on time; runs of one schedule never overlap on an instance; a draining node finishes the run
 * in flight and starts no other.
 */
export function every(
  name: string,
  everyMs: number,
  run: (ctx: Context) => Promise<void> | void,
  options: ScheduleOptions = {},
): ScheduleDefinition {
  return { name, everyMs, run, options };
}

export interface ServiceSpec {
  /** Lower-case, letters, digits and dashes: `account-transactions`. */
  name: string;
  version?: string;
  description?: string;
  actions?: ActionHandler[];
  events?: EventHandlerDefinition[];
  /** Work on a clock: `schedules: [every('sweep', 30_000, sweep)]`. */
  schedules?: ScheduleDefinition[];
  /** Contracts this service calls or emits, so the topology is known before anything runs. */
  uses?: AnyContract[];
  /** Readiness checks of what the service depends on (its database, a third party), by name. */
  health?: Record<string, HealthCheck>;
  /**
   * The service's database migrations: a folder of `.sql` files (`new URL('./migrations', import.meta.url)`).
   * A service with migrations owns a schema named after it; `@chassis/data` applies them at start.
   */
  migrations?: URL | string;
  /** Runs before the service takes any message. */
  start?: (service: ServiceHandle) => Promise<void> | void;
  /** Runs after the service has stopped taking messages and finished the ones in flight. */
  stop?: (service: ServiceHandle) => Promise<void> | void;
}

/** What start and stop hooks get: enough to log and to call or emit outside a request. */
export interface ServiceHandle {
  readonly name: string;
  readonly nodeId: string;
  readonly log: Context['log'];
  call<C extends ActionContract>(contract: C, input: InputOf<C>): Promise<OutputOf<C>>;
  /**
   * The node's circuit breaker for a target that is not an action (an HTTP API the service calls),
   * made with `settings` (default: the node's call breaker) the first time the target is named. Its
   * state shows in `chassis_circuit_breaker_state{target}`, the node's log and its readiness.
   */
  breaker(target: string, settings?: BreakerPolicy): CircuitBreaker;
}

export interface ServiceDefinition {
  readonly name: string;
  readonly version: string;
  readonly description: string | undefined;
  readonly actions: ReadonlyMap<string, ActionHandler>;
  readonly events: readonly EventHandlerDefinition[];
  readonly schedules: readonly ScheduleDefinition[];
  readonly uses: readonly AnyContract[];
  readonly health: Readonly<Record<string, HealthCheck>>;
  readonly migrations: URL | string | undefined;
  readonly start: ServiceSpec['start'];
  readonly stop: ServiceSpec['stop'];
}

const SERVICE_NAME = /^[a-z][a-z0-9-]*$/;

export function defineService(spec: ServiceSpec): ServiceDefinition {
  const problems: string[] = [];
  if (!SERVICE_NAME.test(spec.name)) {
    problems.push(`name "${spec.name}" must be lower-case letters, digits and dashes, starting with a letter`);
  }
  const actions = new Map<string, ActionHandler>();
  for (const handler of spec.actions ?? []) {
    const { contract } = handler;
    if (contract.service !== spec.name) {
      problems.push(`action ${contract.name} belongs to service "${contract.service}", not "${spec.name}"`);
    }
    if (actions.has(contract.action)) problems.push(`action ${contract.name} is handled twice`);
    actions.set(contract.action, handler);
  }
  const handlerNames = new Set<string>();
  for (const handler of spec.events ?? []) {
    if (handlerNames.has(handler.name)) {
      problems.push(
        `two event handlers are named "${handler.name}"; give one a distinct name with on(contract, fn, { name })`,
      );
    }
    handlerNames.add(handler.name);
  }
  const scheduleNames = new Set<string>();
  for (const schedule of spec.schedules ?? []) {
    if (!SERVICE_NAME.test(schedule.name)) {
      problems.push(`schedule "${schedule.name}" must be named with lower-case letters, digits and dashes`);
    }
    if (scheduleNames.has(schedule.name)) problems.push(`two schedules are named "${schedule.name}"`);
    scheduleNames.add(schedule.name);
    if (!Number.isFinite(schedule.everyMs) || schedule.everyMs < 10) {
      problems.push(`schedule "${schedule.name}" runs every ${schedule.everyMs} ms; give at least 10 ms`);
    }
    const { timeoutMs } = schedule.options;
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      problems.push(`schedule "${schedule.name}" has timeoutMs ${timeoutMs}; give a positive number of ms`);
    }
  }
  if (problems.length > 0) {
    throw new TypeError(`Service "${spec.name}" is not valid:\n- ${problems.join('\n- ')}`);
  }
  return Object.freeze({
    name: spec.name,
    version: spec.version ?? '0.0.0',
    description: spec.description,
    actions,
    events: Object.freeze([...(spec.events ?? [])]),
    schedules: Object.freeze([...(spec.schedules ?? [])]),
    uses: Object.freeze([...(spec.uses ?? [])]),
    health: Object.freeze({ ...spec.health }),
    migrations: spec.migrations,
    start: spec.start,
    stop: spec.stop,
  });
}

export interface TopologyEntry {
  service: string;
  version: string;
  serves: { action: string; idempotent: boolean }[];
  consumes: { event: string; subscription: string }[];
  schedules: { name: string; everyMs: number; scope: 'cluster' | 'instance' }[];
  calls: string[];
  emits: string[];
}

/** Lists who serves, consumes, runs on a clock, calls and emits what — without running anything. */
export function topology(services: readonly ServiceDefinition[]): TopologyEntry[] {
  return services.map((service) => ({
    service: service.name,
    version: service.version,
    serves: [...service.actions.values()].map(({ contract }) => ({
      action: contract.name,
      idempotent: contract.idempotent,
    })),
    consumes: service.events.map((handler) => ({
      event: handler.contract.name,
      subscription: `${service.name}.${handler.name}`,
    })),
    schedules: service.schedules.map((schedule) => ({
      name: schedule.name,
      everyMs: schedule.everyMs,
      scope: schedule.options.scope ?? 'cluster',
    })),
    calls: service.uses.filter((c) => c.kind === 'action').map((c) => c.name),
    emits: service.uses.filter((c) => c.kind === 'event').map((c) => c.name),
  }));
}
