import type { RawBuilder } from 'kysely';
import { sql } from './database.ts';
import { TABLE } from './outbox.ts';

/**
 * How long published rows wait for an outbox insert of their service to mark them sent before the relay
 * marks them itself: under load an insert comes first, and the marking costs no statement.
 */
const MARK_AFTER_MS = 100;

/** Runs one statement, resolving to its rows. */
export type Execute = <R>(query: RawBuilder<R>) => Promise<R[]>;

/**
 * The deferred marking of published rows. Rows a relay published (handed over on PGlite, or any the
 * leader published on PostgreSQL) are not marked sent by a statement of their own: the service's next
 * outbox insert marks them in its statement (`takeMarks`), or the leader's next look on PostgreSQL, or
 * the relay a moment later (`due`, after `MARK_AFTER_MS`) — no statement of their own under load. Should
 * the relay die first, the next leader publishes them again (at least once; JetStream drops the duplicates).
 */
export class DeferredMarks {
  private readonly service: string;
  /** Called when rows waited `MARK_AFTER_MS` unmarked: the relay marks them (`markAll`) in its turn. */
  private readonly due: () => void;
  /** Published and not yet marked sent. */
  private unmarked: number[] = [];
  /** Of those, the ones an open transaction is marking: back to `unmarked` if it rolls back. */
  private readonly marking = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(service: string, due: () => void) {
    this.service = service;
    this.due = due;
  }

  /** Rows just published, to mark sent later. */
  defer(ids: readonly number[]): void {
    this.unmarked.push(...ids);
    this.soon();
  }

  /**
   * The published rows a transaction of this service about to insert into its outbox may mark sent in the
   * same statement, and what to call once it has committed (true) or rolled back (false). Undefined when
   * there are none.
   */
  takeMarks(): { ids: number[]; settle: (committed: boolean) => void } | undefined {
    if (this.unmarked.length === 0) return undefined;
    const ids = this.unmarked;
    this.unmarked = [];
    for (const id of ids) this.marking.add(id);
    return {
      ids,
      settle: (committed) => {
        for (const id of ids) this.marking.delete(id);
        if (committed) return;
        this.defer(ids);
      },
    };
  }

  /** Every row waiting to be marked, for a statement that marks them itself; `putBack` them if it fails. */
  takeAll(): number[] {
    const ids = this.unmarked;
    this.unmarked = [];
    return ids;
  }

  putBack(ids: readonly number[]): void {
    this.unmarked.push(...ids);
  }

  /** `rows` without those an open transaction is marking (or one that rolled back and has not said so yet). */
  notBeingMarked<T extends { id: number }>(rows: T[]): T[] {
    if (this.marking.size === 0) return rows;
    return rows.filter((row) => !this.marking.has(Number(row.id)));
  }

  /** Marks the rows published and not marked yet, in one statement. */
  async markAll(execute: Execute): Promise<void> {
    if (this.unmarked.length === 0) return;
    const ids = this.takeAll();
    try {
      await execute(sql`update ${sql.id(this.service, TABLE)} set sent_at = clock_timestamp() where id = any(${ids})`);
    } catch (error) {
      this.putBack(ids);
      throw error;
    }
  }

  /** Has what no insert took within a moment marked: an idle service's last rows. */
  soon(): void {
    if (this.timer !== undefined || this.unmarked.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.unmarked.length > 0) this.due();
    }, MARK_AFTER_MS);
    this.timer.unref();
  }

  /** No more marking a moment later: the relay stops (and marks what is left itself). */
  stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
