import { ChassisError, defineError } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, Database, sql } from './database.ts';
import { FixedStatement, FixedStatements } from './fixed-statement.ts';
import { installInServiceDatabase, isMysql, isMysqlMissingTable } from './mysql.ts';
import { checkRetention, indexIfMissing, installInServiceSchema, isMissingRelation } from './service-schema.ts';

/**
 * The inbox, or idempotent consumer: events arrive at least once (a lost ack, a relay that published
 * twice), so a handler records the message's id in the same transaction as its effects, in the
 * service's `"<service>".chassis_inbox`. The id and the effects commit together or not at all: a
 * redelivery finds the id and skips the effects; a handler that failed left no id behind and runs again.
 *
 * Ids are recorded per subscription (`<service>.<handler>`, as the transports name it): two handlers of
 * one service each handle the same event once.
 */

export const InboxNotInstalled = defineError('INBOX_NOT_INSTALLED', { status: 500, retryable: false });

const TABLE = 'chassis_inbox';

/**
 * Creates the service's inbox table if it is missing. Idempotent, and safe from several nodes at once
 * (it takes the service's migration lock). Run it when the service starts.
 */
export async function installInbox(db: Database, service: string): Promise<void> {
  if (db.kind === 'mysql') {
    await installInServiceDatabase(db, service, [
      `create table if not exists ${TABLE} (
        subscription varchar(${MAX_ID_LENGTH}) not null,
        message_id varchar(${MAX_ID_LENGTH}) not null,
        handled_at datetime(6) not null default current_timestamp(6),
        primary key (subscription, message_id),
        key chassis_inbox_handled_at (handled_at)
      ) engine = InnoDB`,
    ]);
    return;
  }
  const table = sql.id(service, TABLE);
  await installInServiceSchema(db, service, [
    sql`create table if not exists ${table} (
      subscription text not null,
      message_id text not null,
      handled_at timestamptz not null default clock_timestamp(),
      primary key (subscription, message_id)
    )`,
    // What pruneInbox deletes by.
    indexIfMissing(
      service,
      'chassis_inbox_handled_at',
      sql`create index if not exists chassis_inbox_handled_at on ${table} (handled_at)`,
    ),
  ]);
}

/**
 * Records, in the caller's transaction, that `subscription` handled `messageId`. Resolves to true the
 * first time — go on with the effects, in the same transaction — and false when it was recorded before:
 * a redelivery, whose effects must be skipped.
 *
 * If another transaction has claimed the same id and not finished, this waits for it: false if it
 * commits, true if it rolls back. Two deliveries of one message handled at once still have one effect.
 */
export async function claimInbox(
  trx: Kysely<AnyTables>,
  service: string,
  subscription: string,
  messageId: string,
): Promise<boolean> {
  if (isMysql(trx)) {
    checkId(service, subscription, messageId, true);
    // `insert ignore` waits, as PostgreSQL's `on conflict` does, for a transaction holding the same key.
    // It would also turn a too-long value into a truncated one: checkId refuses those first.
    const inserted = await sql`
      insert ignore into ${sql.id(service, TABLE)} (subscription, message_id) values (${subscription}, ${messageId})`
      .execute(trx)
      .catch((error: unknown) => {
        throw isMissingRelation(error) || isMysqlMissingTable(error) ? notInstalled(service, error) : error;
      });
    return Number(inserted.numAffectedRows ?? 0) === 1;
  }
  checkId(service, subscription, messageId);
  const claim = claimStatements.get(
    service,
    () =>
      new FixedStatement(
        2,
        (subscription, messageId) => sql<{ claimed: number }>`
        insert into ${sql.id(service, TABLE)} (subscription, message_id) values (${subscription}, ${messageId})
        on conflict do nothing
        returning 1 as claimed`,
      ),
  );
  const result = await claim.execute(trx, subscription, messageId).catch((error: unknown) => {
    throw isMissingRelation(error) ? notInstalled(service, error) : error;
  });
  return result.rows.length === 1;
}

/** Each service's inbox claim (PostgreSQL and PGlite), its text made once. */
const claimStatements = new FixedStatements<{ claimed: number }, [string, string]>();

/**
 * Whether `subscription` has handled `messageId` (committed). A cheap check before opening a transaction
 * for a redelivery; `claimInbox` inside the transaction is what makes the effect happen once.
 */
export async function isInInbox(
  db: Database | Kysely<AnyTables>,
  service: string,
  subscription: string,
  messageId: string,
): Promise<boolean> {
  checkId(service, subscription, messageId);
  const result = await sql<{ found: number }>`
    select 1 as found from ${sql.id(service, TABLE)} where subscription = ${subscription} and message_id = ${messageId}`
    .execute(db instanceof Database ? db.kysely : db)
    .catch((error: unknown) => {
      throw isMissingRelation(error) || isMysqlMissingTable(error) ? notInstalled(service, error) : error;
    });
  return result.rows.length === 1;
}

/**
 * Forgets ids handled more than `olderThanMs` ago; resolves to how many. A message redelivered after its
 * id is forgotten has its effects again: keep ids longer than the broker can redeliver (its message
 * retention, or the longest redelivery backoff and dead-letter delay).
 */
export async function pruneInbox(db: Database, service: string, olderThanMs: number): Promise<number> {
  checkRetention(olderThanMs);
  const cutoff =
    db.kind === 'mysql'
      ? sql`current_timestamp(6) - interval ${Math.round(olderThanMs * 1000)} microsecond`
      : sql`clock_timestamp() - make_interval(secs => ${olderThanMs / 1000})`;
  const result = await sql`
    delete from ${sql.id(service, TABLE)}
    where handled_at < ${cutoff}`
    .execute(db.kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) || isMysqlMissingTable(error) ? notInstalled(service, error) : error;
    });
  return Number(result.numAffectedRows ?? 0);
}

/** The longest subscription and message id the inbox keeps (MariaDB/MySQL: the key's `varchar`). */
const MAX_ID_LENGTH = 255;

function checkId(service: string, subscription: string, messageId: string, mysql = false): void {
  if (mysql && (messageId.length > MAX_ID_LENGTH || subscription.length > MAX_ID_LENGTH)) {
    throw new ChassisError(
      'BAD_MESSAGE',
      `A message id or subscription for ${subscription} of service "${service}" is longer than ${MAX_ID_LENGTH} characters: the inbox keeps ids up to ${MAX_ID_LENGTH}`,
      { data: { service, subscription } },
    );
  }
  // An empty id would make every message without one a "redelivery" of the first.
  if (messageId === '') {
    throw new ChassisError(
      'BAD_MESSAGE',
      `A message for ${subscription} of service "${service}" has no id: the inbox cannot tell a redelivery from a new message`,
      { data: { service, subscription } },
    );
  }
}

function notInstalled(service: string, cause: unknown): ChassisError {
  return new ChassisError(
    InboxNotInstalled.code,
    `Service "${service}" has no inbox table: call installInbox(db, ${JSON.stringify(service)}) when it starts, before handling events`,
    { status: InboxNotInstalled.status, retryable: InboxNotInstalled.retryable, data: { service }, cause },
  );
}
