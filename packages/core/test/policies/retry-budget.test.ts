import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget, type RetryBudgetOptions } from '../../src/policies/retry-budget.ts';

/** A budget on a clock the test moves by hand. */
function budgetAt(options: RetryBudgetOptions, start = 50_000) {
  let now = start;
  const budget = new RetryBudget(options, () => now);
  return {
    budget,
    /** Moves the clock to `ms` after the start. */
    at(ms: number) {
      now = start + ms;
    },
    calls(n: number) {
      for (let i = 0; i < n; i++) budget.recordCall();
    },
    /** Takes retries until refused (at most `limit`) and says how many were granted. */
    drain(limit = 10_000) {
      let granted = 0;
      while (granted < limit && budget.tryRetry()) granted++;
      return granted;
    },
  };
}

describe('retry budget', () => {
  it('defaults: 20% of calls, a 10 s window, at least 10 retries', () => {
    const budget = new RetryBudget();
    assert.equal(budget.ratio, 0.2);
    assert.equal(budget.windowMs, 10_000);
    assert.equal(budget.minRetries, 10);
  });

  it('a quiet service may still retry minRetries times, and not once more', () => {
    const b = budgetAt({ minRetries: 3 });
    assert.equal(b.drain(), 3);
    assert.equal(b.budget.tryRetry(), false);
  });

  it('with no floor and no calls, nothing may be retried', () => {
    const b = budgetAt({ minRetries: 0 });
    assert.equal(b.budget.tryRetry(), false);
  });

  it('allows ratio × calls, rounded down', () => {
    const b = budgetAt({ ratio: 0.2, minRetries: 0 });
    b.calls(9);
    assert.equal(b.drain(), 1, 'floor(9 × 0.2) = 1');
    b.calls(1);
    assert.equal(b.drain(), 1, 'floor(10 × 0.2) = 2, one already taken');
    b.calls(90);
    assert.equal(b.drain(), 18, 'floor(100 × 0.2) = 20');
  });

  it('the larger of the floor and the ratio, not their sum', () => {
    const busy = budgetAt({ ratio: 0.2, minRetries: 10 });
    busy.calls(100);
    assert.equal(busy.drain(), 20);
    const quiet = budgetAt({ ratio: 0.2, minRetries: 10 });
    quiet.calls(20);
    assert.equal(quiet.drain(), 10);
  });

  it('a refused retry takes nothing from the budget', () => {
    const b = budgetAt({ ratio: 0.5, minRetries: 0 });
    b.calls(4);
    assert.equal(b.drain(), 2);
    for (let i = 0; i < 5; i++) assert.equal(b.budget.tryRetry(), false);
    b.calls(2);
    assert.equal(b.drain(), 1, 'floor(6 × 0.5) = 3, two taken');
  });

  it('the budget recovers once the window has slid past the retries that spent it', () => {
    const b = budgetAt({ windowMs: 1000, minRetries: 5, ratio: 0 });
    assert.equal(b.drain(), 5);
    b.at(999);
    assert.equal(b.budget.tryRetry(), false, 'still inside the window');
    b.at(1000);
    assert.equal(b.drain(), 5, 'the window has slid past them');
    assert.equal(b.budget.tryRetry(), false);
  });

  it('the window slides bucket by bucket: only the retries older than the window come back', () => {
    // Ten buckets of 100 ms.
    const b = budgetAt({ windowMs: 1000, minRetries: 4, ratio: 0 });
    assert.equal(b.drain(2), 2);
    b.at(500);
    assert.equal(b.drain(2), 2);
    b.at(999);
    assert.equal(b.budget.tryRetry(), false);
    b.at(1000);
    assert.equal(b.drain(), 2, 'the two taken at 0 ms are out of the window; the two at 500 ms are not');
    b.at(1499);
    assert.equal(b.budget.tryRetry(), false);
    b.at(1500);
    assert.equal(b.drain(), 2, 'now the two taken at 500 ms are out too');
  });

  it('calls slide out of the window too: a burst of traffic long ago buys no retries now', () => {
    const b = budgetAt({ windowMs: 1000, minRetries: 0, ratio: 0.5 });
    b.calls(100);
    b.at(1000);
    assert.equal(b.budget.tryRetry(), false);
    b.calls(4);
    assert.equal(b.drain(), 2);
  });

  it('after a long quiet spell the buckets start again from now', () => {
    const b = budgetAt({ windowMs: 1000, minRetries: 3, ratio: 0 });
    b.at(5050);
    assert.equal(b.drain(), 3);
    // Buckets are counted from 5050 ms: the retries just taken stay in the window for a full 1000 ms…
    b.at(6049);
    assert.equal(b.budget.tryRetry(), false);
    // …and leave it once it has passed.
    b.at(6050);
    assert.equal(b.drain(), 3);
  });

  it('after a quiet spell of exactly eleven buckets, the window still starts from now', () => {
    const b = budgetAt({ windowMs: 1000, minRetries: 3, ratio: 0 });
    b.at(1100);
    assert.equal(b.drain(), 3);
    b.at(2099);
    assert.equal(b.budget.tryRetry(), false, 'all three were taken at 1100 ms');
    b.at(2100);
    assert.equal(b.drain(), 3);
  });

  it('a long window slides the same way, at its own length', () => {
    const b = budgetAt({ windowMs: 60_000, minRetries: 1, ratio: 0 });
    assert.equal(b.drain(), 1);
    b.at(59_999);
    assert.equal(b.budget.tryRetry(), false);
    b.at(60_000);
    assert.equal(b.drain(), 1);
  });

  it('a call counted on a reading older than the window has moved to (its own, taken before a long handler) does not slide the window back', () => {
    const b = budgetAt({ ratio: 0.2, windowMs: 10_000, minRetries: 0 });
    b.calls(100);
    b.at(5_000);
    b.calls(1);
    // Read at 1 s, counted after the window had moved to 5 s.
    b.budget.recordCall(50_000 + 1_000);
    b.at(9_500);
    b.calls(1);
    // The 100 calls of 0 s are still in the 10 s window: 20% of 103.
    assert.equal(b.drain(), 20);
  });

  it('on the real clock, with the default clock: a small window recovers after it has passed', async () => {
    const budget = new RetryBudget({ windowMs: 100, minRetries: 1, ratio: 0 });
    assert.equal(budget.tryRetry(), true);
    assert.equal(budget.tryRetry(), false);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(budget.tryRetry(), true);
  });
});
