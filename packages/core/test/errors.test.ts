import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChassisError, chassisError, defineError, errorCatalog, isChassisError, toChassisError } from '@chassis/core';
import { noServiceError, timeoutError, transportError } from '@chassis/core/transport';

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

  it('transport errors carry one data shape per code, through the wire, and nothing more', () => {
    const pending = { service: 'orders', action: 'place', timeoutMs: 250, resolve: () => undefined };
    const timeout = ChassisError.fromJSON(JSON.parse(JSON.stringify(timeoutError(pending))));
    assert.deepEqual(
      { code: timeout.code, status: timeout.status, retryable: timeout.retryable, data: timeout.data },
      { code: 'TIMEOUT', status: 504, retryable: true, data: { service: 'orders', action: 'place', timeoutMs: 250 } },
    );
    assert.equal(timeout.message, 'No reply from orders.place within 250 ms');

    const noService = noServiceError(pending, 'nothing subscribes to rpc.orders.place');
    assert.deepEqual(
      { code: noService.code, status: noService.status, retryable: noService.retryable, data: noService.data },
      { code: 'NO_SERVICE', status: 503, retryable: true, data: { service: 'orders', action: 'place' } },
    );
    assert.match(noService.message, /orders.*place.*nothing subscribes to rpc\.orders\.place/);
    assert.match(noServiceError(pending).message, /is it started on some node\?/);

    const cause = new Error('ECONNRESET');
    const lost = transportError('Lost the connection to the broker', { cause });
    assert.deepEqual(
      { code: lost.code, status: lost.status, retryable: lost.retryable, data: lost.data, cause: lost.cause },
      { code: 'TRANSPORT', status: 503, retryable: true, data: undefined, cause },
    );
    assert.equal(transportError('The stream is misconfigured', { retryable: false }).retryable, false);
    assert.equal('data' in lost.toJSON(), false, 'no data reaches the wire, so HTTP clients get no details');
  });
});
