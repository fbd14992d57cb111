import { ChassisError, defineError } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, sql } from './database.ts';
import {
  CHECKPOINTS_TABLE,
  type EventStore,
  eventsChannel,
  LOG_START,
  type LogPosition,
  logPositionOf,
  type StoredEvent,
} from './event-store.ts';

/**
 * Projections: read models (CQRS) built from an event store's log. A runner feeds the log to the
 * projection's handlers in log order, a batch per transaction, and moves the projection's checkpoint in
 * that same transaction — so the read model holds each event's effect exactly once, whatever crashes.
 * Rebuilding empties the read model and replays the log from its start, which gives the read model the
 * live runner built: the same handlers over the same events in the same order.
 */

export const ProjectionFailed = defineError('PROJECTION_FAILED', { status: 500, retryable: true });

export type ProjectionHandler<E extends StoredEvent = StoredEvent> = (
  event: E,
  trx: Kysely<AnyTables>,
) => Promise<void>;

export interface Projection {
  /** Unique within the service: its checkpoint is kept under this name. */
  readonly name: string;
  /** One handler per event type it reads; events of other types are passed over (the checkpoint still moves). */
  readonly handlers: Readonly<Record<string, ProjectionHandler>>;
  /** Empties the read model, for a rebuild; runs in the rebuild's first transaction. */
  reset(trx: Kysely<AnyTables>): Promise<void>;
}

/**
 * What `defineProjection` takes: with the events' data types (`defineProjection<EventDataOf<typeof
 * orderEvents>>({…})`), each handler gets its event's data typed.
 */
export interface ProjectionSpec<E extends Record<string, unknown>> {
  name: string;
  handlers: { [K in keyof E & string]?: ProjectionHandler<StoredEvent<E[K], K>> };
  reset(trx: Kysely<AnyTables>): Promise<void>;
}

export function defineProjection<E extends Record<string, unknown> = Record<string, unknown>>(
  spec: ProjectionSpec<E>,
): Projection {
  if (typeof spec.name !== 'string' || spec.name === '') {
    throw new ChassisError('CONFIG', 'A projection needs a name: its checkpoint is kept under it');
  }
  return Object.freeze({
    name: spec.name,
    // Each handler is called only with events of its own type, which is what its narrower type says.
    handlers: Object.freeze({ ...spec.handlers }) as unknown as Readonly<Record<string, ProjectionHandler>>,
    reset: spec.reset,
  });
}

/** What a runner needs of a store: any store, whatever its schemas. */
export type ProjectionSource = Pick<EventStore, 'db' | 'service' | 'table' | 'readAll'>;

export interface ProjectionRunnerOptions {
  /** Events per transaction. Default 100. */
  batchSize?: number;
  /** How often a started runner looks for new events when no notification woke it. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Wake on the store's NOTIFY (when the store notifies). Default true. */
  listen?: boolean;
  /** A started runner's failures (it retries after a growing pause, stuck at the failing event). */
  onError?: (error: ChassisError) => void;
}

/**
 * Runs one projection over one store. `catchUp()` applies what is new and returns; `start()` keeps doing
 * so in the background, woken by the store's notifications and by polling; `rebuild()` replays from zero.
 * Several runners of one projection (one per node) may run at once: the projection's lock lets one
 * batch at a time through, and each batch starts where the last committed one ended.
 */
export class ProjectionRunner {
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly listen: boolean;
  /** Serializes this runner's own work: the background loop, catchUp and rebuild calls. */
  private queue: Promise<unknown> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private stopping = false;
  /** A notification arrived since the loop last looked: look again at once. */
  private woken = false;
  /** Ends the loop's current pause early. */
  private interrupt: (() => void) | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  private readonly store: ProjectionSource;
  readonly projection: Projection;
  private readonly options: ProjectionRunnerOptions;

  constructor(store: ProjectionSource, projection: Projection, options: ProjectionRunnerOptions = {}) {
    this.store = store;
    this.projection = projection;
    this.options = options;
    this.batchSize = options.batchSize ?? 100;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.listen = options.listen ?? true;
    if (!Number.isSafeInteger(this.batchSize) || this.batchSize <= 0) {
      throw new ChassisError('CONFIG', `batchSize of projection "${projection.name}" must be a whole number above 0`);
    }
  }

  /** Applies every event not yet applied; resolves to how many events the checkpoint moved past. */
  catchUp(): Promise<number> {
    return this.serialized(() => this.drain());
  }

  /**
   * Empties the read model and replays the whole log into it; resolves to the number of events replayed.
   * The reset and the checkpoint's return to zero commit together; the replay then runs in batches, so
   * readers see the read model fill up again rather than one long transaction holding back every
   * reader of the log.
   */
  rebuild(): Promise<number> {
    return this.serialized(async () => {
      await this.store.db.transaction(async (trx) => {
        await this.lockCheckpoint(trx);
        await this.projection.reset(trx);
        await this.saveCheckpoint(trx, LOG_START);
      });
      return this.drain();
    });
  }

  /** Where the projection stands in the log. */
  async checkpoint(): Promise<LogPosition> {
    const result = await sql<LogPosition>`
      select txid::text::bigint as txid, position from ${this.store.table(CHECKPOINTS_TABLE)}
      where projection = ${this.projection.name}`.execute(this.store.db.kysely);
    return result.rows[0] ?? LOG_START;
  }

  /** Keeps the projection up to date in the background until `stop()`. */
  async start(): Promise<void> {
    if (this.loop) return;
    this.stopping = false;
    if (this.listen) {
      this.unlisten = await this.store.db.listen(eventsChannel(this.store.service), () => this.notified());
    }
    this.loop = this.run();
  }

  /** Stops the background loop after the batch in flight, if any, commits. */
  async stop(): Promise<void> {
    if (!this.loop) return;
    this.stopping = true;
    this.interrupt?.();
    await this.loop;
    this.loop = undefined;
    await this.unlisten?.();
    this.unlisten = undefined;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      this.woken = false;
      try {
        await this.catchUp();
        failures = 0;
      } catch (error) {
        failures += 1;
        this.options.onError?.(
          error instanceof ChassisError ? error : new ChassisError('INTERNAL', String(error), { cause: error }),
        );
      }
      if (this.stopping) break;
      if (failures === 0) {
        if (!this.woken) await this.pause(this.pollIntervalMs, true);
      } else {
        // A poison event or a database away: back off up to 30 s, deaf to notifications meanwhile.
        await this.pause(Math.min(30_000, this.pollIntervalMs * 2 ** failures), false);
      }
    }
  }

  private notified(): void {
    this.woken = true;
    this.interrupt?.();
  }

  private pause(ms: number, wakeOnNotify: boolean): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.interrupt = undefined;
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.interrupt = wakeOnNotify ? end : () => this.stopping && end();
    });
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async drain(): Promise<number> {
    const db = this.store.db;
    await sql`insert into ${this.store.table(CHECKPOINTS_TABLE)} (projection) values (${this.projection.name})
      on conflict (projection) do nothing`.execute(db.kysely);
    let total = 0;
    for (;;) {
      const applied = await db.transaction(async (trx) => {
        const checkpoint = await this.lockCheckpoint(trx);
        const events = await this.store.readAll({ after: checkpoint, limit: this.batchSize, trx });
        for (const event of events) {
          const handler = Object.hasOwn(this.projection.handlers, event.type)
            ? this.projection.handlers[event.type]
            : undefined;
          if (!handler) continue;
          try {
            await handler(event, trx);
          } catch (error) {
            throw this.failure(event, error);
          }
        }
        const last = events.at(-1);
        if (last) await this.saveCheckpoint(trx, logPositionOf(last));
        return events.length;
      });
      total += applied;
      if (applied < this.batchSize) return total;
    }
  }

  /**
   * Takes the projection's lock for this transaction, then reads its checkpoint. An advisory lock rather
   * than the checkpoint row's: a row lock would give the transaction an id before it reads the log, and
   * the log's horizon stops at the oldest open transaction — its own included — so it would not see
   * events committed by transactions that began after it.
   */
  private async lockCheckpoint(trx: Kysely<AnyTables>): Promise<LogPosition> {
    const key = `chassis:projection:${this.store.service}:${this.projection.name}`;
    await sql`select pg_advisory_xact_lock(hashtext(${key}))`.execute(trx);
    const result = await sql<LogPosition>`
      select txid::text::bigint as txid, position from ${this.store.table(CHECKPOINTS_TABLE)}
      where projection = ${this.projection.name}`.execute(trx);
    return result.rows[0] ?? LOG_START;
  }

  private async saveCheckpoint(trx: Kysely<AnyTables>, at: LogPosition): Promise<void> {
    await sql`
      insert into ${this.store.table(CHECKPOINTS_TABLE)} as c (projection, txid, position)
      values (${this.projection.name}, cast(${String(at.txid)} as text)::xid8, ${at.position})
      on conflict (projection) do update set txid = excluded.txid, position = excluded.position, updated_at = now()`.execute(
      trx,
    );
  }

  private failure(event: StoredEvent, error: unknown): ChassisError {
    const { service } = this.store;
    const name = this.projection.name;
    const reason = error instanceof Error ? error.message : String(error);
    return new ChassisError(
      ProjectionFailed.code,
      `Projection "${name}" of service "${service}" failed on event ${event.type} (stream "${event.stream}" version ${event.version}, position ${event.position}) and stopped there; nothing of its batch was applied, and it resumes from that event: ${reason}`,
      {
        status: ProjectionFailed.status,
        retryable: ProjectionFailed.retryable,
        data: {
          service,
          projection: name,
          event: {
            id: event.id,
            type: event.type,
            stream: event.stream,
            version: event.version,
            position: event.position,
          },
          reason,
        },
        cause: error,
      },
    );
  }
}
