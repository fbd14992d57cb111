import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChassisError, chassisError, defineError } from '../../src/errors.ts';
import { applyFallback, canFallBack, type Fallback } from '../../src/policies/fallback.ts';

describe('fallback', () => {
  describe('canFallBack', () => {
    it('failures of the target fall back: retryable errors and INTERNAL', () => {
      for (const code of [
        'UNAVAILABLE',
        'TIMEOUT',
        'NO_SERVICE',
        'TRANSPORT',
        'CIRCUIT_OPEN',
        'BULKHEAD_FULL',
      ] as const) {
        assert.equal(canFallBack(chassisError(code, 'x')), true, code);
      }
      assert.equal(canFallBack(chassisError('INTERNAL', 'bug')), true);
      assert.equal(canFallBack(new ChassisError('INTERNAL', 'bug', { retryable: false })), true);
      assert.equal(canFallBack(new ChassisError('EXCHANGE_BUSY', 'busy', { retryable: true })), true);
    });

    it("the caller's mistakes and domain refusals do not: the caller must hear about them", () => {
      for (const code of [
        'VALIDATION',
        'BAD_MESSAGE',
        'UNAUTHENTICATED',
        'FORBIDDEN',
        'NOT_FOUND',
        'CONFLICT',
      ] as const) {
        assert.equal(canFallBack(chassisError(code, 'x')), false, code);
      }
      const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });
      assert.equal(canFallBack(InsufficientShares('only 10 BHP')), false);
      assert.equal(canFallBack(new ChassisError('UNAVAILABLE', 'x', { retryable: false })), false);
    });

    it('only ChassisErrors: something merely shaped like one does not fall back', () => {
      assert.equal(canFallBack(new Error('boom')), false);
      assert.equal(canFallBack(Object.assign(new Error('x'), { code: 'INTERNAL', retryable: true })), false);
      assert.equal(canFallBack({ code: 'UNAVAILABLE', retryable: true }), false);
      assert.equal(canFallBack(undefined), false);
    });
  });

  describe('applyFallback', () => {
    const error = chassisError('UNAVAILABLE', 'down');

    it('a fixed value is answered as it is', async () => {
      const value = { symbol: 'BHP', price: 'unknown' };
      assert.equal(await applyFallback({ value }, error, { symbol: 'BHP' }), value);
    });

    it('a function gets the error and the input', async () => {
      const fallback: Fallback<{ symbol: string }, string> = (e, input) => `${input.symbol}: ${e.code}`;
      assert.equal(await applyFallback(fallback, error, { symbol: 'BHP' }), 'BHP: UNAVAILABLE');
    });

    it('an async function is awaited, and its failure is the call’s', async () => {
      assert.equal(await applyFallback(async () => 'later', error, {}), 'later');
      await assert.rejects(
        applyFallback(
          async () => {
            throw new Error('no cached copy either');
          },
          error,
          {},
        ),
        /no cached copy either/,
      );
    });
  });
});
