import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineSaga, type SagaDefinition } from '@chassis/data';
import { z } from 'zod';
import {
  type SagaHappening,
  type SagaState,
  type SagaTransitionOptions,
  transition,
} from '../../src/sagas/transitions.ts';

// The saga state machine alone: each branch, with no database, no timers and no clock. The runner's
// behaviour around it (leases, crashes, takeovers) is in suite.ts and takeover.ts.

const noop = async () => undefined;

const order = defineSaga({
  name: 'order',
  data: z.object({ quantity: z.number().int().positive(), orderId: z.string().optional() }),
  steps: [
    { name: 'reserve', run: noop, compensate: noop, compensationRetry: { maxAttempts: 2 } },
    { name: 'notify', run: noop }, // nothing to undo: no compensation
    { name: 'place', run: noop, compensate: noop, retry: { maxAttempts: 2 } },
  ],
}) as SagaDefinition<unknown, unknown>;

// random 0.5: the full-jitter delay is half the ceiling, initialDelayMs * 2^(attempt - 1) capped at max.
const options: SagaTransitionOptions = {
  retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1_000 },
  compensationRetry: { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 1_000 },
  random: () => 0.5,
};

const ready: SagaHappening = { type: 'ready' };
const ran = (value?: unknown): SagaHappening => ({ type: 'ran', value });
const failed = (code: string, refused = false): SagaHappening => ({
  type: 'failed',
  error: { code, message: `${code}!` },
  refused,
});

function state(patch: Partial<SagaState> = {}): SagaState {
  // Frozen: a transition must build a new state, never change the one it is given.
  return Object.freeze({
    status: 'running',
    index: 0,
    attempt: 0,
    currentStep: 'reserve',
    data: Object.freeze({ quantity: 5 }),
    error: null,
    ...patch,
  } satisfies SagaState);
}

const step = (name: string) => order.steps.find((s) => s.name === name)!;

describe('saga transitions: steps', () => {
  it('a running instance starts its next step as attempt 1', () => {
    const t = transition(order, state(), ready, options);
    assert.deepEqual(t.state, state({ attempt: 1 }));
    assert.deepEqual(t.entry, { kind: 'step_started', step: 'reserve', attempt: 1 });
    assert.deepEqual(t.next, { do: 'run', step: step('reserve'), attempt: 1 });
  });

  it('a step that ran moves on to the next step, merging what it returned into the data', () => {
    const t = transition(
      order,
      state({ attempt: 2, error: { code: 'TIMEOUT', message: 'x' } }),
      ran({ orderId: 'o1' }),
      options,
    );
    assert.deepEqual(
      t.state,
      state({ index: 1, attempt: 0, currentStep: 'notify', data: { quantity: 5, orderId: 'o1' }, error: null }),
    );
    assert.deepEqual(t.entry, { kind: 'step_completed', step: 'reserve', attempt: 2 });
    assert.deepEqual(t.next, { do: 'proceed' });
  });

  it('after the last step the saga is completed, and the write releases it', () => {
    const last = transition(order, state({ index: 2, attempt: 1, currentStep: 'place' }), ran(), options);
    assert.deepEqual(last.state, state({ index: 3, attempt: 0, currentStep: null }));
    assert.deepEqual(last.entry, { kind: 'step_completed', step: 'place', attempt: 1 });
    const end = transition(order, last.state, ready, options);
    assert.deepEqual(end.state, state({ status: 'completed', index: 3, currentStep: null }));
    assert.deepEqual(end.entry, { kind: 'saga_completed' });
    assert.deepEqual(end.next, { do: 'finish' });
  });

  it('a retryable failure is retried after a full-jitter backoff, until maxAttempts', () => {
    const first = transition(order, state({ attempt: 1 }), failed('TIMEOUT'), options);
    const error = { code: 'TIMEOUT', message: 'TIMEOUT!' };
    assert.deepEqual(first.state, state({ attempt: 1, error }));
    assert.deepEqual(first.entry, { kind: 'step_retrying', step: 'reserve', attempt: 1, error, delayMs: 50 });
    assert.deepEqual(first.next, { do: 'proceed', afterMs: 50 });

    const second = transition(order, transition(order, first.state, ready, options).state, failed('TIMEOUT'), options);
    assert.equal(second.entry.attempt, 2);
    assert.equal(second.entry.delayMs, 100);

    const third = transition(order, state({ attempt: 3 }), failed('UNAVAILABLE'), options);
    const last = { code: 'UNAVAILABLE', message: 'UNAVAILABLE!' };
    assert.deepEqual(third.state, state({ status: 'compensating', attempt: 0, error: last }));
    assert.deepEqual(third.entry, { kind: 'step_failed', step: 'reserve', attempt: 3, error: last });
    assert.deepEqual(third.next, { do: 'proceed' });
  });

  it("a step's own retry policy wins over the defaults", () => {
    const t = transition(order, state({ index: 2, attempt: 2, currentStep: 'place' }), failed('TIMEOUT'), options);
    assert.equal(t.entry.kind, 'step_failed');
    assert.equal(t.state.status, 'compensating');
  });

  it('a refusal fails the step at once, whatever attempts are left', () => {
    const t = transition(order, state({ attempt: 1 }), failed('INSUFFICIENT_FUNDS', true), options);
    const error = { code: 'INSUFFICIENT_FUNDS', message: 'INSUFFICIENT_FUNDS!' };
    assert.deepEqual(t.state, state({ status: 'compensating', attempt: 0, error }));
    assert.deepEqual(t.entry, { kind: 'step_failed', step: 'reserve', attempt: 1, error });
  });

  it('data the schema refuses is a refusal: the step fails at once, the data unchanged', () => {
    const t = transition(order, state({ attempt: 1 }), ran({ quantity: -1 }), options);
    assert.equal(t.state.status, 'compensating');
    assert.deepEqual(t.state.data, { quantity: 5 });
    assert.equal(t.entry.kind, 'step_failed');
    assert.equal(t.entry.error?.code, 'VALIDATION');
    assert.match(
      t.entry.error?.message ?? '',
      /Step "reserve" of saga "order" returned data its schema refuses: quantity/,
    );
  });
});

describe('saga transitions: compensations', () => {
  const failing = (patch: Partial<SagaState> = {}) =>
    state({ status: 'compensating', error: { code: 'X', message: 'x' }, ...patch });

  it('the failed step is compensated first; steps without a compensation are skipped', () => {
    const t = transition(order, failing({ index: 2, currentStep: 'place' }), ready, options);
    assert.deepEqual(t.state, failing({ index: 2, attempt: 1, currentStep: 'place' }));
    assert.deepEqual(t.entry, { kind: 'compensation_started', step: 'place', attempt: 1 });
    assert.deepEqual(t.next, { do: 'compensate', step: step('place'), attempt: 1 });

    const done = transition(order, t.state, ran(), options);
    assert.deepEqual(done.state, failing({ index: 1, attempt: 0, currentStep: 'place' }));
    assert.deepEqual(done.entry, { kind: 'compensation_completed', step: 'place', attempt: 1 });
    assert.deepEqual(done.next, { do: 'proceed' });

    const skipped = transition(order, done.state, ready, options);
    assert.deepEqual(skipped.state, failing({ index: 0, attempt: 1, currentStep: 'reserve' }));
    assert.deepEqual(skipped.entry, { kind: 'compensation_started', step: 'reserve', attempt: 1 });
  });

  it('once every compensation ran the saga is compensated, keeping the error that caused it', () => {
    const t = transition(order, failing({ index: -1, currentStep: 'reserve' }), ready, options);
    assert.deepEqual(t.state, failing({ status: 'compensated', index: -1, currentStep: null }));
    assert.deepEqual(t.entry, { kind: 'saga_compensated' });
    assert.deepEqual(t.next, { do: 'finish' });
  });

  it('a failed compensation is retried on any error, even a refusal, after a backoff', () => {
    const t = transition(order, failing({ index: 2, attempt: 2, currentStep: 'place' }), failed('NOPE', true), options);
    assert.deepEqual(t.state, failing({ index: 2, attempt: 2, currentStep: 'place' }));
    assert.deepEqual(t.entry, {
      kind: 'compensation_retrying',
      step: 'place',
      attempt: 2,
      error: { code: 'NOPE', message: 'NOPE!' },
      delayMs: 100,
    });
    assert.deepEqual(t.next, { do: 'proceed', afterMs: 100 });
  });

  it('a compensation failing maxAttempts times leaves the saga failed, then ends it with saga_failed', () => {
    const t = transition(order, failing({ index: 0, attempt: 2, currentStep: 'reserve' }), failed('DOWN'), options);
    const error = {
      code: 'SAGA_COMPENSATION_FAILED',
      message: 'Compensation of step "reserve" failed 2 times; last: DOWN: DOWN!',
    };
    assert.deepEqual(t.state, failing({ status: 'failed', index: 0, attempt: 2, currentStep: 'reserve', error }));
    assert.deepEqual(t.entry, {
      kind: 'compensation_failed',
      step: 'reserve',
      attempt: 2,
      error: { code: 'DOWN', message: 'DOWN!' },
    });
    assert.deepEqual(t.next, { do: 'proceed' });

    const end = transition(order, t.state, ready, options);
    assert.deepEqual(end.state, t.state);
    assert.deepEqual(end.entry, { kind: 'saga_failed', error });
    assert.deepEqual(end.next, { do: 'finish' });
  });
});

describe('saga transitions: resuming after a crash', () => {
  it('a resume is recorded with the step it was at, and changes nothing else', () => {
    const held = state({ index: 2, attempt: 1, currentStep: 'place' });
    const t = transition(order, held, { type: 'resumed' }, options);
    assert.equal(t.state, held);
    assert.deepEqual(t.entry, { kind: 'saga_resumed', step: 'place' });
    assert.deepEqual(t.next, { do: 'proceed' });
  });

  it('the attempt cut short by the crash counts: the next is attempt 2', () => {
    const t = transition(order, state({ attempt: 1 }), ready, options);
    assert.deepEqual(t.entry, { kind: 'step_started', step: 'reserve', attempt: 2 });
    assert.deepEqual(t.next, { do: 'run', step: step('reserve'), attempt: 2 });
  });

  it('a step started maxAttempts times without an outcome fails, and compensation begins', () => {
    const t = transition(order, state({ attempt: 3 }), ready, options);
    const error = {
      code: 'SAGA_STEP_INTERRUPTED',
      message: 'Step "reserve" was started 3 times without an outcome (its node stopped each time)',
    };
    assert.deepEqual(t.state, state({ status: 'compensating', attempt: 0, error }));
    assert.deepEqual(t.entry, { kind: 'step_failed', step: 'reserve', attempt: undefined, error });
    assert.deepEqual(t.next, { do: 'proceed' });
  });

  it('a compensation started maxAttempts times without an outcome leaves the saga failed', () => {
    const held = state({ status: 'compensating', index: 0, attempt: 2, error: { code: 'X', message: 'x' } });
    const t = transition(order, held, ready, options);
    const error = {
      code: 'SAGA_COMPENSATION_INTERRUPTED',
      message: 'Compensation of step "reserve" was started 2 times without an outcome (its node stopped each time)',
    };
    assert.deepEqual(t.state, { ...held, status: 'failed', error });
    assert.deepEqual(t.entry, { kind: 'compensation_failed', step: 'reserve', error });
    assert.equal(transition(order, t.state, ready, options).entry.kind, 'saga_failed');
  });

  it('the attempts of a step with no compensation are not carried to the next compensation', () => {
    // Resumed at `notify` (index 1, nothing to undo): `reserve`'s compensation is its first attempt.
    const t = transition(order, state({ status: 'compensating', index: 1, attempt: 3 }), ready, options);
    assert.equal(t.state.index, 0);
    assert.deepEqual(t.entry, { kind: 'compensation_started', step: 'reserve', attempt: 1 });
  });
});
