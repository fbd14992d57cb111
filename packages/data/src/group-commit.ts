import type { Kysely } from 'kysely';
import type { AnyTables } from './database.ts';
import type { OutboxMessage } from './outbox.ts';
import type { UnitOfWork } from './unit-of-work.ts';

/**
 * Group commit for event handlers (`on(…, { groupCommit: true })`): the deliveries of one subscription
 * in flight together share one transaction. The first to arrive opens a group; those that arrive while
 * it is open join it and run one after another, each in its own async context, inside the group's unit
 * of work; the last to finish commits it, and every member returns (so its delivery is acknowledged)
 * only once that commit is done. A projection that writes one row an event pays BEGIN and COMMIT once
 * for the group instead of once a delivery.
 *
 * A group holds at most the deliveries in flight at once, which the subscription's prefetch bounds: a
 * member is not acknowledged, so does not make room for another delivery, before the group commits.
 *
 * When a member fails, or the commit does, the group rolls back and each of its members runs again
 * alone, in a unit of its own, as it would have without grouping: its neighbours are applied once and
 * only the bad delivery is retried or dead-lettered. A group of one that fails is simply that failure.
 */
export class CommitGroups {
  /** The group each subscription's arriving deliveries join, while it takes members. */
  private readonly open = new Map<string, Group>();

  /**
   * Runs one delivery in the open group of `key` (opening one with `newUnit` if there is none): `inGroup`
   * in its turn, given the group's unit; `alone` instead, after its group failed.
   */
  async run<T>(
    key: string,
    newUnit: () => UnitOfWork,
    inGroup: (unit: UnitOfWork) => Promise<T>,
    alone: () => Promise<T>,
  ): Promise<T> {
    let group = this.open.get(key);
    if (!group || performance.now() - group.openedAt > MAX_JOIN_AFTER_MS) {
      group = new Group(newUnit());
      this.open.set(key, group);
    }
    const { turn, index, done } = group.join();
    await turn;
    let result: T | undefined;
    if (group.state === 'open') {
      try {
        result = await inGroup(group.unit);
      } catch (error) {
        this.close(key, group);
        done();
        await group.fail(error);
        if (group.size === 1) throw error;
        return alone();
      }
      done();
      // Checked before any await: a delivery that joins later runs next and commits in its turn.
      if (group.size === index + 1) {
        this.close(key, group);
        await group.commit();
      }
    } else {
      done();
    }
    const outcome = await group.outcome;
    if (outcome.committed) return result as T;
    if (group.size === 1) throw outcome.error;
    return alone();
  }

  /** Later deliveries open the next group. */
  private close(key: string, group: Group): void {
    if (this.open.get(key) === group) this.open.delete(key);
  }
}

/**
 * How long after its opening a group still takes members. A group lasts the few milliseconds its members'
 * statements take; one whose member hangs would otherwise gather every later delivery — their
 * redeliveries too — behind it. Past this, arrivals open the next group and the old one ends alone.
 */
const MAX_JOIN_AFTER_MS = 1000;

type Outcome = { committed: true } | { committed: false; error: unknown };

/** One shared transaction and the deliveries that joined it, in their order. */
class Group {
  readonly unit: UnitOfWork;
  readonly openedAt = performance.now();
  state: 'open' | 'ending' = 'open';
  size = 0;
  readonly outcome: Promise<Outcome>;
  private settle!: (outcome: Outcome) => void;
  /** Resolves when the last member to join has had its turn. */
  private tail: Promise<void> = Promise.resolve();

  constructor(unit: UnitOfWork) {
    this.unit = unit;
    this.outcome = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  /** A place in line: `turn` resolves when the member before has run, `done` lets the next one run. */
  join(): { turn: Promise<void>; index: number; done: () => void } {
    const turn = this.tail;
    let done!: () => void;
    this.tail = new Promise((resolve) => {
      done = resolve;
    });
    return { turn, index: this.size++, done };
  }

  async commit(): Promise<void> {
    this.state = 'ending';
    try {
      await this.unit.commit();
      this.settle({ committed: true });
    } catch (error) {
      // An unknown outcome (a connection lost at COMMIT) is handled like a failure: each member runs
      // again alone, which the inbox or the handler's own idempotence makes harmless if it did commit.
      await this.unit.rollback(error).catch(() => undefined);
      this.settle({ committed: false, error });
    }
  }

  async fail(error: unknown): Promise<void> {
    this.state = 'ending';
    // On a lost connection the rollback fails too; the server has rolled the transaction back anyway.
    await this.unit.rollback(error).catch(() => undefined);
    this.settle({ committed: false, error });
  }
}

/**
 * One member's part of a group's unit of work: the group's transaction, with the member's inbox claim
 * made at its first use (as a unit of its own would at its opening), and its emits and after-commit
 * runs kept apart until the member has run to the end — a member turned away by the inbox, or failing,
 * leaves nothing in the group.
 */
export class GroupShare {
  private readonly unit: UnitOfWork;
  private readonly onFirstUse: ((trx: Kysely<AnyTables>) => Promise<void>) | undefined;
  private using: Promise<Kysely<AnyTables>> | undefined;
  private emitted: OutboxMessage[] = [];
  private committed: (() => void)[] = [];
  private ended = false;

  constructor(unit: UnitOfWork, onFirstUse?: (trx: Kysely<AnyTables>) => Promise<void>) {
    this.unit = unit;
    this.onFirstUse = onFirstUse;
  }

  get db() {
    return this.unit.db;
  }

  get hasEmitted(): boolean {
    return this.emitted.length > 0;
  }

  transaction(): Promise<Kysely<AnyTables>> {
    if (this.ended) {
      return Promise.reject(new Error(`The unit of work of ${this.unit.service} has ended; its transaction is gone`));
    }
    this.using ??= this.unit.transaction().then(async (trx) => {
      await this.onFirstUse?.(trx);
      return trx;
    });
    return this.using;
  }

  emit(message: OutboxMessage): void {
    if (this.ended)
      throw new Error(`The unit of work of ${this.unit.service} has ended; ${message.event} was not emitted`);
    this.emitted.push(message);
  }

  afterCommit(run: () => void): void {
    if (this.ended) throw new Error(`The unit of work of ${this.unit.service} has ended`);
    this.committed.push(run);
  }

  /** The member ran to the end: what it emitted and asked to run goes with the group's commit. */
  keep(): void {
    this.ended = true;
    for (const message of this.emitted) this.unit.emit(message);
    for (const run of this.committed) this.unit.afterCommit(run);
  }

  /** The member was turned away or failed: what it emitted is dropped. */
  drop(): void {
    this.ended = true;
    this.emitted = [];
    this.committed = [];
  }
}
