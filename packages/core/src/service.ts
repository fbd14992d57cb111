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

export interface ServiceSpec {
  /** Lower-case, letters, digits and dashes: `account-transactions`. */
  name: string;
  version?: string;
  description?: string;
  actions?: ActionHandler[];
  events?: EventHandlerDefinition[];
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
  if (problems.length > 0) {
    throw new TypeError(`Service "${spec.name}" is not valid:\n- ${problems.join('\n- ')}`);
  }
  return Object.freeze({
    name: spec.name,
    version: spec.version ?? '0.0.0',
    description: spec.description,
    actions,
    events: Object.freeze([...(spec.events ?? [])]),
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
  calls: string[];
  emits: string[];
}

/** Lists who serves, consumes, calls and emits what — without running anything. */
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
    calls: service.uses.filter((c) => c.kind === 'action').map((c) => c.name),
    emits: service.uses.filter((c) => c.kind === 'event').map((c) => c.name),
  }));
}
