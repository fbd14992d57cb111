import type { Kysely, RawBuilder } from 'kysely';
import { type AnyTables, Database, sql } from './database.ts';
import { isMysql, isMysqlMissingTable } from './mysql.ts';
import { headersOf, notInstalled, outboxChannel, TABLE } from './outbox.ts';
import type { ReadyRow } from './outbox-handover.ts';
import type { Execute } from './outbox-marking.ts';
import { isMissingRelation } from './service-schema.ts';

/**
 * Parking (the outbox's order and the rest of its life: `outbox.ts`). A row the transport refuses every
 * time (too large for the stream, a subject it will never take) would otherwise block its service's
 * relay forever, since the oldest row goes first. After
 * `parkAfterAttempts` failed attempts the relay sets the row aside for one batch and goes on with the
 * next; if the broker takes a later row and then refuses this one once more, the refusal is this row's
 * and the row is parked: kept, marked `parked_at` with its last error, counted by `outboxLag().parked`,
 * listed by `listParkedOutbox` and put back in line by `replayParkedOutbox`. A broker that is down
 * refuses the later rows too, so an outage parks nothing. Events after a parked one are published
 * before it: a consumer that needs their order must tolerate, or wait for, the replay.
 */

/** How much of a publish error a row keeps in `last_error`. */
const LAST_ERROR_CHARS = 2000;

/** A row the relay parked, as `listParkedOutbox` shows it and the relay's `onParked` is told. */
export interface ParkedOutboxRow {
  /** The row's id in the service's outbox: what `replayParkedOutbox` takes. */
  id: number;
  /** The event's full name, e.g. `orders.order_created`. */
  event: string;
  /** The message id (`id` header) consumers' inboxes know it by. */
  messageId: string | undefined;
  /** Failed publishes so far. */
  attempts: number;
  /** The transport's last refusal. */
  lastError: string | null;
  parkedAt: Date;
  createdAt: Date;
}

/** A parked row as the database returns it. */
interface ParkedRecord {
  id: number | string;
  event: string;
  headers: Record<string, string> | string;
  attempts: number;
  last_error: string | null;
  parked_at: Date | string;
  created_at: Date | string;
}

function toParked(row: ParkedRecord): ParkedOutboxRow {
  return {
    id: Number(row.id),
    event: row.event,
    messageId: headersOf(row.headers).id,
    attempts: row.attempts,
    lastError: row.last_error,
    parkedAt: new Date(row.parked_at),
    createdAt: new Date(row.created_at),
  };
}

/** The service's parked rows, oldest first. */
export async function listParkedOutbox(db: Database | Kysely<AnyTables>, service: string): Promise<ParkedOutboxRow[]> {
  const kysely = db instanceof Database ? db.kysely : db;
  const result = await sql<ParkedRecord>`
    select id, event, headers, attempts, last_error, parked_at, created_at from ${sql.id(service, TABLE)}
    where sent_at is null and parked_at is not null
    order by id`
    .execute(kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) || isMysqlMissingTable(error) ? notInstalled(service, error) : error;
    });
  return result.rows.map(toParked);
}

/**
 * Puts parked rows back in line — `'all'`, or the ids `listParkedOutbox` gave — once whatever refused
 * them is fixed; resolves to how many. They keep their place: the relays publish them next, before
 * anything written after them that is still waiting, and park them again if they are refused as before.
 */
export async function replayParkedOutbox(
  db: Database | Kysely<AnyTables>,
  service: string,
  ids: readonly number[] | 'all',
): Promise<number> {
  const kysely = db instanceof Database ? db.kysely : db;
  if (ids !== 'all' && ids.length === 0) return 0;
  if (isMysql(kysely)) {
    const chosen = ids === 'all' ? sql`true` : sql`id in (${sql.join(ids.map(Number))})`;
    const replayed = await sql`
      update ${sql.id(service, TABLE)} set parked_at = null, attempts = 0
      where sent_at is null and parked_at is not null and ${chosen}`
      .execute(kysely)
      .catch((error: unknown) => {
        throw isMysqlMissingTable(error) ? notInstalled(service, error) : error;
      });
    return Number(replayed.numAffectedRows ?? 0);
  }
  const which = ids === 'all' ? sql`true` : sql`id = any(${ids.map(Number)})`;
  const result = await sql<{ n: number }>`
    with replayed as (
      update ${sql.id(service, TABLE)} set parked_at = null, attempts = 0
      where sent_at is null and parked_at is not null and ${which}
      returning id
    )
    select count(*)::int as n, pg_notify(${outboxChannel(service)}, '') from replayed`
    .execute(kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) ? notInstalled(service, error) : error;
    });
  return result.rows[0]?.n ?? 0;
}

/** A row whose publish failed in this batch. */
export interface Failed {
  row: ReadyRow;
  error: unknown;
}

/**
 * Records a batch's failed publishes on their rows — attempts and last error — and parks those in
 * `toPark`; resolves to the rows parked, as `onParked` is told.
 */
export async function recordFailures(
  execute: Execute,
  table: RawBuilder<unknown>,
  failed: readonly Failed[],
  toPark: readonly Failed[],
  mysql: boolean,
): Promise<ParkedOutboxRow[]> {
  const parked: ParkedOutboxRow[] = [];
  for (const row of new Set(failed.map((f) => f.row))) {
    const mine = failed.filter((f) => f.row === row);
    const lastError = errorText(mine[mine.length - 1]?.error);
    const park = toPark.some((p) => p.row === row);
    if (mysql) {
      await execute(sql`
        update ${table}
        set attempts = attempts + ${mine.length}, last_error = ${lastError},
            parked_at = case when ${park} then current_timestamp(6) else parked_at end
        where id = ${row.id} and sent_at is null`);
      if (!park) continue;
      const [record] = await execute(sql<ParkedRecord>`
        select id, event, headers, attempts, last_error, parked_at, created_at from ${table}
        where id = ${row.id} and parked_at is not null`);
      if (record) parked.push(toParked(record));
      continue;
    }
    const result = await execute(sql<ParkedRecord>`
      update ${table}
      set attempts = attempts + ${mine.length}, last_error = ${lastError},
          parked_at = case when ${park} then clock_timestamp() else parked_at end
      where id = ${row.id} and sent_at is null
      returning id, event, headers, attempts, last_error, parked_at, created_at`);
    const record = result[0];
    if (park && record) parked.push(toParked(record));
  }
  return parked;
}

/** How many times `id` failed so far in this batch. */
export function attemptsOf(failed: readonly Failed[], id: number): number {
  return failed.filter((f) => f.row.id === id).length;
}

/** A publish error as a row keeps it. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, LAST_ERROR_CHARS);
}
