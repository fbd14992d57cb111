import type { Kysely } from 'kysely';
import { type AnyTables, type Database, quoteIdentifier, sql } from '../database.ts';
import { indexIfMissing, installInServiceSchema } from '../service-schema.ts';
import type {
  SagaError,
  SagaHistoryEntry,
  SagaHistoryKind,
  SagaInstance,
  SagaStatus,
  SagaSummary,
} from './definition.ts';
import type { SagaEntry, SagaState } from './transitions.ts';

/**
 * Where saga instances live: two tables in the service's schema, and every statement on them. A node holds
 * an instance it drives by a lease (`owner`, `lease_until`); each write of a transition is one statement,
 * fenced by that lease, so a node that lost the instance writes nothing.
 */

export interface SagaListFilter {
  saga?: string;
  status?: SagaStatus | readonly SagaStatus[];
  /** Newest first; default 100. */
  limit?: number;
  offset?: number;
}

/** An instance a node has just claimed: its saga, its state, and how long until it may go on. */
export interface ClaimedSaga {
  saga: string;
  state: SagaState;
  /** Left of a retry delay recorded before the instance was let go (0 when none). */
  waitMs: number;
}

const INSTANCES = 'chassis_sagas';
const HISTORY = 'chassis_saga_history';

interface InstanceRow {
  id: string;
  saga: string;
  status: SagaStatus;
  step_index: number;
  current_step: string | null;
  attempt: number;
  data: unknown;
  error: SagaError | null;
  owner: string | null;
  lease_until: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface HistoryRow {
  seq: number;
  kind: SagaHistoryKind;
  step: string | null;
  attempt: number | null;
  node: string;
  error: SagaError | null;
  delay_ms: number | null;
  at: Date;
}

export class SagaStore {
  private readonly db: Database;
  private readonly service: string;

  constructor(db: Database, service: string) {
    this.db = db;
    this.service = service;
  }

  /** Creates the saga tables in the service's schema if they are missing; safe from several nodes at once. */
  async install(): Promise<void> {
    const schema = quoteIdentifier(this.service);
    await installInServiceSchema(this.db, this.service, [
      sql.raw(`create table if not exists ${schema}.${INSTANCES} (
        id text primary key,
        saga text not null,
        status text not null,
        step_index integer not null,
        current_step text,
        attempt integer not null default 0,
        data jsonb not null,
        error jsonb,
        owner text,
        lease_until timestamptz,
        wake_at timestamptz,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      )`),
      indexIfMissing(
        this.service,
        `${INSTANCES}_unfinished`,
        sql.raw(
          `create index if not exists ${INSTANCES}_unfinished on ${schema}.${INSTANCES} (lease_until) where status in ('running', 'compensating')`,
        ),
      ),
      indexIfMissing(
        this.service,
        `${INSTANCES}_by_saga`,
        sql.raw(`create index if not exists ${INSTANCES}_by_saga on ${schema}.${INSTANCES} (saga, status, created_at)`),
      ),
      sql.raw(`create table if not exists ${schema}.${HISTORY} (
        seq bigint generated always as identity primary key,
        saga_id text not null references ${schema}.${INSTANCES} (id) on delete cascade,
        kind text not null,
        step text,
        attempt integer,
        node text not null,
        error jsonb,
        delay_ms integer,
        at timestamptz not null default now()
      )`),
      indexIfMissing(
        this.service,
        `${HISTORY}_by_saga`,
        sql.raw(`create index if not exists ${HISTORY}_by_saga on ${schema}.${HISTORY} (saga_id, seq)`),
      ),
    ]);
  }

  /**
   * Records a new, unowned instance and its `saga_created` entry, in `trx` if given. False when the id
   * exists (nothing is written then).
   */
  async insert(
    instance: { id: string; saga: string; firstStep: string | null; data: unknown },
    node: string,
    trx?: Kysely<AnyTables>,
  ): Promise<boolean> {
    const rows = await sql<{ seq: number }>`
      with created as (
        insert into ${this.table(INSTANCES)} (id, saga, status, step_index, current_step, data)
        values (${instance.id}, ${instance.saga}, 'running', 0, ${instance.firstStep}, ${JSON.stringify(instance.data)}::jsonb)
        on conflict (id) do nothing
        returning id
      )
      insert into ${this.table(HISTORY)} (saga_id, kind, node)
      select id, 'saga_created', ${node} from created
      returning seq`.execute(trx ?? this.db.kysely);
    return rows.rows.length > 0;
  }

  /** The saga an instance is of, if it exists. */
  async sagaOf(id: string, trx?: Kysely<AnyTables>): Promise<string | undefined> {
    const existing = await sql<{ saga: string }>`select saga from ${this.table(INSTANCES)} where id = ${id}`.execute(
      trx ?? this.db.kysely,
    );
    return existing.rows[0]?.saga;
  }

  /** Unfinished instances of `sagas` that no live node holds (or that `node` held before a restart). */
  async claimable(sagas: readonly string[], node: string): Promise<string[]> {
    const rows = await sql<{ id: string }>`
      select id from ${this.table(INSTANCES)}
      where status in ('running', 'compensating') and saga = any(${sagas}::text[])
        and (owner is null or owner = ${node} or lease_until < now())
      order by updated_at`.execute(this.db.kysely);
    return rows.rows.map((row) => row.id);
  }

  /** Takes an unfinished instance of `sagas` for `node`, if no live node holds it. */
  async claim(id: string, sagas: readonly string[], node: string, leaseMs: number): Promise<ClaimedSaga | undefined> {
    const claimed = await sql<InstanceRow & { wait_ms: number }>`
      update ${this.table(INSTANCES)}
      set owner = ${node}, lease_until = now() + ${leaseMs}::int * interval '1 millisecond'
      where id = ${id} and status in ('running', 'compensating') and saga = any(${sagas}::text[])
        and (owner is null or owner = ${node} or lease_until < now())
      returning *, greatest(0, ceil(extract(epoch from (wake_at - now())) * 1000))::int as wait_ms`.execute(
      this.db.kysely,
    );
    const row = claimed.rows[0];
    if (!row) return undefined;
    return {
      saga: row.saga,
      state: {
        status: row.status,
        index: row.step_index,
        attempt: row.attempt,
        currentStep: row.current_step,
        data: row.data,
        error: row.error,
      },
      waitMs: row.wait_ms,
    };
  }

  /**
   * The one write of a transition: the whole instance and its history entry in one statement, only while
   * `node` holds the instance; `release` lets it go in the same statement. False when `node` no longer
   * holds it (nothing is written then).
   */
  async write(id: string, state: SagaState, entry: SagaEntry, node: string, release: boolean): Promise<boolean> {
    const letGo = release ? sql`, owner = null, lease_until = null` : sql``;
    const rows = await sql<{ seq: number }>`
      with changed as (
        update ${this.table(INSTANCES)}
        set status = ${state.status}, step_index = ${state.index}, current_step = ${state.currentStep},
          attempt = ${state.attempt}, data = ${JSON.stringify(state.data)}::jsonb,
          error = ${state.error === null ? null : JSON.stringify(state.error)}::jsonb,
          wake_at = case when ${entry.delayMs ?? null}::int is null then null
            else now() + ${entry.delayMs ?? null}::int * interval '1 millisecond' end,
          updated_at = now() ${letGo}
        where id = ${id} and owner = ${node}
        returning id
      )
      insert into ${this.table(HISTORY)} (saga_id, kind, step, attempt, node, error, delay_ms)
      select id, ${entry.kind}, ${entry.step ?? null}, ${entry.attempt ?? null}::int, ${node},
        ${entry.error === undefined ? null : JSON.stringify(entry.error)}::jsonb, ${entry.delayMs ?? null}::int
      from changed
      returning seq`.execute(this.db.kysely);
    return rows.rows.length > 0;
  }

  /**
   * An operator's hand on an instance, in one statement: a `failed` saga back to `compensating` (its
   * failed compensation tried again with fresh attempts), or a `running` one to `compensating` (its
   * current step's compensation first, as after a failure). Either way it is let go — a node driving it
   * loses it, writes nothing more and stops — for a runner to take. False when it is not in `from`.
   */
  async operatorMove(
    id: string,
    from: 'failed' | 'running',
    kind: 'saga_retried' | 'saga_aborted',
    error: SagaError | null,
    node: string,
  ): Promise<boolean> {
    const setError = error === null ? sql`` : sql`, error = ${JSON.stringify(error)}::jsonb`;
    const rows = await sql<{ seq: number }>`
      with changed as (
        update ${this.table(INSTANCES)}
        set status = 'compensating', attempt = 0, owner = null, lease_until = null, wake_at = null,
          updated_at = now() ${setError}
        where id = ${id} and status = ${from}
        returning id, current_step
      )
      insert into ${this.table(HISTORY)} (saga_id, kind, step, node, error)
      select id, ${kind}, current_step, ${node}, ${error === null ? null : JSON.stringify(error)}::jsonb from changed
      returning seq`.execute(this.db.kysely);
    return rows.rows.length > 0;
  }

  /** Lets another node take the instance at once, if `node` still holds it. */
  async release(id: string, node: string): Promise<void> {
    await sql`
      update ${this.table(INSTANCES)} set owner = null, lease_until = null
      where id = ${id} and owner = ${node}`.execute(this.db.kysely);
  }

  /** Extends `node`'s leases on `ids`; returns those it still holds. */
  async renew(ids: readonly string[], node: string, leaseMs: number): Promise<Set<string>> {
    const rows = await sql<{ id: string }>`
      update ${this.table(INSTANCES)} set lease_until = now() + ${leaseMs}::int * interval '1 millisecond'
      where owner = ${node} and id = any(${ids}::text[])
      returning id`.execute(this.db.kysely);
    return new Set(rows.rows.map((row) => row.id));
  }

  async get(id: string): Promise<SagaInstance | undefined> {
    const rows = await sql<InstanceRow>`select * from ${this.table(INSTANCES)} where id = ${id}`.execute(
      this.db.kysely,
    );
    const row = rows.rows[0];
    if (!row) return undefined;
    const history = await sql<HistoryRow>`
      select seq, kind, step, attempt, node, error, delay_ms, at from ${this.table(HISTORY)}
      where saga_id = ${id} order by seq`.execute(this.db.kysely);
    return { ...summaryOf(row), history: history.rows.map(entryOf) };
  }

  /** Instances, newest first, without their history (`get` gives it). */
  async list(filter: SagaListFilter = {}): Promise<SagaSummary[]> {
    const statuses =
      filter.status === undefined ? null : typeof filter.status === 'string' ? [filter.status] : [...filter.status];
    const rows = await sql<InstanceRow>`
      select * from ${this.table(INSTANCES)}
      where (${filter.saga ?? null}::text is null or saga = ${filter.saga ?? null})
        and (${statuses}::text[] is null or status = any(${statuses}::text[]))
      order by created_at desc, id
      limit ${filter.limit ?? 100} offset ${filter.offset ?? 0}`.execute(this.db.kysely);
    return rows.rows.map(summaryOf);
  }

  /** How many instances are in each status, per saga. */
  async counts(): Promise<{ saga: string; status: SagaStatus; count: number }[]> {
    const rows = await sql<{ saga: string; status: SagaStatus; count: number }>`
      select saga, status, count(*)::int as count from ${this.table(INSTANCES)}
      group by saga, status order by saga, status`.execute(this.db.kysely);
    return rows.rows;
  }

  /**
   * Per saga, how long the unfinished (running or compensating) instance that has gone longest without a
   * step boundary has waited since its last one, in seconds. Sagas with no unfinished instance are absent.
   */
  async oldestUnfinished(): Promise<{ saga: string; seconds: number }[]> {
    const rows = await sql<{ saga: string; seconds: number }>`
      select saga, extract(epoch from (now() - min(updated_at)))::float8 as seconds from ${this.table(INSTANCES)}
      where status in ('running', 'compensating')
      group by saga order by saga`.execute(this.db.kysely);
    return rows.rows.map((row) => ({ saga: row.saga, seconds: Math.max(0, Number(row.seconds)) }));
  }

  private table(name: string) {
    return sql.id(this.service, name);
  }
}

function summaryOf(row: InstanceRow): SagaSummary {
  const summary: SagaSummary = {
    id: row.id,
    saga: row.saga,
    status: row.status,
    attempt: row.attempt,
    data: row.data,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.current_step !== null) summary.currentStep = row.current_step;
  if (row.error !== null) summary.error = row.error;
  if (row.owner !== null) summary.owner = row.owner;
  if (row.lease_until !== null) summary.leaseUntil = row.lease_until;
  return summary;
}

function entryOf(row: HistoryRow): SagaHistoryEntry {
  const entry: SagaHistoryEntry = { seq: row.seq, kind: row.kind, node: row.node, at: row.at };
  if (row.step !== null) entry.step = row.step;
  if (row.attempt !== null) entry.attempt = row.attempt;
  if (row.error !== null) entry.error = row.error;
  if (row.delay_ms !== null) entry.delayMs = row.delay_ms;
  return entry;
}
