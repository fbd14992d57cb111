import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChassisError, chassisError, defineError, errorCatalog, isChassisError, toChassisError } from '@chassis/core';

describe('errors', () => {
  it('catalog codes carry their HTTP status and retryable flag', () => {
    const timeout = chassisError('TIMEOUT', 'too slow');
    assert.equal(timeout.status, 504);
    assert.equal(timeout.retryable, true);
    assert.equal(chassisError('VALIDATION', 'bad').status, 400);
    assert.equal(errorCatalog.NO_SERVICE.retryable, true);
  });

  it('domain errors keep code, status, data and retryable through JSON', () => {
    const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });
    const error = InsufficientShares('Account 101 has 10 BHP free; 20 requested', { free: 10 });
    const back = ChassisError.fromJSON(JSON.parse(JSON.stringify(error)));
    assert.ok(InsufficientShares.is(back));
    assert.deepEqual(
      { code: back.code, status: back.status, retryable: back.retryable, data: back.data, message: back.message },
      {
        code: 'INSUFFICIENT_SHARES',
        status: 409,
        retryable: false,
        data: { free: 10 },
        message: 'Account 101 has 10 BHP free; 20 requested',
      },
    );
  });

  it('anything else thrown becomes INTERNAL with its message; unreadable replies become BAD_MESSAGE', () => {
    const internal = toChassisError(new TypeError('x is undefined'));
    assert.equal(internal.code, 'INTERNAL');
    assert.equal(internal.message, 'x is undefined');
    assert.equal(toChassisError('boom').message, 'boom');
    assert.equal(ChassisError.fromJSON('nonsense').code, 'BAD_MESSAGE');
    assert.ok(isChassisError(internal, 'INTERNAL'));
    assert.ok(!isChassisError(new Error('plain')));
  });
});
