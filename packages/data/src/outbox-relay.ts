import {
  ChassisError,
  type OrderedEvent,
  type PublishedInOrder,
  toChassisError,
  type WireMessage,
} from '@chassis/core';
import type { RawBuilder } from 'kysely';
import { type Database, quoteIdentifier, sql } from './database.ts';
import { type Leadership, lead, ledInProcess } from './leadership.ts';
import { lockName } from './mysql.ts';
import { headersOf, notInstalled, type OutboxLag, outboxChannel, outboxLag, TABLE } from './outbox.ts';
import { HandedOverRows, type ReadyRow } from './outbox-handover.ts';
import { DeferredMarks, type Execute } from './outbox-marking.ts';
import { attemptsOf, type Failed, type ParkedOutboxRow, recordFailures } from './outbox-parking.ts';

export type Publish = (event: string, message: WireMessage) => Promise<void>;
/** A transport's `publishInOrder`: see `Transport.publishInOrder`. */
export type PublishInOrder = (events: readonly OrderedEvent[]) => Promise<PublishedInOrder>;

export interface OutboxRelayOptions {
  /**
   * How often the relay looks for rows without being told: the fallback for a lost notification or a
   * dropped LISTEN connection. Default 1000 ms.
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
   * Lead and LISTEN (default true): the service's relays elect one leader, which holds the service's
   * lock on a connection of its own, hears every commit and publishes it at once; the others ask for the
   * lock every 250 ms, one cheap statement each. Turn it off where neither LISTEN nor a session's lock can work, e.g. behind
   * PgBouncer in transaction mode: each relay then polls, taking the lock for each batch.
   */
  listen?: boolean;
  /** How long `stop()` goes on publishing what is ready before giving up (the rest waits). Default 5000 ms. */
  drainTimeoutMs?: number;
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
  /**
   * Publishes a batch's rows pipelined, in order (the transport's `publishInOrder`): one round trip to the
   * broker for the batch where `publish` in turn took one a row. Rows it does not confirm go on one at a
   * time, as without it. Default: none, each row published in turn.
   */
  publishInOrder?: PublishInOrder;
}

/** `read`: rows the batch took up (a full batch means more may wait); `failure`: one left unsent. */
type BatchOutcome = { read: number; published: number; failure?: unknown } | 'busy';

/**
 * Publishes a service's committed outbox rows, in order, and marks them sent.
 *
 * One relay per service publishes at a time, cluster-wide. A started relay waits to lead the service
 * (see `Leadership`: a session-level advisory lock on a connection of its own, released by the server
 * the moment that connection ends); the leader LISTENs for every commit to the service's outbox on that
 * connection and publishes at once, while the others ask for the lock every 250 ms. A batch of the
 * leader is two statements and no transaction: it reads the ready rows, publishes them one by one in
 * order (each awaited, so the broker sees them in that order), and marks the published ones sent. On
 * PGlite, whose one connection is this process's, the node hands the leader the rows its units of work
 * committed (`handOver`): it publishes them without reading them, and the service's next outbox insert
 * marks them sent in its own statement (`takeMarks`) — no statement of the relay's at all under load. A
 * relay that is not leading (`flush` on a relay not started, or `listen: false`) takes the same lock for
 * one batch, in a transaction (`pg_try_advisory_xact_lock`), and leaves the batch to whoever holds it.
 *
 * A publish that fails ends the batch: what went out before it is marked, and it is the first row of the
 * next attempt — until it has failed `parkAfterAttempts` times and may be parked (see Parking at the top).
 * A relay that dies mid-batch marks nothing; the next leader publishes it all again — at least once,
 * never lost.
 *
 * On PGlite a batch that is not the leader's holds the only connection while publishing: `publish` must
 * not wait for work that needs the same database (a transport's publish returns once the broker has the
 * message; it does not wait for consumers).
 */
export class OutboxRelay {
  private readonly pollIntervalMs: number;
  private readonly idlePollIntervalMs: number;
  private readonly batchSize: number;
  private readonly listenForCommits: boolean;
  private readonly drainTimeoutMs: number;
  private readonly onError: (error: unknown) => void;
  private readonly parkAfterAttempts: number;
  private readonly onParked: (row: ParkedOutboxRow) => void;

  private state: 'idle' | 'running' | 'stopping' = 'idle';
  private timer: NodeJS.Timeout | undefined;
  /** While this relay leads the service (started with `listen`). */
  private leadership: Leadership | undefined;
  /** Aborts the wait to lead, at stop. */
  private leading: AbortController | undefined;
  /** The wake-up loop in progress, if any. */
  private cycle: Promise<void> | undefined;
  /** A wake-up came while the loop ran: look again before resting. */
  private wanted = false;
  /** After a failure, notifications are ignored until this time; the poll still tries. */
  private quietUntil = 0;
  /** The wait before the next poll: `pollIntervalMs`, doubled after each poll that found nothing. */
  private pollDelayMs: number;
  /** The last batch found the outbox empty: nothing waiting, nothing failed. */
  private empty = false;
  /** Ids of the rows this relay published last (see `notified`), oldest first. */
  private readonly published = new Set<number>();
  /** Batches of this relay run one after another (the loop, `flush`, the drain at stop). */
  private tail: Promise<unknown> = Promise.resolve();
  /** Rows this process committed and handed over (PGlite, see `handOver`), for the leader's next batch. */
  private readonly handed: HandedOverRows;
  /** Rows published and not marked sent yet: see `DeferredMarks`. */
  private readonly marks: DeferredMarks;

  private readonly db: Database;
  readonly service: string;
  private readonly publish: Publish;
  private readonly publishInOrder: PublishInOrder | undefined;

  constructor(db: Database, service: string, publish: Publish, options: OutboxRelayOptions = {}) {
    this.db = db;
    this.service = service;
    this.publish = publish;
    this.publishInOrder = options.publishInOrder;
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
    this.handed = new HandedOverRows(this.batchSize);
    this.marks = new DeferredMarks(service, () => this.markOnItsOwn());
    // MariaDB/MySQL has no LISTEN: each relay polls, one batch at a time cluster-wide under `GET_LOCK`.
    this.listenForCommits = (options.listen ?? true) && db.kind !== 'mysql';
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
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
   * Starts relaying. With `listen` (the default) the relay waits to lead the service, in the background;
   * once it leads, it publishes what waited, then every commit that writes to the outbox at once, and
   * polls every `pollIntervalMs` in case a notification was lost (less often while the outbox stays
   * empty, see `idlePollIntervalMs`). Without, it polls from the start. Fails with
   * `OUTBOX_NOT_INSTALLED` if `installOutbox` was not run.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    if (this.db.kind === 'mysql') {
      const found = await sql<{ one: number }>`
        select 1 as one from information_schema.tables where table_schema = ${this.service} and table_name = ${TABLE}`.execute(
        this.db.kysely,
      );
      if (found.rows.length === 0) throw notInstalled(this.service);
    } else {
      const found = await sql<{ table: string | null }>`
        select to_regclass(${`${quoteIdentifier(this.service)}.${TABLE}`}) as table`.execute(this.db.kysely);
      if (!found.rows[0]?.table) throw notInstalled(this.service);
    }
    this.state = 'running';
    if (this.listenForCommits) {
      this.leading = new AbortController();
      void this.lead(this.leading.signal);
      return;
    }
    this.armPoll(this.pollIntervalMs);
    this.wake(true);
  }

  /**
   * Waits to lead, leads until the leadership is lost (its connection ended), and waits again — with
   * growing pauses while the database cannot be reached — until the relay stops.
   */
  private async lead(signal: AbortSignal): Promise<void> {
    let delayMs = RELEAD_MIN_DELAY_MS;
    while (!signal.aborted) {
      let leadership: Leadership | undefined;
      try {
        leadership = await lead(this.db, ['chassis:outbox', this.service], signal, LEADER_SETTINGS);
        await leadership.listen(outboxChannel(this.service), (payload) => this.notified(payload));
        if (signal.aborted) {
          await leadership.close();
          return;
        }
      } catch (error) {
        await leadership?.close();
        if (signal.aborted) return;
        this.onError(error);
        await pause(delayMs);
        delayMs = Math.min(delayMs * 2, RELEAD_MAX_DELAY_MS);
        continue;
      }
      delayMs = RELEAD_MIN_DELAY_MS;
      this.leadership = leadership;
      // Rows may have waited while no relay led, and no notification announced them.
      this.armPoll(this.pollIntervalMs);
      this.wake(true);
      await leadership.lost;
      if (this.leadership === leadership) this.leadership = undefined;
      clearTimeout(this.timer);
      this.timer = undefined;
      this.announceLater(signal);
    }
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
    this.marks.stopTimer();
    this.leading?.abort();
    this.leading = undefined;
    await this.cycle;
    try {
      await this.flush(Date.now() + this.drainTimeoutMs);
      // What the last batches published and nothing marked yet: marked now, not published again by the
      // next leader.
      await this.marks.markAll(this.asLeaderOrAlone);
    } catch (error) {
      this.onError(error);
    }
    // The next relay waiting takes the lead once this connection ends.
    const leadership = this.leadership;
    this.leadership = undefined;
    await leadership?.close();
    this.state = 'idle';
  }

  /**
   * Publishes what is ready now, batch after batch, and resolves to how many rows this relay published.
   * Stops early when another relay leads or holds the service's lock (it publishes them) or at `deadline`
   * (epoch ms). A failed publish rejects, after marking the rows that went out before it.
   */
  async flush(deadline = Number.POSITIVE_INFINITY): Promise<number> {
    let total = 0;
    for (;;) {
      // What is ready now, whatever was handed over.
      this.handed.lookNext();
      const outcome = await this.batch();
      if (outcome === 'busy') return total;
      total += outcome.published;
      if (outcome.failure !== undefined) throw outcome.failure;
      if (outcome.read < this.batchSize || Date.now() >= deadline) return total;
    }
  }

  /**
   * Whether this relay leads its service now (running, listening, holding the leadership): then commits
   * in this process need not NOTIFY, the node `nudge`s it instead.
   */
  get leads(): boolean {
    return this.state === 'running' && this.leadership !== undefined;
  }

  /**
   * Says that rows were just committed: a relay that hears no commits (MariaDB/MySQL), or whose process
   * wrote them without NOTIFY because it leads, looks now rather than at its next poll. The node calls it
   * after a handler that emitted commits, with the highest row id they wrote when it knows it.
   */
  nudge(highestId?: number): void {
    if (highestId !== undefined && this.published.has(highestId)) return;
    this.handed.lookNext();
    this.wake(false);
  }

  /**
   * Rows this process just committed to the outbox without NOTIFY, handed over with their ids: on PGlite,
   * whose one connection is this process's alone, the leader publishes them without reading them back
   * (its batch is then one statement, the update that marks them sent), as long as they follow the rows
   * it has read with no gap between — ids a rolled-back insert took, rows another writer announced, a
   * failed publish, anything unusual sends it reading the outbox instead, as a nudge does. False when
   * it does not take them (not PGlite, or not leading): then nudge it.
   */
  handOver(rows: readonly { id: number; event: string; message: WireMessage }[]): boolean {
    if (this.db.kind !== 'pglite' || !this.leads) return false;
    this.handed.add(rows);
    this.wake(false);
    return true;
  }

  /**
   * The published rows a transaction of this service about to insert into its outbox may mark sent in the
   * same statement, and what to call once it has committed (true) or rolled back (false). Undefined when
   * there are none.
   */
  takeMarks(): { ids: number[]; settle: (committed: boolean) => void } | undefined {
    return this.marks.takeMarks();
  }

  /** Marks, in this relay's turn, what no insert marked within a moment: an idle service's last rows. */
  private markOnItsOwn(): void {
    // A relay stopped leaves them unsent: the next to lead publishes them again (at least once).
    if (this.state !== 'running') return;
    const run = this.tail.then(() => this.marks.markAll(this.asLeaderOrAlone));
    this.tail = run.catch((error: unknown) => {
      this.onError(error);
      this.marks.soon();
    });
  }

  /** A statement run alone, on the pool. */
  private readonly onItsOwn = async <R>(query: RawBuilder<R>): Promise<R[]> =>
    (await query.execute(this.db.kysely)).rows;

  /** A statement on the leader's session while this relay leads (it reads by index: `LEADER_SETTINGS`), else on the pool. */
  private readonly asLeaderOrAlone = <R>(query: RawBuilder<R>): Promise<R[]> =>
    this.leadership ? this.leadership.execute(query) : this.onItsOwn(query);

  /**
   * After the leadership was lost: this process's commits that went without NOTIFY while it led may still
   * be committing, after the next leader's first look. One notification a moment later, from an ordinary
   * connection, sends that leader looking again (its poll would, later).
   */
  private announceLater(signal: AbortSignal): void {
    const timer = setTimeout(() => {
      if (signal.aborted || this.db.kind === 'mysql') return;
      sql`select pg_notify(${outboxChannel(this.service)}, '')`.execute(this.db.kysely).catch(() => undefined);
    }, ANNOUNCE_AFTER_LOSS_MS);
    timer.unref();
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
   * every commit (a listening relay misses nothing but a lost notification), at
   * `pollIntervalMs` otherwise.
   */
  private readonly poll = (): void => {
    this.timer = undefined;
    this.wake(true);
    const cycle = this.cycle ?? Promise.resolve();
    void cycle.then(() => {
      if (this.state !== 'running' || this.timer !== undefined) return;
      const idle = this.empty && this.leadership !== undefined;
      this.armPoll(idle ? Math.min(this.pollDelayMs * 2, this.idlePollIntervalMs) : this.pollIntervalMs);
    });
  };

  /**
   * A commit's notification. Its payload is the committing transaction's highest outbox row id (empty
   * from writers that do not say): a row this relay has published already was read with all the rows of
   * its transaction (they commit together, and a batch reads the lowest ids first), so that commit is
   * relayed — the notification, often delivered while the batch that published it ran, needs no look.
   */
  private notified(payload: string): void {
    this.nudge(/^\d+$/.test(payload) ? Number(payload) : undefined);
  }

  /** Remembers the ids of rows just published, the most recent `4 × batchSize` of them. */
  private remember(ids: readonly number[]): void {
    for (const id of ids) this.published.add(Number(id));
    const excess = this.published.size - 4 * this.batchSize;
    if (excess <= 0) return;
    let dropped = 0;
    for (const id of this.published) {
      if (dropped++ >= excess) break;
      this.published.delete(id);
    }
  }

  private wake(fromPoll: boolean): void {
    if (this.state !== 'running') return;
    if (fromPoll) this.handed.lookNext();
    // A commit: the outbox is in use again, so the safety poll goes back to its pace.
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
      try {
        outcome = await this.batch();
      } catch (error) {
        this.backOff(error);
        return;
      }
      if (outcome === 'busy') {
        // Polling without a leader (`listen: false`): the relay at work publishes; the next poll looks again.
        this.empty = false;
        return;
      }
      this.empty = outcome.read === 0;
      if (outcome.failure !== undefined) {
        this.backOff(outcome.failure);
        return;
      }
      // A full batch: more may be ready, and no notification will say so.
      if (outcome.read === this.batchSize) this.wanted = true;
    }
  }

  private backOff(error: unknown): void {
    this.wanted = false;
    this.empty = false;
    // Every commit notifies: without this, a broker that is down would be hit once per commit.
    this.quietUntil = Date.now() + this.pollIntervalMs;
    this.onError(error);
  }

  private batch(): Promise<BatchOutcome> {
    const run = this.tail.then(() => {
      const leadership = this.leadership;
      return leadership ? this.leaderBatch(leadership) : this.lockedBatch();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The leader's batch: its statements on its own session, each committed alone. */
  private async leaderBatch(leadership: Leadership): Promise<BatchOutcome> {
    const parked: ParkedOutboxRow[] = [];
    const execute = <R>(query: RawBuilder<R>) => leadership.execute(query);
    const handed = this.handed.take();
    // Before a look: the rows published and not marked yet must not be read as waiting. On PostgreSQL the
    // look marks them itself, in the same statement (see `publishReady`).
    if (!handed && this.db.kind !== 'postgres') await this.marks.markAll(execute);
    const outcome = await this.publishReady(execute, parked, handed, true);
    for (const row of parked) this.onParked(row);
    return outcome;
  }

  /** A batch of a relay that does not lead: one transaction, which first takes the service's lock. */
  private async lockedBatch(): Promise<BatchOutcome> {
    // Not leading: what was handed over is read by whoever publishes it, once what went is marked.
    this.handed.forget();
    await this.marks.markAll(this.onItsOwn);
    // PGlite's relays are in this process: one that leads there holds no lock in the database.
    if (ledInProcess(this.db, ['chassis:outbox', this.service])) return 'busy';
    const parked: ParkedOutboxRow[] = [];
    if (this.db.kind === 'mysql') {
      const outcome = await this.mysqlLockedBatch(parked);
      for (const row of parked) this.onParked(row);
      return outcome;
    }
    const outcome = await this.db.kysely
      .transaction()
      // Read committed, whatever the server's default: each statement must see what committed before it,
      // the rows marked by the relay that held the lock just before this one included.
      .setIsolationLevel('read committed')
      .execute(async (trx) => {
        // A statement of its own: the select after it must take its snapshot once the lock is ours.
        const lock = await sql<{ ours: boolean }>`
          select pg_try_advisory_xact_lock(hashtext('chassis:outbox'), hashtext(${this.service})) as ours`.execute(trx);
        if (!lock.rows[0]?.ours) return 'busy' as const;
        return this.publishReady(async (query) => (await query.execute(trx)).rows, parked);
      });
    // Told once the parking is committed: a rolled-back batch parked nothing.
    for (const row of parked) this.onParked(row);
    return outcome;
  }

  /**
   * MariaDB/MySQL: the batch on one connection holding the service's relay lock (`GET_LOCK`, session-level,
   * so released before the connection goes back to the pool — or by the server if the connection dies).
   * Each statement commits alone, as the leader's do on PostgreSQL.
   */
  private mysqlLockedBatch(parked: ParkedOutboxRow[]): Promise<BatchOutcome> {
    const lock = lockName(`chassis:outbox:${this.service}`);
    return this.db.kysely.connection().execute(async (connection) => {
      const taken = await sql<{ ours: number | null }>`select get_lock(${lock}, 0) as ours`.execute(connection);
      if (taken.rows[0]?.ours !== 1) return 'busy' as const;
      try {
        return await this.publishReady(async (query) => (await query.execute(connection)).rows, parked);
      } finally {
        await sql`select release_lock(${lock})`.execute(connection).catch(() => undefined);
      }
    });
  }

  /**
   * The batch: publishes the committed rows in order and marks them. A failed row ends the batch unless it
   * has failed `parkAfterAttempts` times: then it is set aside and the next row tried. Once the transport
   * takes a later row, each row set aside is tried once more — published if it now goes, else parked, its
   * refusal being its own. The writes come last, so the batch holds a transaction id only for a moment (a
   * transaction id held while publishing would hold back the server's vacuum and event-log readers).
   */
  private async publishReady(
    execute: Execute,
    parked: ParkedOutboxRow[],
    handed?: ReadyRow[],
    leading = false,
  ): Promise<BatchOutcome> {
    const table = sql.id(this.service, TABLE);
    // The leader on PostgreSQL marks what it published last as it looks (the rows no insert marked).
    const marks = leading && !handed && this.db.kind === 'postgres' ? this.marks.takeAll() : [];
    // The committed unsent rows in the order they were written (see Order in outbox.ts): a row that commits
    // later with a smaller id is not skipped, since rows are marked, not passed by a cursor.
    let ready: ReadyRow[];
    try {
      ready =
        handed ??
        (marks.length > 0
          ? await execute(sql<ReadyRow>`
      with marked as (update ${table} set sent_at = clock_timestamp() where id = any(${marks}))
      select id, event, headers, body, attempts from ${table}
      where sent_at is null and parked_at is null and id <> all(${marks})
      order by id
      limit ${this.batchSize}`)
          : await execute(sql<ReadyRow>`
      select id, event, headers, body, attempts from ${table}
      where sent_at is null and parked_at is null
      order by id
      limit ${this.batchSize}`));
    } catch (error) {
      this.marks.putBack(marks);
      throw error;
    }
    this.handed.taken(ready, handed !== undefined);
    if (ready.length === 0) return { read: 0, published: 0 };
    // Being marked by a transaction still open, or one that rolled back and has not said so yet.
    if (!handed) {
      const unseen = this.marks.notBeingMarked(ready);
      if (unseen.length === 0) return { read: ready.length, published: 0 };
      ready = unseen;
    }
    const mysql = this.db.kind === 'mysql';
    if (mysql) for (const row of ready) row.headers = headersOf(row.headers as Record<string, string> | string);
    const sent: number[] = [];
    const failed: Failed[] = [];
    const toPark: Failed[] = [];
    /** Rows set aside, waiting for a later row to go. */
    let aside: Failed[] = [];
    let failure: Failed | undefined;
    const attempt = async (row: ReadyRow): Promise<unknown> => {
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
    // Pipelined first where the transport can: the rows it stored count as published one by one would, and
    // its first failure as that row's attempt; from there the rows go one at a time, as they always did.
    // The rows after a failure may be stored already (sent with it): published again, they are duplicates
    // the broker drops by id, and at worst consumers' inboxes do. Under an outage the order holds (what a
    // connection carried reaches the broker as a prefix); a row the broker refuses for itself goes behind the
    // rows sent with it at its first refusal rather than after `parkAfterAttempts` (see Parking).
    let pipelined: PublishedInOrder = { stored: 0 };
    // Not with `parkAfterAttempts: Infinity`: a row the broker refuses for itself would have the rows sent
    // with it stored ahead of it, where that setting promises they wait behind it.
    if (this.publishInOrder && ready.length > 1 && this.parkAfterAttempts !== Infinity) {
      const events = ready.map((row) => ({
        event: row.event,
        message: { headers: row.headers, body: asUint8Array(row.body) },
      }));
      pipelined = await this.publishInOrder(events).catch((error: unknown) => ({ stored: 0, error }));
    }
    let index = 0;
    for (const row of ready) {
      const at = index++;
      let error: unknown;
      if (at < pipelined.stored) {
        sent.push(row.id);
      } else if (at === pipelined.stored && 'error' in pipelined) {
        error = pipelined.error ?? new Error('publish failed without an error');
        failed.push({ row, error });
      } else {
        error = await attempt(row);
      }
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
    // Rows left unsent: the next batch reads the outbox.
    if (failure !== undefined) this.handed.leftUnsent();

    parked.push(...(await recordFailures(execute, table, failed, toPark, mysql)));
    if ((handed || (leading && this.db.kind === 'postgres')) && failed.length === 0 && sent.length > 0) {
      // All of them went: marked later, by the service's next outbox insert or otherwise (`DeferredMarks`).
      this.marks.defer(sent);
    } else if (sent.length > 0 && mysql) {
      await execute(sql`update ${table} set sent_at = current_timestamp(6) where id in (${sql.join(sent)})`);
    } else if (sent.length > 0) {
      await execute(sql`update ${table} set sent_at = clock_timestamp() where id = any(${sent})`);
    }
    this.remember(sent);
    return { read: ready.length, published: sent.length, failure: failure?.error };
  }
}

/**
 * The leader's session reads and marks its outbox by index only. The session lives as long as the
 * leadership, days, and keeps the plans it made first — on a new table, whose statistics say "10 pages":
 * there a sequential scan looked cheaper for the marking (`id = any($1)`), and it then read the whole
 * outbox at every look as the table grew, while no ANALYZE came to have it planned again (autovacuum off,
 * or behind). Measured on the bank, 16 clients: 2 ms a look, a fifth of PostgreSQL's CPU an order. And a
 * plain index scan, unlike the bitmap scan chosen for the look on a small table, marks the dead entries of
 * rows sent (`chassis_outbox_unsent`) as it passes them, so that the next looks skip them before a vacuum.
 */
const LEADER_SETTINGS = { enable_seqscan: 'off', enable_bitmapscan: 'off' };

/** Pauses between attempts to lead while the database cannot be reached. */
const RELEAD_MIN_DELAY_MS = 100;
/** How long after losing the leadership its process's last un-notified commits are announced. */
const ANNOUNCE_AFTER_LOSS_MS = 1000;
const RELEAD_MAX_DELAY_MS = 5000;

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
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
