import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { action } from '../../src/contracts.ts';
import { Header } from '../../src/envelope.ts';
import { ChassisError } from '../../src/errors.ts';
import { eventDeadline, isPast, remainingMs, requestDeadline, timeLeft } from '../../src/node/deadline.ts';

// Deadline arithmetic on this node's clock, at the millisecond each rule turns.

const now = 1_000_000;
const message = (headers: Record<string, string>) => ({ headers, body: new Uint8Array() });
const getOrder = action('orders.get_order', { input: z.object({}), output: z.object({}) });

describe('deadlines (pure)', () => {
  it('a deadline is past at its own millisecond', () => {
    assert.equal(isPast(now + 1, now), false);
    assert.equal(isPast(now, now), true);
    assert.equal(isPast(now - 1, now), true);
  });

  it('the time remaining never goes below zero', () => {
    assert.equal(remainingMs(now + 250, now), 250);
    assert.equal(remainingMs(now, now), 0);
    assert.equal(remainingMs(now - 250, now), 0);
  });

  it("a served request's deadline counts timeout-ms from when it was received, not the sender's clock", () => {
    const receivedAt = now;
    assert.equal(requestDeadline(message({ [Header.timeoutMs]: '300' }), receivedAt, 5000), now + 300);
    assert.equal(
      requestDeadline(
        message({ [Header.timeoutMs]: '300', [Header.deadline]: String(now - 10_000) }),
        receivedAt,
        5000,
      ),
      now + 300,
      'timeout-ms wins over an absolute deadline',
    );
    assert.equal(requestDeadline(message({ [Header.timeoutMs]: '0' }), receivedAt, 5000), now, 'no time left');
  });

  it('a request from an older node keeps its absolute deadline; one with neither gets the fallback', () => {
    assert.equal(requestDeadline(message({ [Header.deadline]: String(now + 700) }), now, 5000), now + 700);
    assert.equal(requestDeadline(message({}), now, 5000), now + 5000);
    assert.equal(requestDeadline(message({ [Header.timeoutMs]: 'soon' }), now, 5000), now + 5000);
  });

  it("an event attempt's deadline is its handler's timeout, cut short by the event's own deadline", () => {
    assert.equal(eventDeadline(now, 30_000, undefined), now + 30_000);
    assert.equal(eventDeadline(now, 30_000, now + 500), now + 500);
    assert.equal(eventDeadline(now, 200, now + 500), now + 200);
  });

  it('a hop may wait whatever is left of the deadline, and none starts once nothing is', () => {
    assert.equal(timeLeft(getOrder, now + 120, 1, now), 120);
    assert.equal(timeLeft(getOrder, Number.POSITIVE_INFINITY, 1, now), Number.POSITIVE_INFINITY);
    for (const deadline of [now, now - 1]) {
      assert.throws(
        () => timeLeft(getOrder, deadline, 2, now),
        (error: unknown) =>
          error instanceof ChassisError &&
          error.code === 'TIMEOUT' &&
          error.message === 'The deadline passed before attempt 2 at orders.get_order' &&
          JSON.stringify(error.data) === JSON.stringify({ service: 'orders', action: 'get_order', timeoutMs: 0 }),
      );
    }
  });
});
