import { createHash } from 'node:crypto';
import { ChassisError, defineError, toChassisError, type WireMessage } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, Database, quoteIdentifier, sql } from './database.ts';
import {
  checkRetention,
  columnIfMissing,
  indexIfMissing,
  installInServiceSchema,
  isMissingRelation,
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
 * Parking. A row the transport refuses every time (too large for the stream, a subject it will never
 * take) would otherwise block its service's relay forever, since the oldest row goes first. After
 * `parkAfterAttempts` failed attempts the relay sets the row aside for one batch and goes on with the
 * next; if the broker takes a later row and then refuses this one once more, the refusal is this row's
 * and the row is parked: kept, marked `parked_at` with its last error, counted by `outboxLag().parked`,
 * listed by `listParkedOutbox` and put back in line by `replayParkedOutbox`. A broker that is down
 * refuses the later rows too, so an outage parks nothing. Events after a parked one are published
 * before it: a consumer that needs their order must tolerate, or wait for, the replay.
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
/** How much of a publish error a row keeps in `last_error`. */
const LAST_ERROR_CHARS = 2000;
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
  ]);
}

/**
 * Adds messages to the service's outbox in the caller's transaction, and wakes the relays (the
 * notification is delivered only if the transaction commits). Given a Kysely outside a transaction, the
 * messages are committed at once. `writer` names the relay that publishes them at once (its
 * `OutboxRelayOptions.writer`); without it, every relay of the service is woken.
 */
export async function writeOutbox(
  trx: Kysely<AnyTables>,
  service: string,
  messages: OutboxMessage[],
  { writer = '' }: { writer?: string } = {},
): Promise<void> {
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
      else await sql`with written as (${insert}) select pg_notify(${outboxChannel(service)}, ${writer})`.execute(trx);
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
  /** Committed rows not yet published, parked ones not included. */
  pending: number;
  /** How long the oldest of them has waited, by the database's clock; 0 when none waits. */
  oldestAgeMs: number;
  /** Rows parked: refused by the transport too often, waiting for `replayParkedOutbox`. */
  parked: number;
}

export async function outboxLag(db: Database | Kysely<AnyTables>, service: string): Promise<OutboxLag> {
  const kysely = db instanceof Database ? db.kysely : db;
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

interface ParkedRecord {
  id: number | string;
  event: string;
  headers: Record<string, string>;
  attempts: number;
  last_error: string | null;
  parked_at: Date | string;
  created_at: Date | string;
}

function toParked(row: ParkedRecord): ParkedOutboxRow {
  return {
    id: Number(row.id),
    event: row.event,
    messageId: row.headers.id,
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
    order by xid, id`
    .execute(kysely)
    .catch((error: unknown) => {
      throw isMissingRelation(error) ? notInstalled(service, error) : error;
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

export type Publish = (event: string, message: WireMessage) => Promise<void>;

export interface OutboxRelayOptions {
  /**
   * How often the relay looks for rows without being told: the fallback for a lost notification, a
   * dropped LISTEN connection, or rows held back by a transaction that was still running. Default 1000 ms.
   */
  pollIntervalMs?: number;
  /**
   * The longest wait between polls of a relay that listens for commits while its outbox stays empty: each
   * poll that finds nothing waiting doubles the wait, from `pollIntervalMs` up to this, and a commit's
   * notification or a row left waiting brings it back to `pollIntervalMs`. An idle service then costs a
   * statement or two every half minute, not every second. Default 30 000 ms; set it to `pollIntervalMs`
   * to poll at one pace.
   */
  idlePollIntervalMs?: number;
  /** Rows published per database transaction. Default 100. */
  batchSize?: number;
  /**
   * LISTEN for commits (default true). Turn it off where LISTEN cannot work, e.g. behind PgBouncer in
   * transaction mode: the relay then finds rows by polling alone.
   */
  listen?: boolean;
  /** How long `stop()` goes on publishing what is ready before giving up (the rest waits). Default 5000 ms. */
  drainTimeoutMs?: number;
  /**
   * The writer this relay publishes for at once: commits notified by `writeOutbox` with this `writer`, or
   * with none, wake it. Another writer's commits (the service's other instances, each relaying its own)
   * only bring its polling back to `pollIntervalMs`, so that it still publishes them within a poll should
   * their own relay die first. Without it, every commit of the service wakes this relay — and each of the
   * service's relays, of which only one may publish at a time, tries.
   */
  writer?: string;
  /**
   * Told about failures (publishing, the database), each as a `ChassisError` (anything else wrapped as
   * `INTERNAL` with the original as `cause`); the relay tries again at its next poll. Default: stderr.
   */
  onError?: (error: ChassisError) => void;
  /**
   * Failed publishes of one row after which the relay tries the rows behind it, and parks the row if the
   * transport takes a later one and refuses this one again (see Parking above). Default 10;
   * `Infinity` never parks: a refused row then holds back every row behind it, in strict order.
   */
  parkAfterAttempts?: number;
  /** Told about each row parked, after its batch committed. Default: a warning on stderr. */
  onParked?: (row: ParkedOutboxRow) => void;
}

interface Row {
  id: number;
  event: string;
  headers: Record<string, string>;
  body: Uint8Array;
  attempts: number;
}

/**
 * `read`: rows the batch took up (a full batch means more may be ready); `failure`: one left unsent;
 * `waiting`: with nothing read, whether unsent rows are there all the same (held back by a transaction
 * still running), so that polling keeps its pace.
 */
type BatchOutcome = { read: number; published: number; failure?: unknown; waiting?: boolean } | 'busy';

/** A row whose publish failed in this batch. */
interface Failed {
  row: Row;
  error: unknown;
}

/**
 * Publishes a service's committed outbox rows, in order, and marks them sent.
 *
 * One relay per service publishes at a time, cluster-wide: each batch is one transaction that first
 * takes a transaction-level advisory lock for the service (`pg_try_advisory_xact_lock`); a relay that
 * finds it taken leaves the batch to its holder. The batch reads the ready rows, publishes them one by
 * one in order (each awaited, so the broker sees them in that order), marks the published ones sent and
 * commits. A publish that fails ends the batch: what went out before it is marked, and it is the first
 * row of the next attempt — until it has failed `parkAfterAttempts` times and may be parked (see Parking
 * at the top). A relay that dies mid-batch marks nothing; the next batch publishes it all again — at
 * least once, never lost.
 *
 * On PGlite the batch holds its only connection while publishing: `publish` must not wait for work that
 * needs the same database (a transport's publish returns once the broker has the message; it does not
 * wait for consumers).
 */
export class OutboxRelay {
  private readonly pollIntervalMs: number;
  private readonly idlePollIntervalMs: number;
  private readonly batchSize: number;
  private readonly listenForCommits: boolean;
  private readonly drainTimeoutMs: number;
  private readonly writer: string | undefined;
  private readonly onError: (error: unknown) => void;
  private readonly parkAfterAttempts: number;
  private readonly onParked: (row: ParkedOutboxRow) => void;

  private state: 'idle' | 'running' | 'stopping' = 'idle';
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  /** The wake-up loop in progress, if any. */
  private cycle: Promise<void> | undefined;
  /** A wake-up came while the loop ran: look again before resting. */
  private wanted = false;
  /** After a failure, notifications are ignored until this time; the poll still tries. */
  private quietUntil = 0;
  /** The wait before the next poll: `pollIntervalMs`, doubled after each poll that found nothing. */
  private pollDelayMs: number;
  /** The last batch found the outbox empty: nothing ready, nothing held back, nothing failed. */
  private empty = false;
  /**
   * A poll asked for the next batch: if it reads nothing, it looks whether rows are held back. A batch a
   * commit woke that reads nothing mostly comes after one that took its rows: it does not look, and the
   * relay keeps its pace until a poll has.
   */
  private polled = false;
  /** Another relay of the service held its lock: look again after this wait, doubled while it stays so. */
  private busyDelayMs = 0;
  private busyTimer: NodeJS.Timeout | undefined;
  /** Batches of this relay run one after another (the loop, `flush`, the drain at stop). */
  private tail: Promise<unknown> = Promise.resolve();

  private readonly db: Database;
  readonly service: string;
  private readonly publish: Publish;

  constructor(db: Database, service: string, publish: Publish, options: OutboxRelayOptions = {}) {
    this.db = db;
    this.service = service;
    this.publish = publish;
    this.pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 1000);
    this.idlePollIntervalMs = Math.max(
      this.pollIntervalMs,
      positive('idlePollIntervalMs', options.idlePollIntervalMs ?? 30_000),
    );
    this.pollDelayMs = this.pollIntervalMs;
    this.batchSize = positive('batchSize', options.batchSize ?? 100);
    if (!Number.isInteger(this.batchSize)) {
      throw new ChassisError('CONFIG', `The outbox relay's batchSize must be a whole number, not ${this.batchSize}`);
    }
    this.listenForCommits = options.listen ?? true;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.writer = options.writer;
    const onError =
      options.onError ??
      ((error) => console.error(`[chassis] the outbox relay of "${service}" failed; it will retry:`, error));
    this.onError = (error) => onError(toChassisError(error));
    this.parkAfterAttempts = options.parkAfterAttempts ?? 10;
    if (
      !(this.parkAfterAttempts >= 1) ||
      !(Number.isInteger(this.parkAfterAttempts) || this.parkAfterAttempts === Infinity)
    ) {
      throw new ChassisError(
        'CONFIG',
        `The outbox relay's parkAfterAttempts must be a whole number ≥ 1 or Infinity, not ${this.parkAfterAttempts}`,
      );
    }
    this.onParked =
      options.onParked ??
      ((row) =>
        console.warn(
          `[chassis] the outbox relay of "${service}" parked row ${row.id} (${row.event}, message ${row.messageId}) after ${row.attempts} attempts: ${row.lastError}`,
        ));
  }

  /**
   * Starts relaying: at once (rows may have waited while no relay ran), on every commit that wrote to the
   * outbox, and by polling every `pollIntervalMs` (less often while the outbox stays empty, see
   * `idlePollIntervalMs`). Fails with `OUTBOX_NOT_INSTALLED` if `installOutbox` was not run.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    const found = await sql<{ table: string | null }>`
      select to_regclass(${`${quoteIdentifier(this.service)}.${TABLE}`}) as table`.execute(this.db.kysely);
    if (!found.rows[0]?.table) throw notInstalled(this.service);
    this.state = 'running';
    if (this.listenForCommits) {
      try {
        this.unlisten = await this.db.listen(outboxChannel(this.service), (writer) => this.notified(writer));
      } catch (error) {
        // Polling alone still publishes everything, later; say why it is slow.
        this.onError(error);
      }
    }
    this.armPoll(this.pollIntervalMs);
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
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.busyTimer);
    this.busyTimer = undefined;
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
      if (outcome.read < this.batchSize || Date.now() >= deadline) return total;
    }
  }

  /** Committed rows not yet published, and the age of the oldest: for the outbox-lag metric. */
  lag(): Promise<OutboxLag> {
    return outboxLag(this.db, this.service);
  }

  private armPoll(delayMs: number): void {
    clearTimeout(this.timer);
    this.pollDelayMs = delayMs;
    this.timer = setTimeout(this.poll, delayMs);
    // A relay must not keep a process alive on its own: the node decides when to stop.
    this.timer.unref();
  }

  /**
   * A poll: a wake-up, then the next one armed — later while the outbox stays empty and the relay hears
   * every commit (a listening relay misses nothing but rows held back, which keep the pace), at
   * `pollIntervalMs` otherwise.
   */
  private readonly poll = (): void => {
    this.timer = undefined;
    this.polled = true;
    this.wake(true);
    const cycle = this.cycle ?? Promise.resolve();
    void cycle.then(() => {
      if (this.state !== 'running' || this.timer !== undefined) return;
      const idle = this.empty && this.unlisten !== undefined;
      this.armPoll(idle ? Math.min(this.pollDelayMs * 2, this.idlePollIntervalMs) : this.pollIntervalMs);
    });
  };

  /** A commit wrote to the outbox: this relay's own to publish, or another writer's to keep an eye on. */
  private notified(writer: string): void {
    if (this.writer === undefined || writer === '' || writer === this.writer) {
      this.wake(false);
    } else if (this.state === 'running' && this.pollDelayMs > this.pollIntervalMs) {
      this.armPoll(this.pollIntervalMs);
    }
  }

  private wake(fromPoll: boolean): void {
    if (this.state !== 'running') return;
    // A commit: rows may be held back by an older transaction, which no notification will announce.
    if (!fromPoll && this.pollDelayMs > this.pollIntervalMs) this.armPoll(this.pollIntervalMs);
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
      const lookForHeld = this.polled;
      this.polled = false;
      try {
        outcome = await this.batch(lookForHeld);
      } catch (error) {
        this.backOff(error);
        return;
      }
      if (outcome === 'busy') {
        // The relay at work may have read before this relay's rows committed: look again shortly.
        this.empty = false;
        this.wanted = false;
        this.retryWhenFree();
        return;
      }
      this.busyDelayMs = 0;
      this.empty = outcome.read === 0 && outcome.waiting === false;
      if (outcome.failure !== undefined) {
        this.backOff(outcome.failure);
        return;
      }
      // A full batch: more may be ready, and no notification will say so.
      if (outcome.read === this.batchSize) this.wanted = true;
    }
  }

  private retryWhenFree(): void {
    if (this.busyTimer !== undefined) return;
    this.busyDelayMs = Math.min(Math.max(BUSY_RETRY_MS, this.busyDelayMs * 2), this.pollIntervalMs);
    this.busyTimer = setTimeout(() => {
      this.busyTimer = undefined;
      this.wake(true);
    }, this.busyDelayMs);
    this.busyTimer.unref();
  }

  private backOff(error: unknown): void {
    this.wanted = false;
    this.empty = false;
    // Every commit notifies: without this, a broker that is down would be hit once per commit.
    this.quietUntil = Date.now() + this.pollIntervalMs;
    this.onError(error);
  }

  private batch(lookForHeld = false): Promise<BatchOutcome> {
    const run = this.tail.then(() => this.relayBatch(lookForHeld));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async relayBatch(lookForHeld: boolean): Promise<BatchOutcome> {
    const parked: ParkedOutboxRow[] = [];
    const outcome = await this.db.kysely
      .transaction()
      // Read committed, whatever the server's default: each statement must see what committed before it,
      // the rows marked by the relay that held the lock just before this one included.
      .setIsolationLevel('read committed')
      .execute((trx) => this.publishReady(trx, parked, lookForHeld));
    // Told once the parking is committed: a rolled-back batch parked nothing.
    for (const row of parked) this.onParked(row);
    return outcome;
  }

  /**
   * The batch: publishes the ready rows in order and marks them. A failed row ends the batch unless it has
   * failed `parkAfterAttempts` times: then it is set aside and the next row tried. Once the transport takes
   * a later row, each row set aside is tried once more — published if it now goes, else parked, its refusal
   * being its own. The writes come last, so the batch holds a transaction id only for a moment (an id held
   * while publishing would hold back every relay on the server).
   */
  private async publishReady(
    trx: Kysely<AnyTables>,
    parked: ParkedOutboxRow[],
    lookForHeld: boolean,
  ): Promise<BatchOutcome> {
    const table = sql.id(this.service, TABLE);
    // A statement of its own: the select below must take its snapshot after the lock is ours.
    const lock = await sql<{ ours: boolean }>`
      select pg_try_advisory_xact_lock(hashtext('chassis:outbox'), hashtext(${this.service})) as ours`.execute(trx);
    if (!lock.rows[0]?.ours) return 'busy';
    const ready = await sql<Row>`
      select id, event, headers, body, attempts from ${table}
      where sent_at is null and parked_at is null and xid < pg_snapshot_xmin(pg_current_snapshot())
      order by xid, id
      limit ${this.batchSize}`.execute(trx);
    if (ready.rows.length === 0) {
      if (!lookForHeld) return { read: 0, published: 0 };
      // Nothing ready: is anything unsent there all the same, held back by a transaction still running?
      const held = await sql<{ waiting: boolean }>`
        select exists (select 1 from ${table} where sent_at is null and parked_at is null) as waiting`.execute(trx);
      return { read: 0, published: 0, waiting: held.rows[0]?.waiting === true };
    }
    const sent: number[] = [];
    const failed: Failed[] = [];
    const toPark: Failed[] = [];
    /** Rows set aside, waiting for a later row to go. */
    let aside: Failed[] = [];
    let failure: Failed | undefined;
    const attempt = async (row: Row): Promise<unknown> => {
      try {
        await this.publish(row.event, { headers: row.headers, body: asUint8Array(row.body) });
        sent.push(row.id);
        return undefined;
      } catch (error) {
        failed.push({ row, error });
        // An error can be anything: keep it usable as the batch's failure.
        return error ?? new Error('publish failed without an error');
      }
    };
    for (const row of ready.rows) {
      const error = await attempt(row);
      if (error !== undefined) {
        if (row.attempts + attemptsOf(failed, row.id) < this.parkAfterAttempts) {
          failure = { row, error };
          break;
        }
        aside.push({ row, error });
        continue;
      }
      // The transport took this row: the rows set aside before it fail for reasons of their own, unless
      // they go now.
      for (const set of aside) {
        const again = await attempt(set.row);
        if (again !== undefined) toPark.push({ row: set.row, error: again });
      }
      aside = [];
    }
    // Set aside with nothing after them taken: a transport that is down. They wait, unparked.
    failure ??= aside[0];

    for (const row of new Set(failed.map((f) => f.row))) {
      const mine = failed.filter((f) => f.row === row);
      const lastError = errorText(mine[mine.length - 1]?.error);
      const park = toPark.some((p) => p.row === row);
      const result = await sql<ParkedRecord>`
        update ${table}
        set attempts = attempts + ${mine.length}, last_error = ${lastError},
            parked_at = case when ${park} then clock_timestamp() else parked_at end
        where id = ${row.id} and sent_at is null
        returning id, event, headers, attempts, last_error, parked_at, created_at`.execute(trx);
      const record = result.rows[0];
      if (park && record) parked.push(toParked(record));
    }
    if (sent.length > 0) {
      await sql`update ${table} set sent_at = clock_timestamp() where id = any(${sent})`.execute(trx);
    }
    return { read: ready.rows.length, published: sent.length, failure: failure?.error };
  }
}

/** The first wait before a relay that found the service's lock held looks again. */
const BUSY_RETRY_MS = 5;

/** How many times `id` failed so far in this batch. */
function attemptsOf(failed: readonly Failed[], id: number): number {
  return failed.filter((f) => f.row.id === id).length;
}

/** A publish error as a row keeps it. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, LAST_ERROR_CHARS);
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
