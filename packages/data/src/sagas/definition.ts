import { type ActionContract, type CallOptions, ChassisError, type InputOf, type OutputOf } from '@chassis/core';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import type { AnyTables } from '../database.ts';

/**
 * What a saga is and what its instances look like: the definitions (`defineSaga`) and the types the
 * transitions, the store and the runner share. How an instance moves is in `transitions.ts`, how it is
 * stored in `store.ts`, and what drives it in `runner.ts`.
 */

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
  | 'saga_failed'
  /** An operator sent a failed saga back to its compensations (`SagaRunner.retry`, ops `sagas.retry`). */
  | 'saga_retried'
  /** An operator made a running saga compensate (`SagaRunner.abort`, ops `sagas.abort`). */
  | 'saga_aborted';

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
