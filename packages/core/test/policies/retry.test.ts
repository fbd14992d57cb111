import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { ChassisError, chassisError } from '../../src/errors.ts';
import {
  fullJitterDelay,
  isWorthRetrying,
  type RetryEvent,
  type RetryPolicy,
  withRetry,
} from '../../src/policies/retry.ts';
import { RetryBudget } from '../../src/policies/retry-budget.ts';

const policy: RetryPolicy = { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1000 };

describe('retry', () => {
  afterEach(() => mock.restoreAll());

  describe('fullJitterDelay', () => {
    it('the ceiling starts at initialDelayMs and doubles each attempt', () => {
      const top = () => 1;
      assert.deepEqual(
        [1, 2, 3, 4].map((attempt) => fullJitterDelay(attempt, policy, top)),
        [100, 200, 400, 800],
      );
    });

    it('the ceiling stops at maxDelayMs', () => {
      const top = () => 1;
      assert.equal(fullJitterDelay(5, policy, top), 1000);
      assert.equal(fullJitterDelay(30, policy, top), 1000);
    });

    it('the delay is anywhere from 0 up to the ceiling, rounded to whole ms', () => {
      assert.equal(
        fullJitterDelay(3, policy, () => 0),
        0,
      );
      assert.equal(
        fullJitterDelay(2, policy, () => 0.5),
        100,
      );
      assert.equal(
        fullJitterDelay(1, { maxAttempts: 3, initialDelayMs: 3, maxDelayMs: 10 }, () => 0.5),
        2,
      );
      assert.equal(
        fullJitterDelay(1, { maxAttempts: 3, initialDelayMs: 3, maxDelayMs: 10 }, () => 0.49),
        1,
      );
    });

    it('uses Math.random by default, within the ceiling', () => {
      const delays = Array.from({ length: 200 }, () => fullJitterDelay(2, policy));
      assert.ok(
        delays.every((d) => Number.isInteger(d) && d >= 0 && d <= 200),
        `${delays}`,
      );
      assert.ok(new Set(delays).size > 20, 'jittered');
    });
  });

  describe('isWorthRetrying', () => {
    it('never for an error that is not a ChassisError, nor for one that says it is not retryable', () => {
      assert.equal(isWorthRetrying(new Error('boom'), true, policy), false);
      assert.equal(isWorthRetrying(Object.assign(new Error('x'), { retryable: true }), true, policy), false);
      for (const code of ['VALIDATION', 'NOT_FOUND', 'FORBIDDEN', 'CONFLICT', 'INTERNAL'] as const) {
        assert.equal(isWorthRetrying(chassisError(code, 'no'), true, policy), false, code);
      }
    });

    it('never for an open circuit or a full bulkhead, though both are retryable', () => {
      assert.equal(isWorthRetrying(chassisError('CIRCUIT_OPEN', 'open'), true, policy), false);
      assert.equal(isWorthRetrying(chassisError('BULKHEAD_FULL', 'full'), true, policy), false);
    });

    it('retryable errors of an idempotent action', () => {
      for (const code of ['UNAVAILABLE', 'TIMEOUT', 'TRANSPORT', 'RATE_LIMITED'] as const) {
        assert.equal(isWorthRetrying(chassisError(code, 'x'), true, policy), true, code);
      }
      assert.equal(isWorthRetrying(new ChassisError('EXCHANGE_BUSY', 'x', { retryable: true }), true, policy), true);
    });

    it('not for a non-idempotent action, unless the policy says the callee tolerates it', () => {
      const error = chassisError('UNAVAILABLE', 'x');
      assert.equal(isWorthRetrying(error, false, policy), false);
      assert.equal(isWorthRetrying(error, false, { ...policy, nonIdempotent: false }), false);
      assert.equal(isWorthRetrying(error, false, { ...policy, nonIdempotent: true }), true);
    });

    it('NO_SERVICE even for a non-idempotent action: nobody received the request', () => {
      assert.equal(isWorthRetrying(chassisError('NO_SERVICE', 'nobody'), false, policy), true);
    });
  });

  describe('withRetry', () => {
    const fast: RetryPolicy = { maxAttempts: 3, initialDelayMs: 0, maxDelayMs: 0 };
    const roomy = () => new RetryBudget({ minRetries: 100 });

    /** A run that fails with `errors` in turn, then answers 'ok'. */
    function failing(...errors: unknown[]) {
      const attempts: number[] = [];
      const run = async (attempt: number) => {
        attempts.push(attempt);
        const error = errors[attempts.length - 1];
        if (error !== undefined) throw error;
        return 'ok';
      };
      return { run, attempts };
    }

    it('returns the first success, numbering the attempts from 1', async () => {
      const { run, attempts } = failing(chassisError('UNAVAILABLE', 'a'), chassisError('TIMEOUT', 'b'));
      const events: RetryEvent[] = [];
      const out = await withRetry(run, {
        policy: fast,
        idempotent: true,
        deadline: Number.POSITIVE_INFINITY,
        budget: roomy(),
        onRetry: (e) => events.push(e),
      });
      assert.equal(out, 'ok');
      assert.deepEqual(attempts, [1, 2, 3]);
      assert.deepEqual(
        events.map((e) => [e.attempt, e.delayMs, e.error.code]),
        [
          [1, 0, 'UNAVAILABLE'],
          [2, 0, 'TIMEOUT'],
        ],
      );
    });

    it('makes maxAttempts attempts in all, then throws the last error', async () => {
      const last = chassisError('UNAVAILABLE', 'third');
      const { run, attempts } = failing(
        chassisError('UNAVAILABLE', 'first'),
        chassisError('UNAVAILABLE', 'second'),
        last,
      );
      await assert.rejects(
        withRetry(run, { policy: fast, idempotent: true, deadline: Number.POSITIVE_INFINITY, budget: roomy() }),
        (e: unknown) => e === last,
      );
      assert.deepEqual(attempts, [1, 2, 3]);
    });

    it('maxAttempts 1 means no retry', async () => {
      const { run, attempts } = failing(chassisError('UNAVAILABLE', 'x'));
      await assert.rejects(
        withRetry(run, {
          policy: { ...fast, maxAttempts: 1 },
          idempotent: true,
          deadline: Number.POSITIVE_INFINITY,
          budget: roomy(),
        }),
        { code: 'UNAVAILABLE' },
      );
      assert.deepEqual(attempts, [1]);
    });

    it('an error not worth retrying is thrown at once and spends no budget', async () => {
      const budget = new RetryBudget({ minRetries: 1, ratio: 0 });
      const { run, attempts } = failing(chassisError('NOT_FOUND', 'x'));
      await assert.rejects(
        withRetry(run, { policy: fast, idempotent: true, deadline: Number.POSITIVE_INFINITY, budget }),
        { code: 'NOT_FOUND' },
      );
      assert.deepEqual(attempts, [1]);
      assert.equal(budget.tryRetry(), true, 'the one retry of the budget is still there');
    });

    it('counts one call in the budget per call, not per attempt', async () => {
      const budget = new RetryBudget({ minRetries: 0, ratio: 0.5 });
      for (let i = 0; i < 4; i++) {
        await withRetry(failing().run, { policy: fast, idempotent: true, deadline: Number.POSITIVE_INFINITY, budget });
      }
      // Four calls at 0.5: two retries, and not a third.
      assert.equal(budget.tryRetry(), true);
      assert.equal(budget.tryRetry(), true);
      assert.equal(budget.tryRetry(), false);
    });

    it('stops when the budget is spent, says so, and throws the error it had', async () => {
      const budget = new RetryBudget({ minRetries: 1, ratio: 0 });
      let exhausted = 0;
      const second = chassisError('UNAVAILABLE', 'second');
      const { run, attempts } = failing(chassisError('UNAVAILABLE', 'first'), second);
      await assert.rejects(
        withRetry(run, {
          policy: fast,
          idempotent: true,
          deadline: Number.POSITIVE_INFINITY,
          budget,
          onBudgetExhausted: () => exhausted++,
        }),
        (e: unknown) => e === second,
      );
      assert.deepEqual(attempts, [1, 2]);
      assert.equal(exhausted, 1);
    });

    it('with no hooks given, a spent budget still ends the call with its own error', async () => {
      const budget = new RetryBudget({ minRetries: 0, ratio: 0 });
      const error = chassisError('UNAVAILABLE', 'down');
      const { run, attempts } = failing(error);
      await assert.rejects(
        withRetry(run, { policy: fast, idempotent: true, deadline: Number.POSITIVE_INFINITY, budget }),
        (e: unknown) => e === error,
      );
      assert.deepEqual(attempts, [1]);
    });

    it('does not retry when the wait would reach the deadline, and spends no budget on it', async () => {
      mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
      try {
        mock.method(Math, 'random', () => 1);
        const slow: RetryPolicy = { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 10 };
        const budget = new RetryBudget({ minRetries: 1, ratio: 0 });
        const refused = failing(chassisError('UNAVAILABLE', 'x'));
        // The wait would end exactly at the deadline: no time left for the attempt.
        await assert.rejects(withRetry(refused.run, { policy: slow, idempotent: true, deadline: 1_000_010, budget }), {
          code: 'UNAVAILABLE',
        });
        assert.deepEqual(refused.attempts, [1]);
        assert.equal(budget.tryRetry(), true, 'the budget was not touched');

        const allowed = failing(chassisError('UNAVAILABLE', 'x'));
        const events: RetryEvent[] = [];
        const out = await withRetry(allowed.run, {
          policy: slow,
          idempotent: true,
          deadline: 1_000_011,
          budget: roomy(),
          onRetry: (e) => events.push(e),
        });
        assert.equal(out, 'ok');
        assert.deepEqual(allowed.attempts, [1, 2]);
        assert.deepEqual(
          events.map((e) => e.delayMs),
          [10],
        );
      } finally {
        mock.timers.reset();
      }
    });

    it('waits the delay it announced before the next attempt', async () => {
      mock.method(Math, 'random', () => 1);
      const { run } = failing(chassisError('UNAVAILABLE', 'x'));
      const times: number[] = [];
      const started = performance.now();
      await withRetry(
        async (attempt) => {
          times.push(performance.now() - started);
          return run(attempt);
        },
        {
          policy: { maxAttempts: 2, initialDelayMs: 60, maxDelayMs: 60 },
          idempotent: true,
          deadline: Number.POSITIVE_INFINITY,
          budget: roomy(),
        },
      );
      assert.equal(times.length, 2);
      assert.ok(times[1]! - times[0]! >= 59, `waited ${times[1]! - times[0]!} ms for a 60 ms delay`);
    });

    it('a non-idempotent call is not retried; nonIdempotent lets it be', async () => {
      const once = failing(chassisError('UNAVAILABLE', 'x'));
      await assert.rejects(
        withRetry(once.run, { policy: fast, idempotent: false, deadline: Number.POSITIVE_INFINITY, budget: roomy() }),
        { code: 'UNAVAILABLE' },
      );
      assert.deepEqual(once.attempts, [1]);
      const twice = failing(chassisError('UNAVAILABLE', 'x'));
      await withRetry(twice.run, {
        policy: { ...fast, nonIdempotent: true },
        idempotent: false,
        deadline: Number.POSITIVE_INFINITY,
        budget: roomy(),
      });
      assert.deepEqual(twice.attempts, [1, 2]);
    });
  });
});
