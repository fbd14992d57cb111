import { createHash } from 'node:crypto';
import { ChassisError, defineError, type WireMessage } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, Database, quoteIdentifier, sql } from './database.ts';
import { checkRetention, indexIfMissing, installInServiceSchema, isMissingRelation } from './service-schema.ts';

/**
 * The transactional outbox: events emitted inside a transaction are rows in the service's
 * `"<service>".chassis_outbox`, committed or rolled back with the rest of it, and a relay publishes the
 * committed ones to the transport and marks them sent.
 *
 * Delivery is at least once: a relay that dies after publishing and before its mark commits leaves the
 * rows unsent, and the next batch (this node's or another's) publishes them again. Consumers make that
 * harmless with the inbox (`claimInbox`).
 *
 * Order. Each row carries the id of the transaction that wrote it (`pg_current_xact_id()`, given by
 * PostgreSQL at a transaction's first write) and a serial id. The relay publishes in (transaction id,
 * serial id) order, and only rows whose transaction is older than every transaction still running
 * (`xid < pg_snapshot_xmin(pg_current_snapshot())`). So:
 *
 * - one transaction's events go out in the order they were written;
 * - transaction A's events go out before B's whenever A committed before B wrote anything — successive
 *   transactions, e.g. two commands on one aggregate handled one after the other — and whenever both
 *   lock the aggregate's row (`select … for update`, or update it) before any other write, since the
 *   lock decides which of them gets a transaction id first;
 * - nothing is skipped and the order never changes afterwards: a transaction that commits late holds
 *   back the rows of every transaction that started writing after it, rather than being overtaken and
 *   left behind a cursor (ordering by the serial id alone would do that: a later id can commit first).
 *
 * Not promised: between transactions that overlap, the order is that of their first writes, which can
 * differ from the order they commit in. A transaction that wrote something else and then waited for
 * another's lock on the aggregate is ordered before it; lock the aggregate first if that matters.
 * The price of the rule: a transaction left open with writes anywhere on the PostgreSQL server (any
 * database: transaction ids are server-wide) holds back every relay until it ends. The outbox lag
 * metric shows it.
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

const TABLE = 'chassis_outbox';
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
      'chassis_outbox_pending',
      sql`create index if not exists chassis_outbox_pending on ${table} (xid, id) where sent_at is null`,
    ),
    // What pruneOutbox deletes by.
    indexIfMissing(
      service,
      'chassis_outbox_sent',
      sql`create index if not exists chassis_outbox_sent on ${table} (sent_at) where sent_at is not null`,
    ),
  ]);
}

/**
 * Adds messages to the service's outbox in the caller's transaction, and wakes the relays (the
 * notification is delivered only if the transaction commits). Given a Kysely outside a transaction, the
 * messages are committed at once.
 */
export async function writeOutbox(trx: Kysely<AnyTables>, service: string, messages: OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  const table = sql.id(service, TABLE);
  try {
    for (let start = 0; start < messages.length; start += INSERT_CHUNK) {
      const rows = messages
        .slice(start, start + INSERT_CHUNK)
        .map(({ event, message }) => sql`(${event}, ${JSON.stringify(message.headers)}, ${message.body})`);
      const insert = sql`insert into ${table} (event, headers, body) values ${sql.join(rows)}`;
      if (start + INSERT_CHUNK < messages.length) await insert.execute(trx);
      // The last chunk carries the notification: one round trip for the usual single event.
      else await sql`with written as (${insert}) select pg_notify(${outboxChannel(service)}, '')`.execute(trx);
    }
  } catch (error) {
    if (isMissingRelation(error)) throw notInstalled(service, error);
    throw error;
  }
}

/** Deletes rows published more than `olderThanMs` ago; resolves to how many. Unsent rows are kept. */
export async function pruneOutbox(db: Database, service: string, olderThanMs: number): Promise<number> {
  checkRetention(olderThanMs);
  const result = await sql`
    delete from ${sql.id(service, TABLE)}
    where sent_at is not null and sent_at < clock_timestamp() - make_interval(secs => ${olderThanMs / 1000})`
    .execute(db.kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) ? notInstalled(service, error) : error;
    });
  return Number(result.numAffectedRows ?? 0);
}

/** How far behind the relays of a service are: the outbox-lag metric. */
export interface OutboxLag {
  /** Committed rows not yet published. */
  pending: number;
  /** How long the oldest of them has waited, by the database's clock; 0 when none waits. */
  oldestAgeMs: number;
}

export async function outboxLag(db: Database | Kysely<AnyTables>, service: string): Promise<OutboxLag> {
  const kysely = db instanceof Database ? db.kysely : db;
  const result = await sql<{ pending: number; oldest_age_ms: number | null }>`
    select count(*)::int as pending,
           (extract(epoch from clock_timestamp() - min(created_at)) * 1000)::float8 as oldest_age_ms
    from ${sql.id(service, TABLE)} where sent_at is null`
    .execute(kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) ? notInstalled(service, error) : error;
    });
  const row = result.rows[0];
  return { pending: row?.pending ?? 0, oldestAgeMs: Math.max(0, row?.oldest_age_ms ?? 0) };
}

export type Publish = (event: string, message: WireMessage) => Promise<void>;

export interface OutboxRelayOptions {
  /**
   * How often the relay looks for rows without being told: the fallback for a lost notification, a
   * dropped LISTEN connection, or rows held back by a transaction that was still running. Default 1000 ms.
   */
  pollIntervalMs?: number;
  /** Rows published per database transaction. Default 100. */
  batchSize?: number;
  /**
   * LISTEN for commits (default true). Turn it off where LISTEN cannot work, e.g. behind PgBouncer in
   * transaction mode: the relay then finds rows by polling alone.
   */
  listen?: boolean;
  /** How long `stop()` goes on publishing what is ready before giving up (the rest waits). Default 5000 ms. */
  drainTimeoutMs?: number;
  /** Told about failures (publishing, the database); the relay tries again at its next poll. Default: stderr. */
  onError?: (error: unknown) => void;
}

interface Row {
  id: number;
  event: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

type BatchOutcome = { published: number; failure?: unknown } | 'busy';

/**
 * Publishes a service's committed outbox rows, in order, and marks them sent.
 *
 * One relay per service publishes at a time, cluster-wide: each batch is one transaction that first
 * takes a transaction-level advisory lock for the service (`pg_try_advisory_xact_lock`); a relay that
 * finds it taken leaves the batch to its holder. The batch reads the ready rows, publishes them one by
 * one in order (each awaited, so the broker sees them in that order), marks the published ones sent and
 * commits. A publish that fails ends the batch: what went out before it is marked, and it is the first
 * row of the next attempt. A relay that dies mid-batch marks nothing; the next batch publishes it all
 * again — at least once, never lost.
 *
 * On PGlite the batch holds its only connection while publishing: `publish` must not wait for work that
 * needs the same database (a transport's publish returns once the broker has the message; it does not
 * wait for consumers).
 */
export class OutboxRelay {
  private readonly pollIntervalMs: number;
  private readonly batchSize: number;
  private readonly listenForCommits: boolean;
  private readonly drainTimeoutMs: number;
  private readonly onError: (error: unknown) => void;

  private state: 'idle' | 'running' | 'stopping' = 'idle';
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  /** The wake-up loop in progress, if any. */
  private cycle: Promise<void> | undefined;
  /** A wake-up came while the loop ran: look again before resting. */
  private wanted = false;
  /** After a failure, notifications are ignored until this time; the poll still tries. */
  private quietUntil = 0;
  /** Batches of this relay run one after another (the loop, `flush`, the drain at stop). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Database,
    readonly service: string,
    private readonly publish: Publish,
    options: OutboxRelayOptions = {},
  ) {
    this.pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 1000);
    this.batchSize = positive('batchSize', options.batchSize ?? 100);
    if (!Number.isInteger(this.batchSize)) {
      throw new ChassisError('CONFIG', `The outbox relay's batchSize must be a whole number, not ${this.batchSize}`);
    }
    this.listenForCommits = options.listen ?? true;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.onError =
      options.onError ??
      ((error) => console.error(`[chassis] the outbox relay of "${service}" failed; it will retry:`, error));
  }

  /**
   * Starts relaying: at once (rows may have waited while no relay ran), on every commit that wrote to the
   * outbox, and every `pollIntervalMs`. Fails with `OUTBOX_NOT_INSTALLED` if `installOutbox` was not run.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    const found = await sql<{ table: string | null }>`
      select to_regclass(${`${quoteIdentifier(this.service)}.${TABLE}`}) as table`.execute(this.db.kysely);
    if (!found.rows[0]?.table) throw notInstalled(this.service);
    this.state = 'running';
    if (this.listenForCommits) {
      try {
        this.unlisten = await this.db.listen(outboxChannel(this.service), () => this.wake(false));
      } catch (error) {
        // Polling alone still publishes everything, later; say why it is slow.
        this.onError(error);
      }
    }
    this.timer = setInterval(() => this.wake(true), this.pollIntervalMs);
    // A relay must not keep a process alive on its own: the node decides when to stop.
    this.timer.unref();
    this.wake(true);
  }

  /**
   * Stops relaying gracefully: no new wake-ups, the batch in progress finishes (published rows are
   * marked), then what is ready is published for up to `drainTimeoutMs` — so events committed by the
   * handlers that just finished go out before the node closes its transport. Failures go to `onError`.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    clearInterval(this.timer);
    this.timer = undefined;
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch((error: unknown) => this.onError(error));
    await this.cycle;
    try {
      await this.flush(Date.now() + this.drainTimeoutMs);
    } catch (error) {
      this.onError(error);
    }
    this.state = 'idle';
  }

  /**
   * Publishes what is ready now, batch after batch, and resolves to how many rows this relay published.
   * Stops early when another relay holds the service's lock (it publishes them) or at `deadline` (epoch
   * ms). A failed publish rejects, after marking the rows that went out before it.
   */
  async flush(deadline = Number.POSITIVE_INFINITY): Promise<number> {
    let total = 0;
    for (;;) {
      const outcome = await this.batch();
      if (outcome === 'busy') return total;
      total += outcome.published;
      if (outcome.failure !== undefined) throw outcome.failure;
      if (outcome.published < this.batchSize || Date.now() >= deadline) return total;
    }
  }

  /** Committed rows not yet published, and the age of the oldest: for the outbox-lag metric. */
  lag(): Promise<OutboxLag> {
    return outboxLag(this.db, this.service);
  }

  private wake(fromPoll: boolean): void {
    if (this.state !== 'running') return;
    if (!fromPoll && Date.now() < this.quietUntil) return;
    this.wanted = true;
    this.cycle ??= this.loop().finally(() => {
      this.cycle = undefined;
      // A wake-up that landed between the loop's last look and here must not be lost.
      if (this.wanted) this.wake(true);
    });
  }

  private async loop(): Promise<void> {
    while (this.wanted && this.state === 'running') {
      this.wanted = false;
      let outcome: BatchOutcome;
      try {
        outcome = await this.batch();
      } catch (error) {
        this.backOff(error);
        return;
      }
      if (outcome === 'busy') continue;
      if (outcome.failure !== undefined) {
        this.backOff(outcome.failure);
        return;
      }
      // A full batch: more may be ready, and no notification will say so.
      if (outcome.published === this.batchSize) this.wanted = true;
    }
  }

  private backOff(error: unknown): void {
    this.wanted = false;
    // Every commit notifies: without this, a broker that is down would be hit once per commit.
    this.quietUntil = Date.now() + this.pollIntervalMs;
    this.onError(error);
  }

  private batch(): Promise<BatchOutcome> {
    const run = this.tail.then(() => this.relayBatch());
    this.tail = run.catch(() => undefined);
    return run;
  }

  private relayBatch(): Promise<BatchOutcome> {
    const table = sql.id(this.service, TABLE);
    // Read committed, whatever the server's default: each statement must see what committed before it,
    // the rows marked by the relay that held the lock just before this one included.
    return this.db.kysely
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (trx): Promise<BatchOutcome> => {
        // A statement of its own: the select below must take its snapshot after the lock is ours.
        const lock = await sql<{ ours: boolean }>`
          select pg_try_advisory_xact_lock(hashtext('chassis:outbox'), hashtext(${this.service})) as ours`.execute(trx);
        if (!lock.rows[0]?.ours) return 'busy';
        const ready = await sql<Row>`
          select id, event, headers, body from ${table}
          where sent_at is null and xid < pg_snapshot_xmin(pg_current_snapshot())
          order by xid, id
          limit ${this.batchSize}`.execute(trx);
        const sent: number[] = [];
        let failure: unknown;
        for (const row of ready.rows) {
          try {
            await this.publish(row.event, { headers: row.headers, body: asUint8Array(row.body) });
          } catch (error) {
            failure = error;
            break;
          }
          sent.push(row.id);
        }
        if (sent.length > 0) {
          await sql`update ${table} set sent_at = clock_timestamp() where id = any(${sent})`.execute(trx);
        }
        return { published: sent.length, failure };
      });
  }
}

/** pg hands bytea back as a Buffer: give `publish` the plain Uint8Array it was written as (no copy). */
function asUint8Array(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ChassisError('CONFIG', `The outbox relay's ${name} must be a positive number, not ${value}`);
  }
  return value;
}

function notInstalled(service: string, cause?: unknown): ChassisError {
  return new ChassisError(
    OutboxNotInstalled.code,
    `Service "${service}" has no outbox table: call installOutbox(db, ${JSON.stringify(service)}) when it starts, before writing events or starting its relay`,
    { status: OutboxNotInstalled.status, retryable: OutboxNotInstalled.retryable, data: { service }, cause },
  );
}
