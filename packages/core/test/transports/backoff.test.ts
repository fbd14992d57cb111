import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay } from '../../src/transports/shared/backoff.ts';

const bounds = { initialDelayMs: 250, maxDelayMs: 4_000 };
const top = () => 1;

describe('backoffDelay', () => {
  it('doubles its ceiling each attempt from initialDelayMs, counting attempts from 1', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, bounds, top)),
      [250, 500, 1_000, 2_000, 4_000],
    );
  });

  it('never goes above maxDelayMs, however many attempts, and never overflows to NaN', () => {
    for (const attempt of [6, 31, 1_100, Number.MAX_SAFE_INTEGER]) {
      assert.equal(backoffDelay(attempt, bounds, top), 4_000);
    }
  });

  it('draws the whole range from 0 to the ceiling (full jitter), in whole milliseconds', () => {
    assert.equal(
      backoffDelay(3, bounds, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(3, bounds, () => 0.5),
      500,
    );
    assert.equal(
      backoffDelay(1, { initialDelayMs: 3, maxDelayMs: 10 }, () => 0.49),
      1,
    );
    const delays = Array.from({ length: 400 }, () => backoffDelay(4, bounds));
    assert.ok(delays.every((delay) => Number.isInteger(delay) && delay >= 0 && delay <= 2_000));
    assert.ok(delays.some((delay) => delay < 500) && delays.some((delay) => delay > 1_500), 'spread over the range');
  });

  it('with a floor share, every delay waits at least that share of the ceiling (redeliveries use ½)', () => {
    const floored = { ...bounds, floorShare: 0.5 };
    assert.equal(
      backoffDelay(3, floored, () => 0),
      500,
      'the least draw waits half the ceiling',
    );
    assert.equal(backoffDelay(3, floored, top), 1_000, 'the most, the ceiling');
    assert.equal(
      backoffDelay(3, floored, () => 0.5),
      750,
    );
    assert.equal(
      backoffDelay(1_000, floored, () => 0),
      2_000,
      'half of the cap once capped',
    );
  });

  it('treats an attempt below 1 as the first', () => {
    assert.equal(backoffDelay(0, bounds, top), 250);
  });
});
