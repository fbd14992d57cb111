import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChassisError,
  type ChassisNode,
  type Context,
  currentContext,
  type Invocation,
  type NodeExtension,
  type OpsAction,
  type ServiceDefinition,
  type ServiceHandle,
} from '@chassis/core';
import type { Compilable, CompiledQuery, Kysely, QueryResult, RawBuilder } from 'kysely';
import { type AnyTables, Database, unavailableIfDisconnected } from './database.ts';
import { type EventSchemas, EventStore, type EventStoreOptions } from './event-store.ts';
import { registerDataMetrics } from './extension-metrics.ts';
import { CommitGroups, GroupShare } from './group-commit.ts';
import { claimInbox, isInInbox } from './inbox.ts';
import { installServiceSchema } from './install-service.ts';
import { takeLease } from './leases.ts';
import { dataOpsActions } from './ops.ts';
import { OutboxRelay, type PublishInOrder } from './outbox-relay.ts';
import type { SagaDefinition } from './sagas/definition.ts';
import { SagaRunner, type SagaRunnerOptions } from './sagas/runner.ts';
import { schemaPlugin } from './schema-plugin.ts';
import { UnitOfWork } from './unit-of-work.ts';

/**
 * The data kit as a node extension: give it to a node and every service that declares `migrations`
 * owns a schema in the database, migrated at start, and gets:
 *
 * - a unit of work per handler run — `await database(ctx)` is its transaction, opened on first use and
 *   committed when the handler returns;
 * - a transactional outbox — `ctx.emit` writes the event in that transaction, and a relay publishes it
 *   after the commit (a rolled-back handler publishes nothing; a crashed relay publishes again);
 * - an inbox — an event already handled once (a redelivery) is acknowledged without running its handler
 *   again, the message id being recorded in the same transaction as the handler's effects;
 * - group commit for handlers that ask (`groupCommit`): deliveries in flight together share one
 *   transaction (`group-commit.ts`);
 * - if its start hook asks (`runSagas`), a saga runner, resumed once the node runs and stopped as it drains.
 *
 * Services without migrations are untouched: their emits go straight to the transport.
 */
export interface DataExtensionOptions {
  /**
   * `postgres://…`, `pglite://<dir>`, `pglite://memory` or `mysql://…` (MariaDB/MySQL); default
   * `DATABASE_URL`, else `pglite://memory`.
   */
  url?: string;
  /** A database already open (the extension then leaves closing it to you). */
  database?: Database;
  /** How often a relay looks for events a lost notification did not announce. Default 1000 ms. */
  relayPollIntervalMs?: number;
  /**
   * Failed publishes of one event after which a relay may park it and go on (`OutboxRelayOptions`'s
   * `parkAfterAttempts`). Default 10; `Infinity` never parks.
   */
  relayParkAfterAttempts?: number;
  /**
   * How long a starting node waits for a database it cannot reach (starting beside it, or while it
   * restarts) before it gives up. Default 60 000 ms. A misconfiguration (no such database, a refused
   * login) fails at once.
   */
  startTimeoutMs?: number;
  /** Plan each prepared statement once per connection (`DatabaseOptions.genericPlans`). Default false. */
  genericPlans?: boolean;
}

export class DataExtension implements NodeExtension {
  readonly name = 'data';
  private db: Database | undefined;
  private readonly owned: boolean;
  private readonly relays = new Map<string, OutboxRelay>();
  private readonly units = new WeakMap<Context, UnitOfWork | GroupShare>();
  /** The open commit groups of `groupCommit` handlers, by subscription. */
  private readonly groups = new CommitGroups();
  private readonly invocations = new WeakMap<Context, Invocation>();
  private services = new Set<string>();
  /** The saga runner of each service that asked for one (`runSagas`). */
  private readonly runners = new Map<string, SagaRunner>();
  private node: ChassisNode | undefined;

  private readonly options: DataExtensionOptions;

  constructor(options: DataExtensionOptions = {}) {
    this.options = options;
    this.db = options.database;
    this.owned = options.database === undefined;
  }

  /**
   * Opens the database and brings every service's schema up to date, waiting for a database it cannot
   * reach yet: a node that exited instead would stay down unless something restarts it (the chaos test
   * saw a ledger restarted during PostgreSQL's restart do just that, and its reservations stay held).
   * Migrations and installs run again from the start: each is idempotent under the service's lock.
   */
  private async openAndInstall(node: ChassisNode, withData: ServiceDefinition[]): Promise<Database> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
    for (let attempt = 1; ; attempt++) {
      try {
        this.db ??= await Database.open(this.options.url ?? process.env.DATABASE_URL ?? 'pglite://memory', {
          genericPlans: this.options.genericPlans ?? false,
        });
        for (const service of withData) {
          const report = (await installServiceSchema(this.db, service))!;
          if (report.applied.length > 0) {
            node.log.info({ service: service.name, applied: report.applied }, `migrated ${service.name}`);
          }
          this.services.add(service.name);
        }
        return this.db;
      } catch (caught) {
        const error = unavailableIfDisconnected(caught);
        const delayMs = Math.min(5000, 250 * 2 ** (attempt - 1));
        if (!(error instanceof ChassisError && error.retryable) || Date.now() + delayMs > deadline) throw error;
        node.log.warn({ err: error, attempt }, `the database cannot be reached yet; trying again in ${delayMs} ms`);
        await sleep(delayMs);
      }
    }
  }

  /** The database, once the node has started. */
  get database(): Database {
    if (!this.db) throw new Error('The data extension has not started: start the node first');
    return this.db;
  }

  async start(node: ChassisNode): Promise<void> {
    extensionsByNode.set(node.id, this);
    this.node = node;
    const withData = node.services.filter((service) => service.migrations !== undefined);
    if (withData.length === 0) return;
    const db = await this.openAndInstall(node, withData);
    const metrics = registerDataMetrics(node.metrics.registry, {
      usage: db.usage,
      relays: this.relays,
      runners: this.runners,
    });
    for (const name of this.services) {
      const relay = new OutboxRelay(
        db,
        name,
        async (event, message) => {
          await node.transport.publish(event, message);
          node.metrics.published.inc({ event });
        },
        {
          ...publishInOrderOf(node),
          pollIntervalMs: this.options.relayPollIntervalMs ?? 1000,
          ...(this.options.relayParkAfterAttempts === undefined
            ? {}
            : { parkAfterAttempts: this.options.relayParkAfterAttempts }),
          onError: (error) =>
            node.log.warn({ err: error, service: name }, 'outbox relay could not publish; it will retry'),
          onParked: (row) => {
            metrics.parked.inc({ service: name, event: row.event });
            node.log.warn(
              {
                service: name,
                outboxId: row.id,
                event: row.event,
                messageId: row.messageId,
                attempts: row.attempts,
                lastError: row.lastError,
              },
              `outbox relay parked event ${row.event} (outbox row ${row.id}) after ${row.attempts} refused publishes: ${row.lastError}; later events go on, replay it with replayParkedOutbox once fixed`,
            );
          },
        },
      );
      await relay.start();
      this.relays.set(name, relay);
    }
    node.log.info(
      { database: db.description, services: [...this.services] },
      `database ${db.description} ready for ${[...this.services].join(', ')}`,
    );
  }

  /** Resumes the sagas stopped nodes left unfinished, now that the services their steps call are served. */
  async started(node: ChassisNode): Promise<void> {
    for (const [service, runner] of this.runners) {
      await runner.resumeAll().catch((error: unknown) => {
        node.log.warn({ err: error, service }, 'could not resume sagas; the runner looks again at its next sweep');
      });
    }
  }

  /** Starts no more saga steps; the attempts in flight finish and their instances are released. */
  async draining(): Promise<void> {
    await Promise.allSettled([...this.runners.values()].map((runner) => runner.stop()));
  }

  async stop(node: ChassisNode): Promise<void> {
    extensionsByNode.delete(node.id);
    await this.draining();
    this.runners.clear();
    // Handlers have finished: what they committed to the outbox goes out before the transport closes.
    await Promise.allSettled([...this.relays.values()].map((relay) => relay.stop()));
    this.relays.clear();
    if (this.owned) await this.db?.close();
  }

  async around(invocation: Invocation, next: () => Promise<unknown>): Promise<unknown> {
    const { service, ctx } = invocation;
    if (!this.services.has(service.name)) return next();
    if (invocation.kind === 'event' && invocation.groupCommit === true && invocation.subscription) {
      return this.groups.run(
        invocation.subscription,
        () => {
          const relay = this.relays.get(service.name);
          return new UnitOfWork(this.database, service.name, {
            ctx,
            notifies: () => !relay?.leads,
            takeMarks: () => relay?.takeMarks(),
          });
        },
        (unit) => this.runInGroup(invocation, next, unit),
        () => this.runAlone(invocation, next),
      );
    }
    return this.runAlone(invocation, next);
  }

  /** A handler run in a unit of work of its own. */
  private async runAlone(invocation: Invocation, next: () => Promise<unknown>): Promise<unknown> {
    const { service, ctx } = invocation;
    const db = this.database;
    const subscription = inboxSubscription(invocation);
    const relay = this.relays.get(service.name);
    const unit = new UnitOfWork(db, service.name, {
      onOpen: subscription ? (trx) => this.claim(trx, service, subscription, ctx) : undefined,
      ctx,
      notifies: () => !relay?.leads,
      takeMarks: () => relay?.takeMarks(),
    });
    this.units.set(ctx, unit);
    this.invocations.set(ctx, invocation);
    try {
      // A redelivery (a lost ack, a crashed consumer) may have been handled already: then the handler does
      // not run at all, not even the calls it makes before it first writes. A first delivery skips the
      // look, a statement on the way of every event: a duplicate published as new (a relay that died
      // before marking its rows) runs until its claim, which rolls its writes back.
      if (subscription && ctx.attempt > 1 && (await isInInbox(db, service.name, subscription, ctx.messageId))) {
        return undefined;
      }
      const result = await next();
      // An event handler that wrote nothing still records that it ran.
      if (subscription && !unit.opened) await unit.transaction();
      const emitted = unit.hasEmitted;
      await unit.commit();
      if (emitted) this.announce(relay, unit);
      return result;
    } catch (error) {
      // On a lost connection the rollback fails too; the server has rolled the transaction back anyway.
      const duplicate = error instanceof AlreadyHandled;
      await unit.rollback(duplicate ? undefined : error).catch(() => undefined);
      if (duplicate) return undefined;
      throw unavailableIfDisconnected(error);
    } finally {
      this.units.delete(ctx);
      this.invocations.delete(ctx);
    }
  }

  /**
   * A delivery's turn in a group's shared unit of work (`groupCommit`): its inbox claim, if it has one,
   * made in the group's transaction at its first use; the group commits once every member has run.
   */
  private async runInGroup(invocation: Invocation, next: () => Promise<unknown>, unit: UnitOfWork): Promise<unknown> {
    const { service, ctx } = invocation;
    const subscription = inboxSubscription(invocation);
    const share = new GroupShare(unit, subscription ? (trx) => this.claim(trx, service, subscription, ctx) : undefined);
    this.units.set(ctx, share);
    this.invocations.set(ctx, invocation);
    try {
      // In the group's transaction: on one PGlite connection, another would wait for the group to end.
      if (
        subscription &&
        ctx.attempt > 1 &&
        (await isInInbox(await unit.transaction(), service.name, subscription, ctx.messageId))
      ) {
        share.drop();
        return undefined;
      }
      const result = await next();
      // An event handler that wrote nothing still records that it ran.
      if (subscription) await share.transaction();
      const emitted = share.hasEmitted;
      share.keep();
      if (emitted) unit.afterCommit(() => this.announce(this.relays.get(service.name), unit));
      return result;
    } catch (error) {
      share.drop();
      if (error instanceof AlreadyHandled) return undefined;
      throw unavailableIfDisconnected(error);
    } finally {
      this.units.delete(ctx);
      this.invocations.delete(ctx);
    }
  }

  /** A cluster schedule's lease, in the service's database; none for a service without one. */
  lease(service: ServiceDefinition, schedule: string, holder: string, ttlMs: number): Promise<boolean> | undefined {
    if (!this.services.has(service.name)) return undefined;
    return takeLease(this.database, service.name, schedule, holder, ttlMs).catch((error: unknown) => {
      throw unavailableIfDisconnected(error);
    });
  }

  async emit(ctx: Context, event: string, message: { headers: Record<string, string>; body: Uint8Array }) {
    const unit = this.units.get(ctx);
    if (!unit) return false;
    if (this.invocations.get(ctx)?.idempotent === true) {
      throw new ChassisError(
        'INTERNAL',
        `${ctx.service} emitted ${event} from an event handler declared idempotent: with no inbox row, a redelivery would emit it again; drop { idempotent: true } from that handler, or declare it 'with-emits' if it emits only with a change a redelivery finds made`,
      );
    }
    unit.emit({ event, message });
    return true;
  }

  /** The outbox and sagas of the services on this node, in its ops API (`outbox`, `sagas.*`). */
  ops(): Record<string, OpsAction> {
    return dataOpsActions({ database: () => this.db, relays: this.relays, runners: this.runners });
  }

  checks() {
    return {
      'database:connection': async () => {
        if (!this.db) return { status: 'pass' as const, output: 'no service here owns a database' };
        const started = performance.now();
        await this.db.kysely.selectNoFrom((eb) => eb.val(1).as('one')).execute();
        return { status: 'pass' as const, observedValue: Math.round(performance.now() - started) };
      },
    };
  }

  /** The saga runner of `service` on this node, made, installed and kept until the node drains. */
  async runSagas(
    service: string,
    sagas: readonly SagaDefinition<unknown, unknown>[],
    options: RunSagasOptions = {},
  ): Promise<SagaRunner> {
    const node = this.node;
    if (!node || !this.services.has(service)) {
      throw new ChassisError(
        'CONFIG',
        `Service "${service}" has no database here to run sagas on: declare its migrations, give its node the data extension and call runSagas from its start hook`,
      );
    }
    if (this.runners.has(service)) {
      throw new ChassisError('CONFIG', `runSagas was called twice for "${service}"; give it all the sagas at once`);
    }
    const runner = new SagaRunner(this.database, {
      ...options,
      service,
      sagas,
      nodeId: node.id,
      logger: node.log.child({ service }),
      call: (contract, input, callOptions) => node.call(contract, input, callOptions),
    });
    await runner.install();
    this.runners.set(service, runner);
    return runner;
  }

  /** Records the instance in the handler's transaction and drives it once that commits. */
  async startSaga<D, I>(ctx: Context, saga: SagaDefinition<D, I>, data: I, options: { id?: string }): Promise<string> {
    const runner = this.runners.get(ctx.service);
    if (!runner) {
      throw new ChassisError(
        'CONFIG',
        `Service "${ctx.service}" runs no sagas here: call runSagas(service, [${saga.name}, …]) from its start hook`,
      );
    }
    const unit = this.unitOf(ctx);
    const id = await runner.start(saga, data, { ...options, trx: await unit.transaction() });
    unit.afterCommit(() => runner.resume(id));
    return id;
  }

  /** The transaction of the handler running with `ctx`, opened on first use. */
  transactionOf(ctx: Context): Promise<Kysely<AnyTables>> {
    return this.unitOf(ctx).transaction();
  }

  /** Runs the handler's last statement, compiled on its transaction (see `executeLast`). */
  async executeLast<R>(ctx: Context, db: Kysely<AnyTables>, query: CompiledQuery<R>): Promise<QueryResult<R>> {
    const unit = this.unitOf(ctx);
    // A commit group's member: the group commits after its last member, which no member knows it is.
    if (!(unit instanceof UnitOfWork)) return db.executeQuery(query);
    return unit.executeLast(db, query);
  }

  /** Commits what the action running with `ctx` wrote so far; its next database use opens a new transaction. */
  async commitSoFar(ctx: Context): Promise<void> {
    if (this.invocations.get(ctx)?.kind === 'event') {
      // An event handler's inbox claim commits with its first part: a crash after it would skip the rest.
      throw new ChassisError(
        'INTERNAL',
        `commit(ctx) is for actions and schedules; ${ctx.service} called it from an event handler`,
      );
    }
    const unit = this.unitOf(ctx);
    // A group's share is an event handler's, refused above.
    if (!(unit instanceof UnitOfWork)) return;
    const emitted = unit.hasEmitted;
    await unit.commitSoFar();
    if (emitted) this.announce(this.relays.get(ctx.service), unit);
  }

  /**
   * After a commit that wrote outbox rows: this node's relay is told here when the rows went without
   * NOTIFY (it leads the service), and on MariaDB/MySQL, which has none (other nodes' relays poll).
   */
  private announce(relay: OutboxRelay | undefined, unit: UnitOfWork): void {
    const written = unit.unannounced;
    const rows = unit.written;
    unit.unannounced = undefined;
    unit.written = [];
    // On PGlite the rows themselves: the relay publishes them without reading them back.
    if (rows.length > 0 && relay?.handOver(rows)) return;
    if (written !== undefined || unit.db.kind === 'mysql') relay?.nudge(written);
  }

  private unitOf(ctx: Context): UnitOfWork | GroupShare {
    const unit = this.units.get(ctx);
    if (!unit) {
      throw new ChassisError(
        'INTERNAL',
        `Service "${ctx.service}" has no database here: declare its migrations and give its node the data extension`,
      );
    }
    return unit;
  }

  private async claim(trx: Kysely<AnyTables>, service: ServiceDefinition, subscription: string, ctx: Context) {
    if (!(await claimInbox(trx, service.name, subscription, ctx.messageId))) throw new AlreadyHandled();
  }
}

/**
 * The subscription whose inbox an invocation claims: an event handler's, unless the handler is idempotent
 * by itself — its writes need no inbox row, applying the event again changes nothing.
 */
function inboxSubscription(invocation: Invocation): string | undefined {
  return invocation.kind === 'event' && !invocation.idempotent ? invocation.subscription : undefined;
}

/** Another instance claimed the same message first: this run's effects are rolled back, the event acked. */
class AlreadyHandled extends Error {}

export function dataExtension(options: DataExtensionOptions = {}): DataExtension {
  return new DataExtension(options);
}

/** The extension a node runs with, found through the handler's context. */
const extensionsByNode = new Map<string, DataExtension>();

/**
 * The database of the handler running now, as a Kysely on its service's schema, inside the handler's
 * unit of work: `const db = await database<OrdersTables>(ctx); await db.insertInto('orders')…`.
 */
export async function database<Tables = AnyTables>(ctx: Context = requireContext()): Promise<Kysely<Tables>> {
  const trx = await extensionOf(ctx.nodeId).transactionOf(ctx);
  // A handler asks for it before each statement or two: one scoped handle per transaction.
  let scoped = scopedTransactions.get(trx);
  if (!scoped) {
    scoped = trx.withPlugin(schemaPlugin(ctx.service));
    scopedTransactions.set(trx, scoped);
  }
  return scoped as unknown as Kysely<Tables>;
}

/**
 * Runs `query` as the last statement of the running handler's unit of work, in its transaction:
 * `await executeLast(sql\`update … \`, ctx)`. The COMMIT goes with it to the server (one round trip
 * fewer; a handler of one statement is one round trip in all), unless the handler emitted events — then
 * their outbox insert, written after it, carries the COMMIT as always. The handler must not write or emit
 * after it: a statement is refused, an emit throws (it would not commit with the statement). In a commit
 * group (`groupCommit`), and on MariaDB/MySQL, it runs as any statement, the COMMIT after it.
 */
export async function executeLast<R>(
  query: RawBuilder<R> | Compilable<R>,
  ctx: Context = requireContext(),
): Promise<QueryResult<R>> {
  const db = (await database(ctx)) as Kysely<AnyTables>;
  const compiled = 'isRawBuilder' in query ? query.compile(db) : query.compile();
  return extensionOf(ctx.nodeId).executeLast(ctx, db, compiled);
}

/** Each unit of work's transaction on its service's schema (a transaction belongs to one service). */
const scopedTransactions = new WeakMap<Kysely<AnyTables>, Kysely<AnyTables>>();

function requireContext(): Context {
  const ctx = currentContext();
  if (!ctx) throw new ChassisError('INTERNAL', 'database() was called outside a handler: pass the handler’s ctx');
  return ctx;
}

/**
 * Commits what the running action (or scheduled run: a sweep, item by item) wrote so far, so that a
 * step is durable before it calls another service (which, on one PGlite connection, could not run while
 * this transaction is open); its next `database(ctx)` opens a new transaction. Not in event handlers:
 * their work must commit with their inbox claim, all at once.
 */
export async function commit(ctx: Context = requireContext()): Promise<void> {
  await extensionOf(ctx.nodeId).commitSoFar(ctx);
}

/**
 * The event store of a service, its tables installed in the service's schema: call it from the
 * service's start hook (`start: async (service) => { store = await openEventStore(service, { schemas }) }`)
 * and append inside handlers with `{ trx: await database(ctx) }`, so events, outbox and state commit together.
 */
export async function openEventStore<S extends EventSchemas>(
  service: ServiceHandle,
  options: Omit<EventStoreOptions<S>, 'service'> = {},
): Promise<EventStore<S>> {
  const store = new EventStore<S>(extensionOf(service.nodeId).database, { ...options, service: service.name });
  await store.install();
  return store;
}

/** What `runSagas` lets a service set of its runner; the rest comes from the node. */
export type RunSagasOptions = Omit<SagaRunnerOptions, 'service' | 'sagas' | 'nodeId' | 'logger' | 'call'>;

/**
 * Runs a service's orchestrated sagas on this node: call it from the service's start hook
 * (`start: (service) => runSagas(service, [placeOrders])`). It makes the service's saga runner on its
 * database (tables installed in its schema), whose steps call actions through the node (`step.call`);
 * the node resumes the instances other nodes left unfinished once it runs, and stops the runner as it
 * drains (attempts in flight finish, their instances are released for another node). Start instances
 * from handlers with `startSaga`. Returns the runner, for `get`, `wait`, `list` and `counts`.
 */
export function runSagas(
  service: ServiceHandle,
  sagas: readonly SagaDefinition<unknown, unknown>[],
  options: RunSagasOptions = {},
): Promise<SagaRunner> {
  return extensionOf(service.nodeId).runSagas(service.name, sagas, options);
}

/**
 * Starts a saga from a handler, in its unit of work: the instance is recorded in the handler's
 * transaction, with the change that calls for it, and runs as soon as that commits — not at all if the
 * handler fails. `id` (default a new UUID) makes it idempotent: a second start of one id is a no-op.
 */
export function startSaga<D, I>(
  ctx: Context,
  saga: SagaDefinition<D, I>,
  data: I,
  options: { id?: string } = {},
): Promise<string> {
  return extensionOf(ctx.nodeId).startSaga(ctx, saga, data, options);
}

function extensionOf(nodeId: string): DataExtension {
  const extension = extensionsByNode.get(nodeId);
  if (!extension) {
    throw new ChassisError(
      'INTERNAL',
      `Node ${nodeId} has no data extension: create it with extensions: [dataExtension()]`,
    );
  }
  return extension;
}

/** The relay's pipelined publish, where the node's transport has one; each stored event counted as `publish` counts it. */
function publishInOrderOf(node: ChassisNode): { publishInOrder?: PublishInOrder } {
  const { transport } = node;
  if (!transport.publishInOrder) return {};
  const publish = transport.publishInOrder.bind(transport);
  return {
    publishInOrder: async (events) => {
      const outcome = await publish(events);
      for (let i = 0; i < outcome.stored; i++) node.metrics.published.inc({ event: events[i]!.event });
      return outcome;
    },
  };
}
