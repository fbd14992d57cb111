import type { Context } from './context.ts';
import type { ChassisNode } from './node/node.ts';
import type { HealthCheck } from './observability/health.ts';
import type { OpsAction } from './ops.ts';
import type { ServiceDefinition } from './service.ts';
import type { WireMessage } from './transports/transport.ts';

/**
 * A node extension adds a capability to every service of a node without the core knowing it: the data
 * kit (`@chassis/data`) is one — it opens the database, migrates each service, runs handlers in a unit
 * of work, and takes emitted events into a transactional outbox.
 */
export interface NodeExtension {
  readonly name: string;
  /** After the transport connects, before the services' start hooks run and before any message is taken. */
  start?(node: ChassisNode): Promise<void>;
  /**
   * Once the node runs — serving, consuming, its schedules armed — for work of the extension's own that
   * may call services (resuming what a stopped node left). A throw is logged; the node runs on.
   */
  started?(node: ChassisNode): Promise<void>;
  /**
   * As the node begins to drain, alongside its consumers and schedules: start no more work of the
   * extension's own and resolve once what is in flight has ended (bounded by the node's drain timeout).
   */
  draining?(node: ChassisNode): Promise<void>;
  /** After the node has drained and the stop hooks ran, before the transport closes. */
  stop?(node: ChassisNode): Promise<void>;
  /**
   * Wraps each handler run. Call `next` to run the handler (and the extensions inside this one); not
   * calling it skips the handler — e.g. an event already handled once.
   */
  around?(invocation: Invocation, next: () => Promise<unknown>): Promise<unknown>;
  /**
   * Offered each event a handler emits, encoded, before it goes to the transport: resolve `true` to take
   * it (e.g. into an outbox, published later), `false` to leave it to the transport.
   */
  emit?(ctx: Context, event: string, message: WireMessage): Promise<boolean>;
  /**
   * Actions the extension adds to the node's ops API (e.g. the data kit's `outbox`, `sagas.list`), by
   * name: dot-separated lower-case words. Asked once, as the node starts; they share the API's
   * authentication and are served on the transport and the ops HTTP port alike.
   */
  ops?(node: ChassisNode): Record<string, OpsAction>;
  /** Readiness checks the extension adds (e.g. the database answers). */
  checks?(): Record<string, HealthCheck>;
  /**
   * Takes, or keeps, the lease of a `cluster` schedule for `holder` until `ttlMs` from now: true when
   * `holder` has it, false when another node does. Undefined when this extension keeps no leases for
   * the service (then another extension may, or every instance runs the schedule).
   */
  lease?(service: ServiceDefinition, schedule: string, holder: string, ttlMs: number): Promise<boolean> | undefined;
}

/** One run of a handler, as extensions see it. */
export interface Invocation {
  readonly kind: 'action' | 'event' | 'schedule';
  readonly service: ServiceDefinition;
  readonly ctx: Context;
  /** An event handler's durable subscription, `<service>.<handler>`. */
  readonly subscription?: string;
  /** An event handler whose effects are idempotent by themselves (`on(…, { idempotent })`). */
  readonly idempotent?: boolean | 'with-emits';
  /** An event handler whose deliveries in flight together may share a transaction (`on(…, { groupCommit })`). */
  readonly groupCommit?: boolean;
}
