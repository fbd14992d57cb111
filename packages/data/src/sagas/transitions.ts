import { ChassisError, fieldErrors, fullJitterDelay } from '@chassis/core';
import type {
  SagaDefinition,
  SagaError,
  SagaHistoryKind,
  SagaRetryPolicy,
  SagaStatus,
  SagaStep,
} from './definition.ts';

/**
 * How a saga instance moves, as a pure function: given its state and what just happened, the next state,
 * the history entry to record with it, and what to do next. No I/O, no clock, no randomness of its own
 * (the jitter's random is passed in): the runner writes the result (one fenced write per transition)
 * before acting on it, and this file decides nothing else.
 */

/** An instance as the transitions see it; written whole at each transition. */
export interface SagaState {
  status: SagaStatus;
  /** Running: the next step to run. Compensating: compensations of steps above it are done. */
  index: number;
  /** Attempts started of the current step or compensation, those cut short by a crash included. */
  attempt: number;
  currentStep: string | null;
  data: unknown;
  error: SagaError | null;
}

/** A history entry as a transition makes it; the store adds its `seq`, `node` and `at`. */
export interface SagaEntry {
  kind: SagaHistoryKind;
  step?: string;
  attempt?: number;
  error?: SagaError;
  /** For a retry: the delay before the next attempt (also when the instance may be woken). */
  delayMs?: number;
}

/** What just happened to an instance. */
export type SagaHappening =
  /** A node took it over (after a crash, a graceful stop, or a start in a transaction). */
  | { type: 'resumed' }
  /** Nothing pending: what comes next (the next attempt, or the end). */
  | { type: 'ready' }
  /** The current step or compensation returned (a step may return fields to merge into the data). */
  | { type: 'ran'; value?: unknown }
  /**
   * The current step or compensation threw or timed out. `refused`: the step said it is not retryable
   * (a `ChassisError` with `retryable: false`, a business refusal); compensations retry regardless.
   */
  | { type: 'failed'; error: SagaError; refused: boolean };

/** What the runner does once the transition is written. */
export type SagaNext =
  | { do: 'run'; step: SagaStep<unknown>; attempt: number }
  | { do: 'compensate'; step: SagaStep<unknown>; attempt: number }
  /** Nothing to invoke: ask again with `ready`, after `afterMs` if given (a retry's delay). */
  | { do: 'proceed'; afterMs?: number }
  /** Terminal: the write releases the instance. */
  | { do: 'finish' };

export interface SagaTransition {
  state: SagaState;
  entry: SagaEntry;
  next: SagaNext;
}

/** The policies of steps that set none, and the random of the backoff's full jitter. */
export interface SagaTransitionOptions {
  retry: SagaRetryPolicy;
  compensationRetry: SagaRetryPolicy;
  random?: () => number;
}

export const DEFAULT_RETRY: SagaRetryPolicy = { maxAttempts: 3, initialDelayMs: 200, maxDelayMs: 5_000 };
export const DEFAULT_COMPENSATION_RETRY: SagaRetryPolicy = {
  maxAttempts: 20,
  initialDelayMs: 200,
  maxDelayMs: 60_000,
};

/** The next state of `state` after `happened`, the entry to record with it, and what to do then. */
export function transition(
  saga: SagaDefinition<unknown, unknown>,
  state: SagaState,
  happened: SagaHappening,
  options: SagaTransitionOptions,
): SagaTransition {
  switch (happened.type) {
    case 'resumed':
      return { state, entry: { kind: 'saga_resumed', step: state.currentStep ?? undefined }, next: { do: 'proceed' } };
    case 'ready':
      if (state.status === 'running') return nextStep(saga, state, options);
      if (state.status === 'compensating') return nextCompensation(saga, state, options);
      if (state.status === 'failed') {
        // Ends like the other terminal statuses, with an entry of its own: what an operator looks for.
        return { state, entry: { kind: 'saga_failed', error: state.error ?? undefined }, next: { do: 'finish' } };
      }
      throw new ChassisError('INTERNAL', `Saga "${saga.name}" is ${state.status}: nothing comes next`);
    case 'ran':
    case 'failed':
      if (state.status === 'running') return stepOutcome(saga, state, happened, options);
      if (state.status === 'compensating') return compensationOutcome(saga, state, happened, options);
      throw new ChassisError('INTERNAL', `Saga "${saga.name}" is ${state.status}: no step or compensation ran`);
  }
}

function nextStep(
  saga: SagaDefinition<unknown, unknown>,
  held: SagaState,
  options: SagaTransitionOptions,
): SagaTransition {
  const step = saga.steps[held.index];
  if (!step) {
    return {
      state: { ...held, status: 'completed', currentStep: null },
      entry: { kind: 'saga_completed' },
      next: { do: 'finish' },
    };
  }
  const policy = { ...options.retry, ...step.retry };
  const attempt = held.attempt + 1;
  const state = { ...held, currentStep: step.name };
  if (attempt > policy.maxAttempts) {
    return failStep(state, step.name, {
      code: 'SAGA_STEP_INTERRUPTED',
      message: `Step "${step.name}" was started ${held.attempt} times without an outcome (its node stopped each time)`,
    });
  }
  return {
    state: { ...state, attempt },
    entry: { kind: 'step_started', step: step.name, attempt },
    next: { do: 'run', step, attempt },
  };
}

function stepOutcome(
  saga: SagaDefinition<unknown, unknown>,
  state: SagaState,
  happened: Extract<SagaHappening, { type: 'ran' | 'failed' }>,
  options: SagaTransitionOptions,
): SagaTransition {
  const step = currentStepOf(saga, state);
  const attempt = state.attempt;
  let error: SagaError;
  let refused: boolean;
  if (happened.type === 'ran') {
    const merged = saga.schema.safeParse({ ...(state.data as object), ...(happened.value as object | undefined) });
    if (merged.success) {
      const index = state.index + 1;
      return {
        state: {
          ...state,
          data: merged.data,
          index,
          attempt: 0,
          error: null,
          currentStep: saga.steps[index]?.name ?? null,
        },
        entry: { kind: 'step_completed', step: step.name, attempt },
        next: { do: 'proceed' },
      };
    }
    const fields = fieldErrors(merged.error);
    // A refusal: the same data would be refused again.
    error = {
      code: 'VALIDATION',
      message: `Step "${step.name}" of saga "${saga.name}" returned data its schema refuses: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
    };
    refused = true;
  } else {
    error = happened.error;
    refused = happened.refused;
  }
  const policy = { ...options.retry, ...step.retry };
  if (!refused && attempt < policy.maxAttempts) {
    const delayMs = fullJitterDelay(attempt, policy, options.random);
    return {
      state: { ...state, error },
      entry: { kind: 'step_retrying', step: step.name, attempt, error, delayMs },
      next: { do: 'proceed', afterMs: delayMs },
    };
  }
  return failStep(state, step.name, error, attempt);
}

function failStep(state: SagaState, step: string, error: SagaError, attempt?: number): SagaTransition {
  // The failed step keeps its index: its own compensation runs first.
  return {
    state: { ...state, status: 'compensating', attempt: 0, error },
    entry: { kind: 'step_failed', step, attempt, error },
    next: { do: 'proceed' },
  };
}

function nextCompensation(
  saga: SagaDefinition<unknown, unknown>,
  held: SagaState,
  options: SagaTransitionOptions,
): SagaTransition {
  const steps = saga.steps;
  let index = held.index;
  while (index >= 0 && !steps[index]?.compensate) index--;
  const skipped = index === held.index ? held : { ...held, index, attempt: 0 };
  const step = steps[index];
  if (!step) {
    return {
      state: { ...skipped, status: 'compensated', currentStep: null },
      entry: { kind: 'saga_compensated' },
      next: { do: 'finish' },
    };
  }
  const policy = { ...options.compensationRetry, ...step.compensationRetry };
  const attempt = skipped.attempt + 1;
  const state = { ...skipped, currentStep: step.name };
  if (attempt > policy.maxAttempts) {
    const error = {
      code: 'SAGA_COMPENSATION_INTERRUPTED',
      message: `Compensation of step "${step.name}" was started ${skipped.attempt} times without an outcome (its node stopped each time)`,
    };
    return {
      state: { ...state, status: 'failed', error },
      entry: { kind: 'compensation_failed', step: step.name, error },
      next: { do: 'proceed' },
    };
  }
  return {
    state: { ...state, attempt },
    entry: { kind: 'compensation_started', step: step.name, attempt },
    next: { do: 'compensate', step, attempt },
  };
}

function compensationOutcome(
  saga: SagaDefinition<unknown, unknown>,
  state: SagaState,
  happened: Extract<SagaHappening, { type: 'ran' | 'failed' }>,
  options: SagaTransitionOptions,
): SagaTransition {
  const step = currentStepOf(saga, state);
  const attempt = state.attempt;
  if (happened.type === 'ran') {
    return {
      state: { ...state, index: state.index - 1, attempt: 0 },
      entry: { kind: 'compensation_completed', step: step.name, attempt },
      next: { do: 'proceed' },
    };
  }
  const error = happened.error;
  const policy = { ...options.compensationRetry, ...step.compensationRetry };
  if (attempt < policy.maxAttempts) {
    const delayMs = fullJitterDelay(attempt, policy, options.random);
    return {
      state,
      entry: { kind: 'compensation_retrying', step: step.name, attempt, error, delayMs },
      next: { do: 'proceed', afterMs: delayMs },
    };
  }
  return {
    state: {
      ...state,
      status: 'failed',
      error: {
        code: 'SAGA_COMPENSATION_FAILED',
        message: `Compensation of step "${step.name}" failed ${attempt} times; last: ${error.code}: ${error.message}`,
      },
    },
    entry: { kind: 'compensation_failed', step: step.name, attempt, error },
    next: { do: 'proceed' },
  };
}

function currentStepOf(saga: SagaDefinition<unknown, unknown>, state: SagaState): SagaStep<unknown> {
  const step = saga.steps[state.index];
  if (!step) throw new ChassisError('INTERNAL', `Saga "${saga.name}" has no step ${state.index} to have run`);
  return step;
}
