import { type Context, type Span, SpanKind, SpanStatusCode } from '@chassis/core';
import type { CompiledQuery, ControlledTransaction, Kysely, KyselyPlugin, QueryResult } from 'kysely';
import type { AnyTables, Database } from './database.ts';
import { insertOutbox, type OutboxMessage } from './outbox.ts';
import { committing } from './prepared-statements.ts';

/**
 * One handler's database work: a transaction opened at its first use and committed when the handler
 * returns (rolled back when it throws), so the handler's writes, the events it emits (outbox) and the
 * message it consumed (inbox) commit together or not at all.
 *
 * Opened lazily, not around the whole handler: a handler that first calls other services and then
 * writes holds no transaction during its calls — which, in the all-in-one default where every service
 * shares one PGlite connection, is what keeps a call into another local service from waiting on a
 * connection its caller holds.
 *
 * The events it emits are kept until it commits, then written to the outbox in one statement: a handler
 * that emits two events, or writes one and announces the change, pays one round trip for them.
 *
 * Each transaction is a span (`db.transaction <service>`, with how many statements it ran) when the
 * handler's trace is recorded; when it is not, nothing of that is made.
 */
export class UnitOfWork {
  private opening: Promise<ControlledTransaction<AnyTables>> | undefined;
  private settled = false;
  /** The open transaction's last statement ran with its COMMIT (`executeLast`): nothing may follow it. */
  private committedWithLast = false;
  private emitted: OutboxMessage[] = [];
  private committed: (() => void)[] = [];
  /** The open transaction's span and statement count, when the handler's trace is recorded. */
  private traced: { span: Span; statements: StatementCounter } | undefined;

  readonly db: Database;
  readonly service: string;
  /** Runs first in the new transaction (e.g. claims the inbox); a throw aborts the handler. */
  private readonly onOpen?: (trx: Kysely<AnyTables>) => Promise<void>;
  /** The handler's context: its transactions are spans of its trace. */
  private readonly ctx: Context | undefined;
  /**
   * The highest outbox row id written without NOTIFY (see `notifies`), for the caller to announce to its
   * relay once committed.
   */
  unannounced: number | undefined;
  /**
   * The outbox rows written without NOTIFY, with their ids, for the caller to hand to its relay once
   * committed (`OutboxRelay.handOver`); dropped at a rollback.
   */
  written: WrittenRow[] = [];
  /** Rows written in the open transaction: they join `written` when it commits. */
  private writingNow: WrittenRow[] = [];
  private readonly takeMarks: (() => { ids: number[]; settle: (committed: boolean) => void } | undefined) | undefined;
  /** Told whether the open transaction, which marks published rows sent, committed. */
  private markings: ((committed: boolean) => void)[] = [];
  /** Whether a commit's outbox rows announce themselves (NOTIFY); asked as they are written. */
  private readonly notifies: () => boolean;

  constructor(
    db: Database,
    service: string,
    options: {
      onOpen?: (trx: Kysely<AnyTables>) => Promise<void>;
      ctx?: Context;
      /** False while the caller wakes the service's relay itself after the commit (see `writeOutbox`). */
      notifies?: () => boolean;
      /** Published rows the outbox insert marks sent as it goes (`OutboxRelay.takeMarks`). */
      takeMarks?: () => { ids: number[]; settle: (committed: boolean) => void } | undefined;
    } = {},
  ) {
    this.db = db;
    this.service = service;
    this.onOpen = options.onOpen;
    this.ctx = options.ctx;
    this.notifies = options.notifies ?? (() => true);
    this.takeMarks = options.takeMarks;
  }

  /** An event to publish once the unit commits (nothing, if it rolls back). */
  emit(message: OutboxMessage): void {
    if (this.settled)
      throw new Error(`The unit of work of ${this.service} has ended; ${message.event} was not emitted`);
    if (this.committedWithLast) {
      throw new Error(
        `${this.service} emitted ${message.event} after its last statement (executeLast), which committed without it: emit before it`,
      );
    }
    this.emitted.push(message);
  }

  /**
   * Runs `query` (compiled on `db`, this unit's transaction) as the transaction's last statement: with
   * nothing emitted, its COMMIT goes with it (`committing`: one round trip fewer; a unit of one statement
   * is then one round trip, BEGIN, statement and COMMIT together). With events emitted it runs as it is:
   * their outbox insert, which follows it, carries the COMMIT. Nothing may run or be emitted after it.
   */
  async executeLast<R>(db: Kysely<AnyTables>, query: CompiledQuery<R>): Promise<QueryResult<R>> {
    if (this.emitted.length > 0) return db.executeQuery(query);
    const result = (await db.executeQuery(committing(query))) as QueryResult<R>;
    this.committedWithLast = true;
    return result;
  }

  /** Runs once what was written so far commits (not if it rolls back): to act on it at once. */
  afterCommit(run: () => void): void {
    if (this.settled) throw new Error(`The unit of work of ${this.service} has ended`);
    this.committed.push(run);
  }

  /** Whether events were emitted and not yet written (they go to the outbox at commit). */
  get hasEmitted(): boolean {
    return this.emitted.length > 0;
  }

  get opened(): boolean {
    return this.opening !== undefined;
  }

  /** The transaction, opened on first use. */
  transaction(): Promise<Kysely<AnyTables>> {
    if (this.settled) {
      return Promise.reject(new Error(`The unit of work of ${this.service} has ended; its transaction is gone`));
    }
    this.opening ??= this.open();
    return this.opening;
  }

  private async open(): Promise<ControlledTransaction<AnyTables>> {
    // Before the first await, so that a commit or rollback racing the opening finds it.
    const traced = this.ctx?.span.isRecording() ? this.startSpan(this.ctx) : undefined;
    this.traced = traced;
    let trx: ControlledTransaction<AnyTables>;
    try {
      trx = await this.db.kysely.startTransaction().execute();
    } catch (error) {
      this.endSpan(traced, error);
      throw error;
    }
    if (traced) trx = trx.withPlugin(traced.statements);
    try {
      await this.onOpen?.(trx);
    } catch (error) {
      // The span ends with the unit's rollback, which knows whether this was a failure or a duplicate
      // the inbox turned away.
      await trx.rollback().execute();
      throw error;
    }
    return trx;
  }

  private startSpan(ctx: Context): { span: Span; statements: StatementCounter } {
    const span = ctx.startSpan(`db.transaction ${this.service}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system': 'postgresql',
        ...(this.db.name === undefined ? {} : { 'db.name': this.db.name }),
        'chassis.service': this.service,
      },
    });
    return { span, statements: new StatementCounter() };
  }

  /** Ends a transaction's span (once), with its statement count and, when it failed, the error. */
  private endSpan(traced: { span: Span; statements: StatementCounter } | undefined, error?: unknown): void {
    if (!traced) return;
    if (this.traced === traced) this.traced = undefined;
    traced.span.setAttribute('db.statements', traced.statements.count);
    if (error !== undefined) {
      traced.span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    traced.span.end();
  }

  /** Commits the open transaction, its span ended with the outcome. */
  private async commitOpen(opening: Promise<ControlledTransaction<AnyTables>>): Promise<void> {
    const traced = this.traced;
    const trx = await opening;
    try {
      await trx.commit().execute();
    } catch (error) {
      // A COMMIT the server refused (a deferred constraint, a serialization failure) has ended the
      // transaction, but Kysely keeps the connection until a rollback: without one it would never go back
      // to the pool — and on PGlite's one connection, every later query would wait for it.
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      this.writingNow = [];
      this.settleMarkings(false);
      this.endSpan(traced, error);
      throw error;
    }
    this.settleMarkings(true);
    this.endSpan(traced);
    this.written.push(...this.writingNow);
    this.writingNow = [];
  }

  /**
   * Commits what was written so far and keeps the unit open: the next use starts a new transaction.
   * For an action that must make a step durable before it calls another service.
   */
  async commitSoFar(): Promise<void> {
    if (this.settled) return;
    await this.writeEmittedOrRollBack();
    if (!this.opening) return this.runCommitted();
    const opening = this.opening;
    this.opening = undefined;
    this.committedWithLast = false;
    await this.commitOpen(opening);
    this.runCommitted();
  }

  async commit(): Promise<void> {
    if (this.settled) return;
    await this.writeEmittedOrRollBack();
    this.settled = true;
    if (this.opening) await this.commitOpen(this.opening);
    this.runCommitted();
  }

  /** Rolls back; `error` is why (the handler's failure), for the transaction's span. */
  async rollback(error?: unknown): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.emitted = [];
    this.committed = [];
    this.writingNow = [];
    this.settleMarkings(false);
    if (!this.opening) return;
    const traced = this.traced;
    const trx = await this.opening.catch(() => undefined);
    try {
      await trx?.rollback().execute();
    } finally {
      this.endSpan(traced, error);
    }
  }

  private settleMarkings(committed: boolean): void {
    const markings = this.markings;
    this.markings = [];
    for (const settle of markings) settle(committed);
  }

  private runCommitted(): void {
    const runs = this.committed;
    this.committed = [];
    for (const run of runs) run();
  }

  /**
   * The outbox insert carries the COMMIT (see `writeEmitted`): when it fails, the commit has failed, and the
   * unit rolls back at once, as after a refused COMMIT — which gives the connection back (PGlite has one).
   */
  private async writeEmittedOrRollBack(): Promise<void> {
    try {
      await this.writeEmitted();
    } catch (error) {
      await this.rollback(error).catch(() => undefined);
      throw error;
    }
  }

  private async writeEmitted(): Promise<void> {
    if (this.emitted.length === 0) return;
    const messages = this.emitted;
    this.emitted = [];
    const trx = await this.transaction();
    const notify = this.notifies();
    const marks = notify ? undefined : this.takeMarks?.();
    if (marks) this.markings.push(marks.settle);
    // The last statement of the transaction: the unit commits right after it, so it carries the COMMIT.
    const ids = await insertOutbox(trx, this.service, messages, notify, marks?.ids, true);
    if (ids === undefined) return;
    for (const [i, id] of ids.entries()) {
      this.unannounced = Math.max(this.unannounced ?? 0, id);
      this.writingNow.push({ id, ...(messages[i] as OutboxMessage) });
    }
  }
}

/** An outbox row this unit wrote: its id, and the event as it was emitted. */
export interface WrittenRow extends OutboxMessage {
  id: number;
}

/** Counts the statements a transaction runs: each query compiled through it is one. */
class StatementCounter implements KyselyPlugin {
  count = 0;

  transformQuery: KyselyPlugin['transformQuery'] = (args) => {
    this.count++;
    return args.node;
  };

  transformResult: KyselyPlugin['transformResult'] = (args) => Promise.resolve(args.result);
}
