import type { ControlledTransaction, Kysely } from 'kysely';
import type { AnyTables, Database } from './database.ts';
import { type OutboxMessage, writeOutbox } from './outbox.ts';

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
 */
export class UnitOfWork {
  private opening: Promise<ControlledTransaction<AnyTables>> | undefined;
  private settled = false;
  private emitted: OutboxMessage[] = [];
  private committed: (() => void)[] = [];

  readonly db: Database;
  readonly service: string;
  /** Runs first in the new transaction (e.g. claims the inbox); a throw aborts the handler. */
  private readonly onOpen?: (trx: Kysely<AnyTables>) => Promise<void>;

  constructor(db: Database, service: string, options: { onOpen?: (trx: Kysely<AnyTables>) => Promise<void> } = {}) {
    this.db = db;
    this.service = service;
    this.onOpen = options.onOpen;
  }

  /** An event to publish once the unit commits (nothing, if it rolls back). */
  emit(message: OutboxMessage): void {
    if (this.settled)
      throw new Error(`The unit of work of ${this.service} has ended; ${message.event} was not emitted`);
    this.emitted.push(message);
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
    this.opening ??= this.db.kysely
      .startTransaction()
      .execute()
      .then(async (trx) => {
        try {
          await this.onOpen?.(trx);
        } catch (error) {
          await trx.rollback().execute();
          throw error;
        }
        return trx;
      });
    return this.opening;
  }

  /**
   * Commits what was written so far and keeps the unit open: the next use starts a new transaction.
   * For an action that must make a step durable before it calls another service.
   */
  async commitSoFar(): Promise<void> {
    if (this.settled) return;
    await this.writeEmitted();
    if (!this.opening) return this.runCommitted();
    const trx = await this.opening;
    this.opening = undefined;
    await trx.commit().execute();
    this.runCommitted();
  }

  async commit(): Promise<void> {
    if (this.settled) return;
    await this.writeEmitted();
    this.settled = true;
    if (this.opening) await (await this.opening).commit().execute();
    this.runCommitted();
  }

  async rollback(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.emitted = [];
    this.committed = [];
    if (!this.opening) return;
    const trx = await this.opening.catch(() => undefined);
    await trx?.rollback().execute();
  }

  private runCommitted(): void {
    const runs = this.committed;
    this.committed = [];
    for (const run of runs) run();
  }

  private async writeEmitted(): Promise<void> {
    if (this.emitted.length === 0) return;
    const messages = this.emitted;
    this.emitted = [];
    await writeOutbox(await this.transaction(), this.service, messages);
  }
}
