import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChassisError } from '../../src/errors.ts';
import { HandlerTimeout } from '../../src/node/deadline.ts';
import { dispositionOf, failureReason, lostTooOften, redeliveryDelay } from '../../src/node/disposition.ts';

// The fate of a failed event, decided apart from the transport that carries it out.

const limits = { maxDeliveries: 3, redelivery: { initialDelayMs: 100, maxDelayMs: 1000 } };

/** The delay a retry disposition carries; fails the test on any other disposition. */
function delayOf(disposition: ReturnType<typeof dispositionOf>): number {
  assert.equal(disposition.kind, 'retry', JSON.stringify(disposition));
  return disposition.kind === 'retry' ? disposition.delayMs : Number.NaN;
}

describe('event disposition (pure)', () => {
  it('an event lost maxDeliveries times with its consumer is dead-lettered before its handler runs again', () => {
    assert.equal(lostTooOften(undefined, 3), undefined, 'a transport that cannot count leaves it to the handler');
    assert.equal(lostTooOften(0, 3), undefined);
    assert.equal(lostTooOften(2, 3), undefined);
    assert.deepEqual(lostTooOften(3, 3), {
      kind: 'dead',
      reason: 'delivered 3 times without an outcome; its handler may be crashing the process',
    });
  });

  it('a bug is redelivered with a growing delay until its last attempt, then dead-lettered', () => {
    const bug = new Error('boom');
    const first = delayOf(dispositionOf(bug, 1, limits));
    assert.ok(first >= 50 && first <= 100, `first ${first}`);
    const second = delayOf(dispositionOf(bug, 2, limits));
    assert.ok(second >= 100 && second <= 200, `second ${second}`);
    assert.deepEqual(dispositionOf(bug, 3, limits), {
      kind: 'dead',
      reason: 'failed 3 times; last error INTERNAL: boom',
    });
    assert.equal(dispositionOf(bug, 4, limits).kind, 'dead', 'past the limit too');
  });

  it('something thrown that is not an Error counts as a bug, read by its string', () => {
    assert.deepEqual(dispositionOf('nope', 3, limits), {
      kind: 'dead',
      reason: 'failed 3 times; last error INTERNAL: nope',
    });
  });

  it('an error that is not retryable is dead-lettered at once, whatever the attempt', () => {
    const invalid = new ChassisError('VALIDATION', 'bad amount');
    assert.deepEqual(dispositionOf(invalid, 1, limits), {
      kind: 'dead',
      reason: 'failed permanently (VALIDATION: bad amount)',
    });
  });

  it('a retryable error waits for the dependency however many attempts it takes', () => {
    const unavailable = new ChassisError('UNAVAILABLE', 'breaker open');
    for (const attempt of [1, 3, 50, 10_000]) {
      const delay = delayOf(dispositionOf(unavailable, attempt, limits));
      assert.ok(delay >= 0 && delay <= 1000, `attempt ${attempt}: ${delay}`);
    }
  });

  it("a retryable error comes back no sooner than its retryAfterMs, and no sooner than the backoff's", () => {
    const limited = new ChassisError('RATE_LIMITED', 'slow down', { data: { retryAfterMs: 5000 } });
    assert.equal(delayOf(dispositionOf(limited, 1, limits)), 5000);
    const soon = new ChassisError('RATE_LIMITED', 'slow down', { data: { retryAfterMs: 1 } });
    assert.ok(delayOf(dispositionOf(soon, 5, limits)) >= 500, 'the backoff of attempt 5 is at least half of 1000');
    const unreadable = new ChassisError('RATE_LIMITED', 'slow down', { data: { retryAfterMs: 'soon' } });
    assert.ok(delayOf(dispositionOf(unreadable, 1, limits)) <= 100, 'an unreadable retryAfterMs is ignored');
  });

  it("the handler's own timeout counts against its attempts, unlike a dependency's", () => {
    const own = new HandlerTimeout('the deadline passed');
    assert.equal(dispositionOf(own, 2, limits).kind, 'retry');
    assert.deepEqual(dispositionOf(own, 3, limits), {
      kind: 'dead',
      reason: 'failed 3 times; last error TIMEOUT: the deadline passed',
    });
    const dependency = new ChassisError('TIMEOUT', 'no reply');
    assert.equal(dispositionOf(dependency, 3, limits).kind, 'retry');
  });

  it('a failure reads as its code and message', () => {
    assert.equal(failureReason(new ChassisError('CONFLICT', 'taken')), 'CONFLICT: taken');
    assert.equal(failureReason(new TypeError('x is undefined')), 'INTERNAL: x is undefined');
  });
});

describe('redelivery delay', () => {
  const settings = { initialDelayMs: 100, maxDelayMs: 1000 };

  it('doubles per attempt within the upper half of its ceiling', () => {
    for (let i = 0; i < 50; i++) {
      const third = redeliveryDelay(3, settings);
      assert.ok(third >= 200 && third <= 400, `third ${third}`);
    }
  });

  it('stops growing at the cap', () => {
    for (const attempt of [5, 10, 16, 1000]) {
      const delay = redeliveryDelay(attempt, settings);
      assert.ok(delay >= 500 && delay <= 1000, `attempt ${attempt}: ${delay}`);
    }
  });
});
