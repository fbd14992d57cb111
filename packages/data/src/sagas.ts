import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ActionContract,
  type CallOptions,
  ChassisError,
  defaultNodeId,
  fieldErrors,
  fullJitterDelay,
  type InputOf,
  type Logger,
  type OutputOf,
  toChassisError,
} from '@chassis/core';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { type AnyTables, type Database, quoteIdentifier, sql } from './database.ts';
import { indexIfMissing, installInServiceSchema } from './service-schema.ts';

/**
 * Orchestrated sagas: a saga is a list of steps, each with an action and an optional compensation;
 * a runner drives instances of them, persisting every state change before acting on it, so a node that
 * dies mid-saga leaves an instance another node (or its own restart) resumes where it stopped.
 *
 * Guarantees (each relies on the one write per transition being atomic and fenced by the lease):
 * - a step recorded as completed is never run again; a compensation recorded as done is never run again;
 * - a step or compensation interrupted between "started" and its outcome is run again on resume, with the
 *   same idempotency key — steps and compensations must therefore be idempotent under that key;
 * - every started attempt counts, crashes included: a step that kills its node every time still ends;
 * - on failure, compensations run in reverse order: the failed step's own first (it may have had its
 *   effect before failing — a timeout, a lost reply — so it must treat "nothing to undo" as success),
 *   then those of the completed steps; steps after the failed one never ran and are not compensated;
 * - compensations are retried on any error with backoff up to `compensationRetry.maxAttempts` (default
 *   20, about six minutes); one that still fails leaves the saga `failed`, with its history, for an
 *   operator: the compensations before it in the order have run, those after it have not.
 *
 * Written by hand rather than taken from a workflow engine (Temporal, restate): those bring a server of
 * their own, while this is the product — a few tables in the service's schema on the database it has.
 */

// Definitions --------------------------------------------------------------------------------------

export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';

export const sagaStatuses: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];

export function isTerminalSagaStatus(status: SagaStatus): boolean {
  return status === 'completed' || status === 'compensated' || status === 'failed';
}

export interface SagaRetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface StepContext {
  sagaId: string;
  saga: string;
  step: string;
  phase: 'run' | 'compensate';
  /** 1 for the first attempt; attempts cut short by a crash count. */
  attempt: number;
  /**
   * `<sagaId>:<step>`: the same on every attempt, after a crash and for the compensation, which undoes
   * the effect made under this key. Pass it to the service called (e.g. as its `Idempotency-Key`).
   */
  idempotencyKey: string;
  /** Aborted when the attempt times out or this node loses the instance: stop early if you can. */
  signal: AbortSignal;
  /**
   * Calls an action through the node, with its policies, tracing and metrics: `step.call(buyShares,
   * input, { auth })`. The call's deadline is the attempt's end unless `options` set an earlier one; its
   * correlation id is the saga instance's id. Only in a runner given `call` (as `runSagas` makes it).
   */
  call<C extends ActionContract>(contract: C, input: InputOf<C>, options?: CallOptions<C>): Promise<OutputOf<C>>;
  /**
   * The service's database, on its schema, outside any transaction (`db.transaction().execute(…)` for
   * several writes at once): a step's own writes are not atomic with its recording, so make them
   * idempotent like the step.
   */
  db: Kysely<AnyTables>;
}

/** How a runner's steps call actions: the node's `call`, given the saga's correlation id. */
export type SagaCall = <C extends ActionContract>(
  contract: C,
  input: InputOf<C>,
  options: CallOptions<C> & { correlationId: string },
) => Promise<OutputOf<C>>;

export interface SagaStep<D> {
  name: string;
  /** The action. May return fields to merge into the saga's data (an order id it obtained). */
  // biome-ignore lint/suspicious/noConfusingVoidType: so that a step returning nothing (`async run() {…}`) fits.
  run(data: D, step: StepContext): Promise<Partial<D> | undefined | void>;
  /** Undoes the action; must succeed when there is nothing to undo. */
  compensate?(data: D, step: StepContext): Promise<void>;
  /**
   * Retries of the action (default 3 attempts, 200 ms to 5 s, full jitter). An error that says it is not
   * retryable (a `ChassisError` with `retryable: false`: a business refusal) fails the step at once.
   */
  retry?: Partial<SagaRetryPolicy>;
  /** Retries of the compensation, on any error (default 20 attempts, 200 ms to 60 s, full jitter). */
  compensationRetry?: Partial<SagaRetryPolicy>;
  /** Limit of one attempt of the action or compensation, in ms (default 30 s). */
  timeoutMs?: number;
}

export interface SagaDefinition<D = unknown, I = D> {
  readonly name: string;
  /**
   * The data's schema. Data is stored as JSON and read back through it on resume: its output must parse
   * as itself (plain values; `z.coerce.date()` for dates).
   */
  readonly schema: z.ZodType<D, I>;
  readonly steps: readonly SagaStep<D>[];
}

/** Declares a saga; its data type comes from the zod schema. */
export function defineSaga<S extends z.ZodType>(spec: {
  name: string;
  data: S;
  steps: SagaStep<z.output<S>>[];
}): SagaDefinition<z.output<S>, z.input<S>> {
  if (!/^[A-Za-z][\w.-]*$/.test(spec.name)) {
    throw new ChassisError(
      'CONFIG',
      `Saga name "${spec.name}" must start with a letter and hold letters, digits, _ . -`,
    );
  }
  if (spec.steps.length === 0)
    throw new ChassisError('CONFIG', `Saga "${spec.name}" has no steps; give it at least one`);
  const names = new Set<string>();
  for (const step of spec.steps) {
    if (!step.name || names.has(step.name)) {
      throw new ChassisError(
        'CONFIG',
        `Saga "${spec.name}": step names must be unique and non-empty ("${step.name}" is not)`,
      );
    }
    names.add(step.name);
  }
  return { name: spec.name, schema: spec.data as z.ZodType<z.output<S>, z.input<S>>, steps: [...spec.steps] };
}

// Instances ----------------------------------------------------------------------------------------

export type SagaHistoryKind =
  | 'saga_created'
  | 'saga_resumed'
  | 'step_started'
  | 'step_retrying'
  | 'step_completed'
  | 'step_failed'
  | 'compensation_started'
  | 'compensation_retrying'
  | 'compensation_completed'
  | 'compensation_failed'
  | 'saga_completed'
  | 'saga_compensated'
  | 'saga_failed';

export interface SagaError {
  code: string;
  message: string;
}

export interface SagaHistoryEntry {
  seq: number;
  kind: SagaHistoryKind;
  step?: string;
  attempt?: number;
  /** The node that wrote it. */
  node: string;
  error?: SagaError;
  /** For a retry: the delay before the next attempt. */
  delayMs?: number;
  at: Date;
}

export interface SagaSummary<D = unknown> {
  id: string;
  saga: string;
  status: SagaStatus;
  /** The step running or compensating now, or that failed the saga; none once completed or compensated. */
  currentStep?: string;
  /** Attempts made of the current step or compensation. */
  attempt: number;
  data: D;
  /** What made it compensate, or what left it failed. */
  error?: SagaError;
  /** The node driving it now, and until when its lease holds. */
  owner?: string;
  leaseUntil?: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface SagaInstance<D = unknown> extends SagaSummary<D> {
  history: SagaHistoryEntry[];
}

/** Where a runner stands: after each write, and between a step's end and the write recording it. */
export type SagaBoundary = SagaHistoryKind | 'step_ran' | 'compensation_ran';

export interface SagaBoundaryEvent {
  sagaId: string;
  saga: string;
  boundary: SagaBoundary;
  step?: string;
  attempt?: number;
}

// The runner ---------------------------------------------------------------------------------------

export interface SagaRunnerOptions {
  /** The service, whose schema holds the saga tables. */
  service: string;
  /** The sagas this runner drives; instances of other sagas in the tables are left alone. */
  sagas: readonly SagaDefinition<unknown, unknown>[];
  /** Unique among live processes: a node may take over an unfinished lease of its own id at once. */
  nodeId?: string;
  /** How long a claim on an instance holds without renewal (renewed every third of it). Default 30 s. */
  leaseMs?: number;
  /**
   * Once `resumeAll` has run, how often to look for instances whose node died (lease expired) or
   * that were started in a transaction. Default 5 s; 0 turns it off.
   */
  sweepMs?: number;
  /** Instances driven at once by this runner; more wait, unclaimed, for a slot. Default 50. */
  concurrency?: number;
  /** Defaults for steps that set none. */
  defaults?: { retry?: SagaRetryPolicy; compensationRetry?: SagaRetryPolicy; timeoutMs?: number };
  logger?: Pick<Logger, 'warn' | 'error'>;
  /** How steps call actions (`step.call`); without it `step.call` fails the attempt. `runSagas` gives the node's. */
  call?: SagaCall;
  /**
   * Test hook, called at every boundary. Throwing from it abandons the instance right there, as a crash
   * would: nothing more is written and its lease is neither renewed nor released.
   */
  onBoundary?: (event: SagaBoundaryEvent) => void;
}

export interface SagaStartOptions {
  /** The instance id (e.g. the investment id); a second start with the same id is a no-op. */
  id?: string;
  /**
   * Record the start in this transaction, with the change that calls for it. Nothing runs until the
   * transaction commits: then call `resume(id)`, or let the next sweep take it. (`trx`, as the event
   * store's options name the transaction they join.)
   */
  trx?: Kysely<AnyTables>;
}

export interface SagaListFilter {
  saga?: string;
  status?: SagaStatus | readonly SagaStatus[];
  /** Newest first; default 100. */
  limit?: number;
  offset?: number;
}

const DEFAULT_RETRY: SagaRetryPolicy = { maxAttempts: 3, initialDelayMs: 200, maxDelayMs: 5_000 };
const DEFAULT_COMPENSATION_RETRY: SagaRetryPolicy = { maxAttempts: 20, initialDelayMs: 200, maxDelayMs: 60_000 };
const DEFAULT_TIMEOUT_MS = 30_000;
const INSTANCES = 'chassis_sagas';
const HISTORY = 'chassis_saga_history';

/** Thrown inside the driver when the instance is no longer ours: stop without writing anything. */
class Abandon extends Error {}

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

/** The driver's copy of an instance it holds; written whole at each transition. */
interface Held {
  id: string;
  def: SagaDefinition<unknown, unknown>;
  status: SagaStatus;
  /** Running: the next step to run. Compensating: compensations of steps above it are done. */
  index: number;
  attempt: number;
  currentStep: string | null;
  data: unknown;
  error: SagaError | null;
  /** Set when a renewal finds another node holds it now. */
  lost: boolean;
  attemptController?: AbortController;
}

/** `refused`: the step threw a ChassisError saying it is not retryable — a business refusal. */
type Outcome = { ok: true; value: unknown } | { ok: false; error: ChassisError; refused: boolean };

export class SagaRunner {
  readonly nodeId: string;
  private readonly service: string;
  private readonly sagas = new Map<string, SagaDefinition<unknown, unknown>>();
  private readonly leaseMs: number;
  private readonly sweepMs: number;
  private readonly concurrency: number;
  private readonly retryDefault: SagaRetryPolicy;
  private readonly compensationDefault: SagaRetryPolicy;
  private readonly timeoutDefault: number;
  private readonly held = new Map<string, Held>();
  /** Ids being claimed or driven here, so a sweep never drives one twice. */
  private readonly busy = new Set<string>();
  private readonly drivers = new Set<Promise<void>>();
  private readonly settledListeners = new Map<string, Set<() => void>>();
  private readonly slotQueue: (() => void)[] = [];
  private slotsInUse = 0;
  private readonly stopController = new AbortController();
  private stopping = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  private readonly db: Database;
  private readonly options: SagaRunnerOptions;
  private readonly stepDb: Kysely<AnyTables>;

  constructor(db: Database, options: SagaRunnerOptions) {
    this.db = db;
    this.options = options;
    this.service = options.service;
    this.stepDb = db.kysely.withSchema(options.service);
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.leaseMs = options.leaseMs ?? 30_000;
    this.sweepMs = options.sweepMs ?? 5_000;
    this.concurrency = options.concurrency ?? 50;
    this.retryDefault = options.defaults?.retry ?? DEFAULT_RETRY;
    this.compensationDefault = options.defaults?.compensationRetry ?? DEFAULT_COMPENSATION_RETRY;
    this.timeoutDefault = options.defaults?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.leaseMs >= 100)) throw new ChassisError('CONFIG', `SagaRunner leaseMs must be at least 100 ms`);
    for (const saga of options.sagas) {
      if (this.sagas.has(saga.name)) {
        throw new ChassisError('CONFIG', `Saga "${saga.name}" is given twice to the runner of "${this.service}"`);
      }
      this.sagas.set(saga.name, saga);
    }
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
   * Records a new instance — validated, before any step runs — and starts driving it. Returns its id.
   * Starting an id that exists is a no-op (the first data stands), so an at-least-once message may
   * start its saga as often as it is delivered.
   */
  async start<D, I>(saga: SagaDefinition<D, I>, data: I, options: SagaStartOptions = {}): Promise<string> {
    if (this.sagas.get(saga.name) !== saga) {
      throw new ChassisError(
        'CONFIG',
        `Saga "${saga.name}" is not one the runner of "${this.service}" drives; add it to the runner's sagas`,
      );
    }
    // In a transaction it is only recorded, so a handler finishing as its node drains still can: the
    // sweep of another node, or this one restarted, drives it.
    if (this.stopping && !options.trx) {
      throw new ChassisError(
        'UNAVAILABLE',
        `The saga runner of "${this.service}" is stopping; start "${saga.name}" on another node`,
      );
    }
    const parsed = saga.schema.safeParse(data);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new ChassisError(
        'VALIDATION',
        `Saga "${saga.name}" not started: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
        { data: { saga: saga.name, fields } },
      );
    }
    const id = options.id ?? randomUUID();
    const rows = await sql<{ seq: number }>`
      with created as (
        insert into ${this.table(INSTANCES)} (id, saga, status, step_index, current_step, data)
        values (${id}, ${saga.name}, 'running', 0, ${saga.steps[0]?.name ?? null}, ${JSON.stringify(parsed.data)}::jsonb)
        on conflict (id) do nothing
        returning id
      )
      insert into ${this.table(HISTORY)} (saga_id, kind, node)
      select id, 'saga_created', ${this.nodeId} from created
      returning seq`.execute(options.trx ?? this.db.kysely);
    if (rows.rows.length === 0) {
      const existing = await sql<{ saga: string }>`select saga from ${this.table(INSTANCES)} where id = ${id}`.execute(
        options.trx ?? this.db.kysely,
      );
      const other = existing.rows[0]?.saga;
      if (other !== undefined && other !== saga.name) {
        throw new ChassisError(
          'CONFLICT',
          `Saga instance "${id}" exists as a "${other}" saga; it cannot be started as "${saga.name}"`,
          { data: { id, saga: other } },
        );
      }
      return id;
    }
    try {
      this.boundary({ sagaId: id, saga: saga.name, boundary: 'saga_created' });
    } catch (error) {
      // A simulated crash right after the start: the instance stays, unowned, for a resume.
      if (error instanceof Abandon) return id;
      throw error;
    }
    if (!options.trx) this.spawn(id, false);
    return id;
  }

  /** Drives an unfinished instance if nobody holds it (after `start` in a transaction, once it commits). */
  resume(id: string): void {
    this.spawn(id, true);
  }

  /**
   * On node start: takes every unfinished instance of this runner's sagas that no live node holds, and
   * from then on looks again every `sweepMs` for instances whose node died. Returns the ids taken.
   */
  async resumeAll(): Promise<string[]> {
    if (this.stopping) return [];
    // Armed first: if this look fails (the database away at start), the sweeps look again.
    if (this.sweepMs > 0 && !this.sweepTimer) {
      this.sweepTimer = setInterval(() => void this.sweep(), this.sweepMs);
      this.sweepTimer.unref();
    }
    const names = [...this.sagas.keys()];
    const rows = await sql<{ id: string }>`
      select id from ${this.table(INSTANCES)}
      where status in ('running', 'compensating') and saga = any(${names}::text[])
        and (owner is null or owner = ${this.nodeId} or lease_until < now())
      order by updated_at`.execute(this.db.kysely);
    const ids = rows.rows.map((row) => row.id).filter((id) => !this.busy.has(id));
    for (const id of ids) this.spawn(id, true);
    return ids;
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

  /** How many instances are in each status, per saga: for gauges and dashboards. */
  async counts(): Promise<{ saga: string; status: SagaStatus; count: number }[]> {
    const rows = await sql<{ saga: string; status: SagaStatus; count: number }>`
      select saga, status, count(*)::int as count from ${this.table(INSTANCES)}
      group by saga, status order by saga, status`.execute(this.db.kysely);
    return rows.rows;
  }

  /** Resolves once the instance is completed, compensated or failed (whichever node drives it). */
  async wait(id: string, timeoutMs = 30_000): Promise<SagaInstance> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      let wake!: () => void;
      const settled = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const listeners = this.settledListeners.get(id) ?? new Set();
      listeners.add(wake);
      this.settledListeners.set(id, listeners);
      try {
        const instance = await this.get(id);
        if (!instance) throw new ChassisError('NOT_FOUND', `No saga instance "${id}" in service "${this.service}"`);
        if (isTerminalSagaStatus(instance.status)) return instance;
        const left = until - Date.now();
        if (left <= 0) {
          throw new ChassisError(
            'TIMEOUT',
            `Saga instance "${id}" (${instance.saga}) is still ${instance.status}${instance.currentStep ? ` at step "${instance.currentStep}"` : ''} after ${timeoutMs} ms`,
            { data: { id, status: instance.status, currentStep: instance.currentStep } },
          );
        }
        // Other nodes' progress is seen by polling; this node's, at once.
        await Promise.race([settled, sleep(Math.min(left, 100))]);
      } finally {
        listeners.delete(wake);
        if (listeners.size === 0) this.settledListeners.delete(id);
      }
    }
  }

  /**
   * Graceful stop: starts nothing new; each attempt in flight finishes and is recorded, then its instance
   * is released for another node to continue at once. Retry delays are cut short (they are persisted).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopController.abort();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const wake of this.slotQueue.splice(0)) wake();
    while (this.drivers.size > 0) await Promise.allSettled([...this.drivers]);
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  // Driving ----------------------------------------------------------------------------------------

  private table(name: string) {
    return sql.id(this.service, name);
  }

  private spawn(id: string, resumed: boolean): void {
    if (this.stopping || this.busy.has(id)) return;
    this.busy.add(id);
    const driver = this.drive(id, resumed)
      .catch((error: unknown) => {
        this.options.logger?.error(
          { err: error, sagaId: id },
          'saga driver stopped on an error; another sweep retries',
        );
      })
      .finally(() => {
        this.busy.delete(id);
        this.drivers.delete(driver);
      });
    this.drivers.add(driver);
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopping) return;
    this.sweeping = true;
    try {
      await this.resumeAll();
    } catch (error) {
      this.options.logger?.warn({ err: error }, 'saga sweep failed; the next one retries');
    } finally {
      this.sweeping = false;
    }
  }

  private async acquireSlot(): Promise<boolean> {
    while (this.slotsInUse >= this.concurrency) {
      if (this.stopping) return false;
      await new Promise<void>((resolve) => this.slotQueue.push(resolve));
    }
    if (this.stopping) return false;
    this.slotsInUse++;
    return true;
  }

  private releaseSlot(): void {
    this.slotsInUse--;
    this.slotQueue.shift()?.();
  }

  private async drive(id: string, resumed: boolean): Promise<void> {
    if (!(await this.acquireSlot())) return;
    let held: Held | undefined;
    try {
      const claimed = await sql<InstanceRow & { wait_ms: number }>`
        update ${this.table(INSTANCES)}
        set owner = ${this.nodeId}, lease_until = now() + ${this.leaseMs}::int * interval '1 millisecond'
        where id = ${id} and status in ('running', 'compensating') and saga = any(${[...this.sagas.keys()]}::text[])
          and (owner is null or owner = ${this.nodeId} or lease_until < now())
        returning *, greatest(0, ceil(extract(epoch from (wake_at - now())) * 1000))::int as wait_ms`.execute(
        this.db.kysely,
      );
      const row = claimed.rows[0];
      if (!row) return;
      const def = this.sagas.get(row.saga)!;
      held = {
        id,
        def,
        status: row.status,
        index: row.step_index,
        attempt: row.attempt,
        currentStep: row.current_step,
        data: row.data,
        error: row.error,
        lost: false,
      };
      this.held.set(id, held);
      this.ensureRenewing();
      const data = def.schema.safeParse(row.data);
      if (!data.success) {
        // Left as it is for a node running a version that reads it; this one cannot.
        await this.release(held);
        throw new ChassisError(
          'VALIDATION',
          `Saga instance "${id}" (${def.name}) holds data this version's schema refuses: ${fieldErrors(data.error)
            .map((f) => `${f.path}: ${f.message}`)
            .join('; ')}`,
        );
      }
      held.data = data.data;
      if (resumed) await this.record(held, { kind: 'saga_resumed', step: held.currentStep ?? undefined });
      if (row.wait_ms > 0 && !(await this.pause(row.wait_ms))) {
        await this.release(held);
        return;
      }
      await this.advance(held);
    } catch (error) {
      if (!(error instanceof Abandon)) throw error;
    } finally {
      if (held) this.held.delete(id);
      this.releaseSlot();
    }
  }

  private async advance(held: Held): Promise<void> {
    const steps = held.def.steps;
    for (;;) {
      if (held.status === 'running') {
        const step = steps[held.index];
        if (!step) {
          held.status = 'completed';
          held.currentStep = null;
          await this.record(held, { kind: 'saga_completed' }, { release: true });
          return;
        }
        if (this.stopping) return this.release(held);
        const policy = { ...this.retryDefault, ...step.retry };
        const attempt = held.attempt + 1;
        held.currentStep = step.name;
        if (attempt > policy.maxAttempts) {
          await this.failStep(held, step.name, {
            code: 'SAGA_STEP_INTERRUPTED',
            message: `Step "${step.name}" was started ${held.attempt} times without an outcome (its node stopped each time)`,
          });
          continue;
        }
        held.attempt = attempt;
        await this.record(held, { kind: 'step_started', step: step.name, attempt });
        const outcome = await this.invoke(held, step, 'run', attempt);
        this.boundary({ sagaId: held.id, saga: held.def.name, boundary: 'step_ran', step: step.name, attempt });
        let error: ChassisError;
        let refused: boolean;
        if (outcome.ok) {
          const merged = held.def.schema.safeParse({
            ...(held.data as object),
            ...(outcome.value as object | undefined),
          });
          if (merged.success) {
            held.data = merged.data;
            held.index++;
            held.attempt = 0;
            held.error = null;
            held.currentStep = steps[held.index]?.name ?? null;
            await this.record(held, { kind: 'step_completed', step: step.name, attempt });
            continue;
          }
          const fields = fieldErrors(merged.error);
          error = new ChassisError(
            'VALIDATION',
            `Step "${step.name}" of saga "${held.def.name}" returned data its schema refuses: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
            { data: { saga: held.def.name, step: step.name, fields } },
          );
          refused = true;
        } else {
          error = outcome.error;
          refused = outcome.refused;
        }
        if (!refused && attempt < policy.maxAttempts) {
          const delayMs = fullJitterDelay(attempt, policy);
          held.error = toSagaError(error);
          await this.record(held, { kind: 'step_retrying', step: step.name, attempt, error: held.error, delayMs });
          if (!(await this.pause(delayMs))) return this.release(held);
          continue;
        }
        await this.failStep(held, step.name, toSagaError(error), attempt);
        continue;
      }

      if (held.status === 'compensating') {
        let index = held.index;
        while (index >= 0 && !steps[index]?.compensate) index--;
        if (index !== held.index) {
          held.index = index;
          held.attempt = 0;
        }
        const step = steps[index];
        if (!step) {
          held.status = 'compensated';
          held.currentStep = null;
          await this.record(held, { kind: 'saga_compensated' }, { release: true });
          return;
        }
        if (this.stopping) return this.release(held);
        const policy = { ...this.compensationDefault, ...step.compensationRetry };
        const attempt = held.attempt + 1;
        held.currentStep = step.name;
        if (attempt > policy.maxAttempts) {
          held.status = 'failed';
          held.error = {
            code: 'SAGA_COMPENSATION_INTERRUPTED',
            message: `Compensation of step "${step.name}" was started ${held.attempt} times without an outcome (its node stopped each time)`,
          };
          await this.record(held, { kind: 'compensation_failed', step: step.name, error: held.error });
          await this.record(held, { kind: 'saga_failed', error: held.error }, { release: true });
          return;
        }
        held.attempt = attempt;
        await this.record(held, { kind: 'compensation_started', step: step.name, attempt });
        const outcome = await this.invoke(held, step, 'compensate', attempt);
        this.boundary({ sagaId: held.id, saga: held.def.name, boundary: 'compensation_ran', step: step.name, attempt });
        if (outcome.ok) {
          held.index = index - 1;
          held.attempt = 0;
          await this.record(held, { kind: 'compensation_completed', step: step.name, attempt });
          continue;
        }
        const error = toSagaError(outcome.error);
        if (attempt < policy.maxAttempts) {
          const delayMs = fullJitterDelay(attempt, policy);
          await this.record(held, { kind: 'compensation_retrying', step: step.name, attempt, error, delayMs });
          if (!(await this.pause(delayMs))) return this.release(held);
          continue;
        }
        held.status = 'failed';
        held.error = {
          code: 'SAGA_COMPENSATION_FAILED',
          message: `Compensation of step "${step.name}" failed ${attempt} times; last: ${error.code}: ${error.message}`,
        };
        await this.record(held, { kind: 'compensation_failed', step: step.name, attempt, error });
        // Ends like the other terminal statuses, with an entry of its own: what an operator looks for.
        await this.record(held, { kind: 'saga_failed', error: held.error }, { release: true });
        return;
      }
      return;
    }
  }

  private async failStep(held: Held, step: string, error: SagaError, attempt?: number): Promise<void> {
    // The failed step keeps its index: its own compensation runs first.
    held.status = 'compensating';
    held.attempt = 0;
    held.error = error;
    await this.record(held, { kind: 'step_failed', step, attempt, error });
  }

  private async invoke(
    held: Held,
    step: SagaStep<unknown>,
    phase: 'run' | 'compensate',
    attempt: number,
  ): Promise<Outcome> {
    const controller = new AbortController();
    held.attemptController = controller;
    if (held.lost) controller.abort(lostError(held));
    const timeoutMs = step.timeoutMs ?? this.timeoutDefault;
    const attemptEnd = Date.now() + timeoutMs;
    const call = this.options.call;
    const context: StepContext = {
      sagaId: held.id,
      saga: held.def.name,
      step: step.name,
      phase,
      attempt,
      idempotencyKey: `${held.id}:${step.name}`,
      signal: controller.signal,
      call(contract, input, options = {}) {
        if (!call) {
          return Promise.reject(
            new ChassisError(
              'CONFIG',
              `Step "${step.name}" of saga "${held.def.name}" calls ${contract.name}, but its runner was given no call (use runSagas in a node)`,
            ),
          );
        }
        const deadline = Math.min(options.deadline ?? Number.POSITIVE_INFINITY, attemptEnd);
        return call(contract, input, { ...options, deadline, correlationId: held.id });
      },
      db: this.stepDb,
    };
    // A copy: a step that mutates what it is given must not change what is recorded.
    const data = structuredClone(held.data);
    const work = Promise.resolve().then<unknown>(() =>
      phase === 'run' ? step.run(data, context) : step.compensate?.(data, context),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new ChassisError(
          'TIMEOUT',
          `${phase === 'run' ? 'Step' : 'Compensation of step'} "${step.name}" of saga "${held.def.name}" took more than ${timeoutMs} ms`,
        );
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    // An attempt given up on may still settle later; its outcome is of no interest then.
    work.catch(() => undefined);
    try {
      return { ok: true, value: await Promise.race([work, timeout]) };
    } catch (error) {
      return { ok: false, error: toChassisError(error), refused: error instanceof ChassisError && !error.retryable };
    } finally {
      clearTimeout(timer);
      held.attemptController = undefined;
    }
  }

  /**
   * The one write of a transition: the whole instance and its history entry in one statement, only while
   * this node holds the instance. Written before the runner acts on the new state.
   */
  private async record(
    held: Held,
    entry: { kind: SagaHistoryKind; step?: string; attempt?: number; error?: SagaError; delayMs?: number },
    options: { release?: boolean } = {},
  ): Promise<void> {
    if (held.lost) throw new Abandon();
    const release = options.release ? sql`, owner = null, lease_until = null` : sql``;
    const rows = await sql<{ seq: number }>`
      with changed as (
        update ${this.table(INSTANCES)}
        set status = ${held.status}, step_index = ${held.index}, current_step = ${held.currentStep},
          attempt = ${held.attempt}, data = ${JSON.stringify(held.data)}::jsonb,
          error = ${held.error === null ? null : JSON.stringify(held.error)}::jsonb,
          wake_at = case when ${entry.delayMs ?? null}::int is null then null
            else now() + ${entry.delayMs ?? null}::int * interval '1 millisecond' end,
          updated_at = now() ${release}
        where id = ${held.id} and owner = ${this.nodeId}
        returning id
      )
      insert into ${this.table(HISTORY)} (saga_id, kind, step, attempt, node, error, delay_ms)
      select id, ${entry.kind}, ${entry.step ?? null}, ${entry.attempt ?? null}::int, ${this.nodeId},
        ${entry.error === undefined ? null : JSON.stringify(entry.error)}::jsonb, ${entry.delayMs ?? null}::int
      from changed
      returning seq`.execute(this.db.kysely);
    if (rows.rows.length === 0) {
      held.lost = true;
      this.options.logger?.warn(
        { sagaId: held.id, saga: held.def.name },
        'saga instance taken over by another node; this node stops driving it',
      );
      throw new Abandon();
    }
    if (options.release) this.settled(held.id);
    this.boundary({
      sagaId: held.id,
      saga: held.def.name,
      boundary: entry.kind,
      step: entry.step,
      attempt: entry.attempt,
    });
  }

  /** Lets another node take the instance at once (graceful stop, or data this version cannot read). */
  private async release(held: Held): Promise<void> {
    if (held.lost) return;
    await sql`
      update ${this.table(INSTANCES)} set owner = null, lease_until = null
      where id = ${held.id} and owner = ${this.nodeId}`.execute(this.db.kysely);
  }

  private boundary(event: SagaBoundaryEvent): void {
    if (!this.options.onBoundary) return;
    try {
      this.options.onBoundary(event);
    } catch {
      const held = this.held.get(event.sagaId);
      if (held) held.lost = true;
      throw new Abandon();
    }
  }

  /** Waits out a retry delay; false when the runner stops meanwhile. */
  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stopController.signal });
      return true;
    } catch {
      return false;
    }
  }

  private ensureRenewing(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    const mine = [...this.held.values()].filter((held) => !held.lost);
    if (mine.length === 0) {
      if (this.stopping && this.renewTimer) {
        clearInterval(this.renewTimer);
        this.renewTimer = undefined;
      }
      return;
    }
    const ids = mine.map((held) => held.id);
    let kept: Set<string>;
    try {
      const rows = await sql<{ id: string }>`
        update ${this.table(INSTANCES)} set lease_until = now() + ${this.leaseMs}::int * interval '1 millisecond'
        where owner = ${this.nodeId} and id = any(${ids}::text[])
        returning id`.execute(this.db.kysely);
      kept = new Set(rows.rows.map((row) => row.id));
    } catch (error) {
      // The database is unreachable: so are our writes; the lease may lapse and another node take over.
      this.options.logger?.warn({ err: error }, 'saga lease renewal failed');
      return;
    }
    for (const held of mine) {
      // Released (terminal, or let go) between the snapshot and the update: not a loss.
      if (kept.has(held.id) || this.held.get(held.id) !== held) continue;
      if (isTerminalSagaStatus(held.status)) continue;
      held.lost = true;
      held.attemptController?.abort(lostError(held));
    }
  }

  private settled(id: string): void {
    for (const wake of this.settledListeners.get(id) ?? []) wake();
  }
}

function lostError(held: Held): ChassisError {
  return new ChassisError('CONFLICT', `Saga instance "${held.id}" is now driven by another node`);
}

function toSagaError(error: ChassisError): SagaError {
  return { code: error.code, message: error.message };
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
