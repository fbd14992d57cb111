import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError, defaultNodeId, fieldErrors, type Logger, toChassisError } from '@chassis/core';
import type { Kysely } from 'kysely';
import type { AnyTables, Database } from '../database.ts';
import { schemaPlugin } from '../schema-plugin.ts';
import {
  isTerminalSagaStatus,
  type SagaBoundaryEvent,
  type SagaCall,
  type SagaDefinition,
  type SagaError,
  type SagaInstance,
  type SagaRetryPolicy,
  type SagaStatus,
  type SagaStep,
  type SagaSummary,
  type StepContext,
} from './definition.ts';
import { type SagaListFilter, SagaStore } from './store.ts';
import {
  DEFAULT_COMPENSATION_RETRY,
  DEFAULT_RETRY,
  type SagaEntry,
  type SagaHappening,
  type SagaNext,
  type SagaState,
  type SagaTransitionOptions,
  transition,
} from './transitions.ts';

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

const DEFAULT_TIMEOUT_MS = 30_000;

/** Thrown inside the driver when the instance is no longer ours: stop without writing anything. */
class Abandon extends Error {}

/** The driver's copy of an instance it holds. */
interface Held {
  id: string;
  def: SagaDefinition<unknown, unknown>;
  state: SagaState;
  /** Set when a renewal finds another node holds it now. */
  lost: boolean;
  attemptController?: AbortController;
}

export class SagaRunner {
  readonly nodeId: string;
  private readonly service: string;
  private readonly sagas = new Map<string, SagaDefinition<unknown, unknown>>();
  private readonly leaseMs: number;
  private readonly sweepMs: number;
  private readonly concurrency: number;
  private readonly policies: SagaTransitionOptions;
  private readonly timeoutDefault: number;
  private readonly held = new Map<string, Held>();
  /** Ids being claimed or driven here, so a sweep never drives one twice. */
  private readonly busy = new Set<string>();
  /** Ids an operator moved while a driver here still held them: driven again once it lets go. */
  private readonly respawn = new Set<string>();
  private readonly drivers = new Set<Promise<void>>();
  private readonly settledListeners = new Map<string, Set<() => void>>();
  private readonly slotQueue: (() => void)[] = [];
  private slotsInUse = 0;
  private readonly stopController = new AbortController();
  private stopping = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;

  private readonly store: SagaStore;
  private readonly options: SagaRunnerOptions;
  private readonly stepDb: Kysely<AnyTables>;

  constructor(db: Database, options: SagaRunnerOptions) {
    db.requireFeature('Sagas (runSagas)');
    this.options = options;
    this.service = options.service;
    this.store = new SagaStore(db, options.service);
    this.stepDb = db.kysely.withPlugin(schemaPlugin(options.service));
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.leaseMs = options.leaseMs ?? 30_000;
    this.sweepMs = options.sweepMs ?? 5_000;
    this.concurrency = options.concurrency ?? 50;
    this.policies = {
      retry: options.defaults?.retry ?? DEFAULT_RETRY,
      compensationRetry: options.defaults?.compensationRetry ?? DEFAULT_COMPENSATION_RETRY,
    };
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
  install(): Promise<void> {
    return this.store.install();
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
    const created = await this.store.insert(
      { id, saga: saga.name, firstStep: saga.steps[0]?.name ?? null, data: parsed.data },
      this.nodeId,
      options.trx,
    );
    if (!created) {
      const other = await this.store.sagaOf(id, options.trx);
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
    const ids = (await this.store.claimable([...this.sagas.keys()], this.nodeId)).filter((id) => !this.busy.has(id));
    for (const id of ids) this.spawn(id, true);
    return ids;
  }

  get(id: string): Promise<SagaInstance | undefined> {
    return this.store.get(id);
  }

  /** Instances, newest first, without their history (`get` gives it). */
  list(filter: SagaListFilter = {}): Promise<SagaSummary[]> {
    return this.store.list(filter);
  }

  /**
   * An operator's retry of a `failed` saga: its compensations go on from the one that gave up, with fresh
   * attempts, driven here at once. `CONFLICT` unless it is failed; `NOT_FOUND` unless this runner drives it.
   */
  retry(id: string): Promise<SagaInstance> {
    return this.operatorMove(id, 'failed', 'saga_retried', null);
  }

  /**
   * An operator's abort of a `running` saga: it compensates as if its current step had failed (that step's
   * compensation first: it may have had its effect). A node driving it loses it and stops at once; an
   * attempt in flight there is cut short (its effect, if any, is what the compensation undoes).
   */
  abort(id: string, reason = 'aborted by an operator'): Promise<SagaInstance> {
    return this.operatorMove(id, 'running', 'saga_aborted', { code: 'SAGA_ABORTED', message: reason });
  }

  private async operatorMove(
    id: string,
    from: 'failed' | 'running',
    kind: 'saga_retried' | 'saga_aborted',
    error: SagaError | null,
  ): Promise<SagaInstance> {
    const before = await this.get(id);
    if (!before || !this.sagas.has(before.saga)) {
      throw new ChassisError('NOT_FOUND', `No saga instance "${id}" that the runner of "${this.service}" drives`, {
        data: { id, service: this.service },
      });
    }
    if (!(await this.store.operatorMove(id, from, kind, error, this.nodeId))) {
      const now = await this.get(id);
      throw new ChassisError(
        'CONFLICT',
        `Saga instance "${id}" is ${now?.status ?? 'gone'}; only a ${from} saga can be ${kind === 'saga_retried' ? 'retried' : 'aborted'}`,
        { data: { id, status: now?.status } },
      );
    }
    this.options.logger?.warn(
      { sagaId: id, saga: before.saga },
      `saga ${id} ${kind.replace('saga_', '')} by an operator`,
    );
    // Driven here at once: a driver of ours that held it stops now (its writes would fail anyway), and
    // the instance is taken again as soon as that driver has let go.
    const held = this.held.get(id);
    if (held) {
      held.lost = true;
      held.attemptController?.abort(lostError(held));
    }
    if (this.busy.has(id)) this.respawn.add(id);
    else this.spawn(id, true);
    return (await this.get(id))!;
  }

  /** The names of the sagas this runner drives. */
  get sagaNames(): string[] {
    return [...this.sagas.keys()];
  }

  /**
   * Per saga this runner drives, how long its unfinished instance with the oldest last step boundary has
   * waited since it, in seconds; 0 when none is unfinished. A figure that keeps growing is a stuck saga.
   */
  async oldestUnfinishedSeconds(): Promise<{ saga: string; seconds: number }[]> {
    const ages = new Map((await this.store.oldestUnfinished()).map(({ saga, seconds }) => [saga, seconds]));
    return this.sagaNames.map((saga) => ({ saga, seconds: ages.get(saga) ?? 0 }));
  }

  /** How many instances are in each status, per saga: for gauges and dashboards. */
  counts(): Promise<{ saga: string; status: SagaStatus; count: number }[]> {
    return this.store.counts();
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
        if (finished(instance)) return instance;
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
        if (this.respawn.delete(id)) this.spawn(id, true);
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
      const claimed = await this.store.claim(id, [...this.sagas.keys()], this.nodeId, this.leaseMs);
      if (!claimed) return;
      const def = this.sagas.get(claimed.saga)!;
      held = { id, def, state: claimed.state, lost: false };
      this.held.set(id, held);
      this.ensureRenewing();
      const data = def.schema.safeParse(claimed.state.data);
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
      held.state = { ...held.state, data: data.data };
      if (resumed) await this.apply(held, { type: 'resumed' });
      if (claimed.waitMs > 0 && !(await this.pause(claimed.waitMs))) {
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

  /** Moves the instance on until it ends, is let go (the runner stops) or is lost to another node. */
  private async advance(held: Held): Promise<void> {
    let happened: SagaHappening = { type: 'ready' };
    for (;;) {
      const next = await this.apply(held, happened);
      if (!next) return this.release(held);
      switch (next.do) {
        case 'finish':
          return;
        case 'proceed':
          if (next.afterMs !== undefined && !(await this.pause(next.afterMs))) return this.release(held);
          happened = { type: 'ready' };
          break;
        case 'run':
        case 'compensate': {
          const phase = next.do;
          const outcome = await this.invoke(held, next.step, phase, next.attempt);
          this.boundary({
            sagaId: held.id,
            saga: held.def.name,
            boundary: phase === 'run' ? 'step_ran' : 'compensation_ran',
            step: next.step.name,
            attempt: next.attempt,
          });
          happened = outcome;
          break;
        }
      }
    }
  }

  /**
   * Works out the transition and writes it; returns what to do next. Once stopping, nothing new is begun
   * (undefined: let the instance go), but an instance at its end is still recorded as ended.
   */
  private async apply(held: Held, happened: SagaHappening): Promise<SagaNext | undefined> {
    const { state, entry, next } = transition(held.def, held.state, happened, this.policies);
    if (happened.type === 'ready' && next.do !== 'finish' && this.stopping) return undefined;
    held.state = state;
    await this.record(held, entry, { release: next.do === 'finish' });
    return next;
  }

  private async invoke(
    held: Held,
    step: SagaStep<unknown>,
    phase: 'run' | 'compensate',
    attempt: number,
  ): Promise<Extract<SagaHappening, { type: 'ran' | 'failed' }>> {
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
    const data = structuredClone(held.state.data);
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
      return { type: 'ran', value: await Promise.race([work, timeout]) };
    } catch (error) {
      const { code, message } = toChassisError(error);
      // `refused`: a ChassisError saying it is not retryable — a business refusal.
      return { type: 'failed', error: { code, message }, refused: error instanceof ChassisError && !error.retryable };
    } finally {
      clearTimeout(timer);
      held.attemptController = undefined;
    }
  }

  /** Records a transition (see `SagaStore.write`), written before the runner acts on the new state. */
  private async record(held: Held, entry: SagaEntry, options: { release?: boolean } = {}): Promise<void> {
    if (held.lost) throw new Abandon();
    if (!(await this.store.write(held.id, held.state, entry, this.nodeId, options.release === true))) {
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
    await this.store.release(held.id, this.nodeId);
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
      kept = await this.store.renew(ids, this.nodeId, this.leaseMs);
    } catch (error) {
      // The database is unreachable: so are our writes; the lease may lapse and another node take over.
      this.options.logger?.warn({ err: error }, 'saga lease renewal failed');
      return;
    }
    for (const held of mine) {
      // Released (terminal, or let go) between the snapshot and the update: not a loss.
      if (kept.has(held.id) || this.held.get(held.id) !== held) continue;
      if (isTerminalSagaStatus(held.state.status)) continue;
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

/**
 * Whether an instance has ended and its last entry is written: a `failed` status is written one write
 * before its `saga_failed` entry and the release, so a terminal instance still owned is not done yet —
 * unless its node died in between, and its lease ran out.
 */
function finished(instance: SagaInstance): boolean {
  if (!isTerminalSagaStatus(instance.status)) return false;
  return (
    instance.owner === undefined || (instance.leaseUntil !== undefined && +new Date(instance.leaseUntil) < Date.now())
  );
}
