import { createHash } from 'node:crypto';
import { ChassisError, defineError, type WireMessage } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, Database, sql } from './database.ts';
import { FixedStatement, FixedStatements, type Placeholder } from './fixed-statement.ts';
import { installInServiceDatabase, isMysql, isMysqlMissingTable } from './mysql.ts';
import {
  checkRetention,
  columnIfMissing,
  dropIndexIfPresent,
  indexIfMissing,
  installInServiceSchema,
  isMissingRelation,
  tableOptionsUnlessSet,
} from './service-schema.ts';

/**
 * The transactional outbox: events emitted inside a transaction are rows in the service's
 * `"<service>".chassis_outbox`, committed or rolled back with the rest of it, and a relay publishes the
 * committed ones to the transport and marks them sent.
 *
 * Delivery is at least once: a relay that dies after publishing and before its mark commits leaves the
 * rows unsent, and the next batch (this node's or another's) publishes them again. Consumers make that
 * harmless with the inbox (`claimInbox`).
 *
 * Order. Each row has a serial id, taken when it is written: at the handler's commit, after its reads
 * and locks. The relay publishes the committed rows in id order, as soon as they are committed, and marks
 * each one sent (no cursor passes over them). So:
 *
 * - one transaction's events go out in the order they were written;
 * - transaction A's events go out before B's whenever B could see A's writes: B began after A committed,
 *   or B waited for a lock A held (two handlers of one aggregate, `select … for update`) — B's rows are
 *   written after A committed, so they have larger ids and are committed later;
 * - nothing is skipped: a row that commits after a row with a larger id went out is published when it
 *   commits, since the relay looks for unsent rows, not past a position.
 *
 * Not promised: between transactions that overlap without waiting for each other, the events go out in
 * the order they committed (or by id when the relay finds both committed), which neither of them could
 * observe. A transaction left open elsewhere on the server holds back nothing. (Until December 2026 the
 * relay waited for every older transaction on the server — `xid < pg_snapshot_xmin(…)` — which gave the
 * order of first writes between overlapping transactions at the price of any long transaction, in any
 * database, stalling every relay; the `xid` column stays, unused, so older nodes in a rolling upgrade work.)
 *
 * Parking, for a row the transport refuses every time: `outbox-parking.ts`.
 *
 * Written by hand: this is the product (DESIGN.md, Data); no library does an outbox over both pg and PGlite.
 */

export const OutboxNotInstalled = defineError('OUTBOX_NOT_INSTALLED', { status: 500, retryable: false });

/** An event to publish once its transaction commits. */
export interface OutboxMessage {
  /** The event's full name, e.g. `orders.order_created`. */
  event: string;
  /** Headers and body as they go on the wire, already encoded by the runtime; published byte for byte. */
  message: WireMessage;
}

/** The service's outbox table, in its schema. */
export const TABLE = 'chassis_outbox';
/** Rows per insert statement: 3 parameters each, well under PostgreSQL's 65 535. */
const INSERT_CHUNK = 1000;

/**
 * The LISTEN/NOTIFY channel of a service's relay. A channel is an identifier of at most 63 bytes: a
 * service name that is not a plain lower-case word is folded to one and made unique by a hash.
 */
export function outboxChannel(service: string): string {
  if (/^[a-z0-9_]{1,40}$/.test(service)) return `chassis_outbox_${service}`;
  const hash = createHash('sha256').update(service).digest('hex').slice(0, 8);
  const folded = service
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 32);
  return `chassis_outbox_${folded}_${hash}`;
}

/**
 * Creates the service's outbox table if it is missing. Idempotent, and safe from several nodes at once
 * (it takes the service's migration lock). Run it when the service starts, before its relay.
 */
export async function installOutbox(db: Database, service: string): Promise<void> {
  if (db.kind === 'mysql') {
    await installInServiceDatabase(db, service, [
      // `headers` is text holding JSON (MariaDB's `json` is `longtext` anyway): parsed when read.
      `create table if not exists ${TABLE} (
        id bigint not null auto_increment primary key,
        event varchar(255) not null,
        headers longtext not null,
        body longblob not null,
        created_at datetime(6) not null default current_timestamp(6),
        sent_at datetime(6) null,
        attempts integer not null default 0,
        last_error text null,
        parked_at datetime(6) null,
        key chassis_outbox_unsent (sent_at, parked_at, id),
        key chassis_outbox_sent (sent_at)
      ) engine = InnoDB`,
    ]);
    return;
  }
  const table = sql.id(service, TABLE);
  await installInServiceSchema(db, service, [
    sql`create table if not exists ${table} (
      id bigint generated always as identity primary key,
      xid xid8 not null default pg_current_xact_id(),
      event text not null,
      headers json not null,
      body bytea not null,
      created_at timestamptz not null default clock_timestamp(),
      sent_at timestamptz
    )`,
    // What the relay reads: the unsent rows, in publishing order. Partial, so it stays small.
    indexIfMissing(
      service,
      'chassis_outbox_unsent',
      sql`create index if not exists chassis_outbox_unsent on ${table} (id) where sent_at is null`,
    ),
    // The (xid, id) index of the relay's former order: written at every insert, read by nothing.
    dropIndexIfPresent(service, 'chassis_outbox_pending'),
    // What pruneOutbox deletes by.
    indexIfMissing(
      service,
      'chassis_outbox_sent',
      sql`create index if not exists chassis_outbox_sent on ${table} (sent_at) where sent_at is not null`,
    ),
    // Parking (added later: brings tables installed before it up to date).
    columnIfMissing(
      service,
      TABLE,
      'parked_at',
      sql`alter table ${table}
        add column if not exists attempts integer not null default 0,
        add column if not exists last_error text,
        add column if not exists parked_at timestamptz`,
    ),
    // Vacuumed by a count of dead rows, not a fraction of the table. Every row sent is an update that
    // leaves a dead entry in chassis_outbox_unsent until a vacuum removes it, and the relay's look and the
    // lag gauge read that index, as planned here, by a bitmap scan: it visits the heap row of every entry,
    // dead or not, and never marks one dead (a plain index scan would). Autovacuum's default waits for 20%
    // of the table to be dead, so an outbox that is never pruned makes every look dearer as it grows:
    // 20,000 dead entries cost a look 1,010 buffers and ~20 ms, against 8 buffers vacuumed. A vacuum here
    // reads the pages written since the last (the rest are all-visible) and the indexes; autovacuum visits
    // a database once a minute (autovacuum_naptime), which bounds how often it comes.
    tableOptionsUnlessSet(service, TABLE, [
      'autovacuum_vacuum_scale_factor=0',
      `autovacuum_vacuum_threshold=${VACUUM_AFTER_DEAD_ROWS}`,
    ]),
  ]);
}

/** The dead rows (sent since the last vacuum) after which autovacuum takes an outbox table. */
const VACUUM_AFTER_DEAD_ROWS = 1000;

/**
 * Adds messages to the service's outbox in the caller's transaction, and wakes the service's leading
 * relay (the notification is delivered only if the transaction commits). Given a Kysely outside a
 * transaction, the messages are committed at once. `notify: false` leaves the waking to the caller, and
 * resolves to the highest row id written (PostgreSQL): the node whose own relay leads tells it after the
 * commit, sparing every listening backend of the database a wake-up (PostgreSQL signals them all on each
 * notifying commit, whatever their channel: ~20 µs of server CPU each, measured with 12 listeners).
 */
export async function writeOutbox(
  trx: Kysely<AnyTables>,
  service: string,
  messages: OutboxMessage[],
  { notify = true }: { notify?: boolean } = {},
): Promise<number | undefined> {
  const ids = await insertOutbox(trx, service, messages, notify);
  return ids?.reduce((highest, id) => Math.max(highest, id));
}

/** What an outbox insert's text depends on, besides its service. */
interface InsertShape {
  rows: number;
  /**
   * What follows the insert: the rows' ids (and marking the published rows sent, in the same statement),
   * their highest id notified, or nothing.
   */
  ending: 'ids' | 'ids-marking' | 'notify' | 'nothing';
}

/**
 * Outbox inserts on PostgreSQL and PGlite by service and shape, each text made once: a service's units
 * write one or two rows, in two or three shapes, thousands of times.
 */
const insertStatements = new FixedStatements<{ id: string | number }, unknown[]>();

/** The insert of `shape` into `service`'s outbox: its rows' event, headers and body, then the marked ids or the channel. */
function insertStatement(service: string, shape: InsertShape): FixedStatement<{ id: string | number }, unknown[]> {
  const extra = shape.ending === 'ids-marking' || shape.ending === 'notify' ? 1 : 0;
  const make = () =>
    new FixedStatement(shape.rows * 3 + extra, (...placeholders: Placeholder[]) => {
      const table = sql.id(service, TABLE);
      const rows = Array.from(
        { length: shape.rows },
        (_, i) => sql`(${placeholders[i * 3]}, ${placeholders[i * 3 + 1]}, ${placeholders[i * 3 + 2]})`,
      );
      const insert = sql`insert into ${table} (event, headers, body) values ${sql.join(rows)}`;
      const lastPlaceholder = placeholders[shape.rows * 3];
      switch (shape.ending) {
        case 'ids':
          return sql<{ id: string | number }>`${insert} returning id`;
        case 'ids-marking':
          return sql<{
            id: string | number;
          }>`with marked as (update ${table} set sent_at = clock_timestamp() where id = any(${lastPlaceholder})) ${insert} returning id`;
        case 'notify':
          return sql<{ id: string | number }>`with written as (${insert} returning id)
          select pg_notify(${lastPlaceholder}, (select max(id) from written)::text)`;
        case 'nothing':
          return sql<{ id: string | number }>`${insert}`;
      }
    });
  return insertStatements.get(`${service}\n${shape.rows}\n${shape.ending}`, make);
}

/**
 * `writeOutbox`, resolving without NOTIFY to the ids of the rows written, in the order of `messages` (one
 * statement a chunk, as with NOTIFY): a unit of work hands them to its service's relay after the commit
 * (`OutboxRelay.handOver`). Undefined with NOTIFY, and on MariaDB/MySQL, which has neither.
 */
export async function insertOutbox(
  trx: Kysely<AnyTables>,
  service: string,
  messages: OutboxMessage[],
  notify: boolean,
  /** Rows the relay published, to mark sent in the same statement (see `OutboxRelay.takeMarks`). */
  markSent: readonly number[] = [],
  /**
   * The transaction commits right after this insert, and nothing else runs in it: the insert carries
   * the COMMIT (`committing`, PostgreSQL and PGlite), saving the COMMIT's round trip or call.
   */
  commitAfter = false,
): Promise<number[] | undefined> {
  if (messages.length === 0) return undefined;
  const table = sql.id(service, TABLE);
  const ids: number[] = [];
  try {
    for (let start = 0; start < messages.length; start += INSERT_CHUNK) {
      const chunk = messages.slice(start, start + INSERT_CHUNK);
      // MariaDB/MySQL has no NOTIFY: the node wakes its own relay after the commit, others poll.
      if (isMysql(trx)) {
        const rows = chunk.map(
          ({ event, message }) => sql`(${event}, ${JSON.stringify(message.headers)}, ${message.body})`,
        );
        await sql`insert into ${table} (event, headers, body) values ${sql.join(rows)}`.execute(trx);
        continue;
      }
      const last = start + INSERT_CHUNK >= messages.length;
      const values: unknown[] = [];
      for (const { event, message } of chunk) values.push(event, JSON.stringify(message.headers), message.body);
      // Without NOTIFY the caller learns the ids: it announces the rows itself once committed. With it,
      // the last chunk carries the transaction's highest row id in the notification: it lets a relay
      // that already published that row skip the look it would otherwise cost (OutboxRelay).
      const marks = !notify && start === 0 && markSent.length > 0;
      const shape: InsertShape = {
        rows: chunk.length,
        ending: !notify ? (marks ? 'ids-marking' : 'ids') : last ? 'notify' : 'nothing',
      };
      if (marks) values.push(markSent);
      else if (shape.ending === 'notify') values.push(outboxChannel(service));
      const written = await insertStatement(service, shape).executeWith(trx, values, { commits: commitAfter && last });
      if (!notify) for (const row of written.rows) ids.push(Number(row.id));
    }
    return ids.length > 0 ? ids : undefined;
  } catch (error) {
    if (isMissingRelation(error) || isMysqlMissingTable(error)) throw notInstalled(service, error);
    throw error;
  }
}

/** Deletes rows published more than `olderThanMs` ago; resolves to how many. Unsent rows are kept. */
export async function pruneOutbox(db: Database, service: string, olderThanMs: number): Promise<number> {
  checkRetention(olderThanMs);
  const cutoff =
    db.kind === 'mysql'
      ? sql`current_timestamp(6) - interval ${Math.round(olderThanMs * 1000)} microsecond`
      : sql`clock_timestamp() - make_interval(secs => ${olderThanMs / 1000})`;
  const result = await sql`
    delete from ${sql.id(service, TABLE)}
    where sent_at is not null and sent_at < ${cutoff}`
    .execute(db.kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) || isMysqlMissingTable(error) ? notInstalled(service, error) : error;
    });
  return Number(result.numAffectedRows ?? 0);
}

/** How far behind the relays of a service are: the outbox-lag metric. */
export interface OutboxLag {
  /** Committed rows not yet published, parked ones not included. */
  pending: number;
  /** How long the oldest of them has waited, by the database's clock; 0 when none waits. */
  oldestAgeMs: number;
  /** Rows parked: refused by the transport too often, waiting for `replayParkedOutbox`. */
  parked: number;
}

export async function outboxLag(db: Database | Kysely<AnyTables>, service: string): Promise<OutboxLag> {
  const kysely = db instanceof Database ? db.kysely : db;
  if (isMysql(kysely)) {
    const found = await sql<{ pending: unknown; parked: unknown; oldest_age_us: unknown }>`
      select cast(coalesce(sum(parked_at is null), 0) as signed) as pending,
             cast(coalesce(sum(parked_at is not null), 0) as signed) as parked,
             timestampdiff(microsecond, min(case when parked_at is null then created_at end), current_timestamp(6))
               as oldest_age_us
      from ${sql.id(service, TABLE)} where sent_at is null`
      .execute(kysely)
      .catch((error: unknown) => {
        throw isMysqlMissingTable(error) ? notInstalled(service, error) : error;
      });
    const row = found.rows[0];
    return {
      pending: Number(row?.pending ?? 0),
      oldestAgeMs: Math.max(0, Number(row?.oldest_age_us ?? 0) / 1000),
      parked: Number(row?.parked ?? 0),
    };
  }
  const result = await sql<{ pending: number; parked: number; oldest_age_ms: number | null }>`
    select count(*) filter (where parked_at is null)::int as pending,
           count(*) filter (where parked_at is not null)::int as parked,
           (extract(epoch from clock_timestamp() - min(created_at) filter (where parked_at is null)) * 1000)::float8
             as oldest_age_ms
    from ${sql.id(service, TABLE)} where sent_at is null`
    .execute(kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) ? notInstalled(service, error) : error;
    });
  const row = result.rows[0];
  return {
    pending: row?.pending ?? 0,
    oldestAgeMs: Math.max(0, row?.oldest_age_ms ?? 0),
    parked: row?.parked ?? 0,
  };
}

/** Headers as the database returns them: JSON on PostgreSQL, its text on MariaDB/MySQL. */
export function headersOf(headers: Record<string, string> | string): Record<string, string> {
  return typeof headers === 'string' ? (JSON.parse(headers) as Record<string, string>) : headers;
}

export function notInstalled(service: string, cause?: unknown): ChassisError {
  return new ChassisError(
    OutboxNotInstalled.code,
    `Service "${service}" has no outbox table: call installOutbox(db, ${JSON.stringify(service)}) when it starts, before writing events or starting its relay`,
    { status: OutboxNotInstalled.status, retryable: OutboxNotInstalled.retryable, data: { service }, cause },
  );
}
