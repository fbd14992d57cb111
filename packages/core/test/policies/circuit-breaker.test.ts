import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { ChassisError, chassisError, defineError } from '../../src/errors.ts';
import {
  type BreakerPolicy,
  type BreakerState,
  CircuitBreaker,
  countsAsFailure,
} from '../../src/policies/circuit-breaker.ts';

/**
 * The breaker on its own, with `Date` mocked: its open period is measured with `Date.now()`,
 * so the open period is stepped through exactly rather than waited out on a loaded machine.
 */

const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });
const ExchangeBusy = defineError('EXCHANGE_BUSY', { status: 503, retryable: true });

/** Errors a healthy service answers with: the caller's mistake or a business rule, never the target's health. */
const refusals = (): ChassisError[] => [
  chassisError('NOT_FOUND', 'No account 101'),
  chassisError('FORBIDDEN', 'Not your account'),
  chassisError('VALIDATION', 'symbol is required'),
  chassisError('CONFLICT', 'Order already placed'),
  chassisError('UNAUTHENTICATED', 'No token'),
  InsufficientShares('Account 101 holds 10 BHP'),
];

/** Errors that say the target is unwell. */
const unwell = (): unknown[] => [
  chassisError('UNAVAILABLE', 'exchange outage'),
  chassisError('TIMEOUT', 'too slow'),
  chassisError('TRANSPORT', 'connection reset'),
  chassisError('NO_SERVICE', 'nobody listens'),
  chassisError('INTERNAL', 'bug'),
  ExchangeBusy('busy'),
  new Error('a plain error from a client library'),
  'a thrown string',
];

function makeBreaker(settings: BreakerPolicy, target = 'market-data.getPrice') {
  const states: BreakerState[] = [];
  const breaker = new CircuitBreaker(target, settings, (state) => states.push(state));
  let runs = 0;
  const fail = (error: unknown) =>
    breaker.execute(async () => {
      runs++;
      throw error;
    });
  const succeed = () =>
    breaker.execute(async () => {
      runs++;
      return 'ok';
    });
  return { breaker, states, fail, succeed, runs: () => runs };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ChassisError, `expected a ChassisError, got ${String(error)}`);
  return error.code;
}

const consecutive = (failures: number, openMs = 1000): BreakerPolicy => ({ kind: 'consecutive', failures, openMs });

describe('circuit breaker', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  describe('countsAsFailure', () => {
    for (const error of refusals()) {
      it(`a ${error.code} refusal does not count`, () => {
        assert.equal(countsAsFailure(error), false);
      });
    }
    for (const error of unwell()) {
      const name = error instanceof ChassisError ? error.code : typeof error === 'string' ? 'thrown string' : 'Error';
      it(`${name} counts`, () => {
        assert.equal(countsAsFailure(error), true);
      });
    }
    it('CIRCUIT_OPEN from a breaker further down does not count, though it is retryable', () => {
      assert.equal(countsAsFailure(chassisError('CIRCUIT_OPEN', 'open downstream')), false);
    });
    it('a retryable domain error counts; the same code made non-retryable does not', () => {
      assert.equal(countsAsFailure(new ChassisError('EXCHANGE_BUSY', 'busy', { retryable: true })), true);
      assert.equal(countsAsFailure(new ChassisError('EXCHANGE_BUSY', 'busy', { retryable: false })), false);
    });
  });

  describe('consecutive', () => {
    it('domain refusals never open it: every call reaches the target', async () => {
      const b = makeBreaker(consecutive(3));
      for (let round = 0; round < 5; round++) {
        for (const error of refusals()) assert.equal(await codeOf(b.fail(error)), error.code);
      }
      assert.equal(b.runs(), 5 * refusals().length);
      assert.equal(b.breaker.state, 'closed');
      assert.deepEqual(b.states, []);
      b.breaker.failFastIfOpen();
    });

    it('CIRCUIT_OPEN answers from further down never open it', async () => {
      const b = makeBreaker(consecutive(2));
      for (let i = 0; i < 5; i++) {
        assert.equal(await codeOf(b.fail(chassisError('CIRCUIT_OPEN', 'open downstream'))), 'CIRCUIT_OPEN');
      }
      assert.equal(b.runs(), 5);
      assert.equal(b.breaker.state, 'closed');
    });

    it('opens on exactly the threshold-th unwell failure, not before', async () => {
      const b = makeBreaker(consecutive(3));
      assert.equal(await codeOf(b.fail(chassisError('UNAVAILABLE', 'down'))), 'UNAVAILABLE');
      assert.equal(await codeOf(b.fail(chassisError('TIMEOUT', 'slow'))), 'TIMEOUT');
      assert.equal(b.breaker.state, 'closed');
      await assert.rejects(b.fail(new Error('socket hang up')), /socket hang up/);
      assert.equal(b.breaker.state, 'open');
      assert.deepEqual(b.states, ['open']);
      assert.equal(b.runs(), 3);
    });

    it('every kind of unwell error opens it', async () => {
      for (const error of unwell()) {
        const b = makeBreaker(consecutive(2));
        await b.fail(error).catch(() => undefined);
        await b.fail(error).catch(() => undefined);
        assert.equal(b.breaker.state, 'open', `${String(error)} opens the breaker`);
      }
    });

    it('a success in between resets the count', async () => {
      const b = makeBreaker(consecutive(2));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      await b.succeed();
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open');
    });

    it('while open, calls fail fast with CIRCUIT_OPEN, its target and the time to the next probe, without running', async () => {
      const b = makeBreaker(consecutive(1, 400));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(150);
      const error = await b.succeed().catch((e: unknown) => e);
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'CIRCUIT_OPEN');
      assert.equal(error.status, 503);
      assert.equal(error.retryable, true);
      assert.deepEqual(error.data, { target: 'market-data.getPrice', retryAfterMs: 250 });
      assert.match(error.message, /market-data\.getPrice/);
      assert.match(error.message, /250 ms/);
      assert.equal(b.runs(), 1, 'the open breaker kept the call from the target');
    });

    it('stays open until openMs has passed, then lets one probe through; its success closes it', async () => {
      const b = makeBreaker(consecutive(2, 400));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(399);
      assert.equal(await codeOf(b.succeed()), 'CIRCUIT_OPEN');
      assert.equal(b.runs(), 2);
      mock.timers.tick(1);
      assert.equal(await b.succeed(), 'ok');
      assert.equal(b.runs(), 3);
      assert.equal(b.breaker.state, 'closed');
      assert.deepEqual(b.states, ['open', 'half-open', 'closed']);
      // Closed again: a single failure does not reopen a breaker that needs two.
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed');
    });

    it('while the probe runs, other calls fail fast instead of waiting behind it', async () => {
      const b = makeBreaker(consecutive(1, 100));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(100);
      let release!: () => void;
      const probe = b.breaker.execute(
        () =>
          new Promise<string>((resolve) => {
            release = () => resolve('probe');
          }),
      );
      assert.equal(b.breaker.state, 'half-open');
      const waiting = await b.succeed().catch((e: unknown) => e);
      assert.ok(waiting instanceof ChassisError);
      assert.equal(waiting.code, 'CIRCUIT_OPEN');
      // The open period is counted from when the breaker opened, not restarted by the probe.
      assert.equal((waiting.data as { retryAfterMs: number }).retryAfterMs, 0);
      assert.equal(await codeOf(b.succeed()), 'CIRCUIT_OPEN');
      assert.equal(b.runs(), 1, 'no call but the probe reached the target');
      release();
      assert.equal(await probe, 'probe');
      assert.equal(b.breaker.state, 'closed');
      assert.equal(await b.succeed(), 'ok');
    });

    it('while closed, calls run side by side', async () => {
      const b = makeBreaker(consecutive(1));
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let running = 0;
      const slow = () =>
        b.breaker.execute(async () => {
          running++;
          await released;
          return 'ok';
        });
      const calls = [slow(), slow(), slow()];
      await Promise.resolve();
      assert.equal(running, 3);
      release();
      assert.deepEqual(await Promise.all(calls), ['ok', 'ok', 'ok']);
    });

    it('a call begun before the breaker opened, ending during the probe, does not let others past the probe', async () => {
      const b = makeBreaker(consecutive(1, 100));
      let finishEarly!: () => void;
      const early = b.breaker.execute(
        () =>
          new Promise<string>((resolve) => {
            finishEarly = () => resolve('early');
          }),
      );
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open');
      mock.timers.tick(100);
      let finishProbe!: () => void;
      const probe = b.breaker.execute(
        () =>
          new Promise<string>((resolve) => {
            finishProbe = () => resolve('probe');
          }),
      );
      finishEarly();
      assert.equal(await early, 'early');
      assert.equal(await codeOf(b.succeed()), 'CIRCUIT_OPEN', 'still only the probe may go through');
      assert.equal(b.runs(), 1);
      finishProbe();
      assert.equal(await probe, 'probe');
      assert.equal(b.breaker.state, 'closed');
    });

    it('a call begun before the breaker opened and failing while it is open does not restart the open period', async () => {
      const b = makeBreaker(consecutive(1, 100));
      let failEarly!: () => void;
      const early = b.breaker.execute(
        () =>
          new Promise<string>((_resolve, reject) => {
            failEarly = () => reject(chassisError('UNAVAILABLE', 'down as well'));
          }),
      );
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(60);
      failEarly();
      assert.equal(await codeOf(early), 'UNAVAILABLE');
      assert.deepEqual(b.states, ['open'], 'opened once, not again');
      assert.throws(
        () => b.breaker.failFastIfOpen(),
        (e: unknown) => e instanceof ChassisError && (e.data as { retryAfterMs: number }).retryAfterMs === 40,
      );
      mock.timers.tick(40);
      assert.equal(await b.succeed(), 'ok', 'the probe is due when the first failure said');
    });

    it('a failing probe opens it again for a fresh open period', async () => {
      const b = makeBreaker(consecutive(1, 200));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(200);
      assert.equal(await codeOf(b.fail(chassisError('TIMEOUT', 'still slow'))), 'TIMEOUT');
      assert.equal(b.breaker.state, 'open');
      assert.deepEqual(b.states, ['open', 'half-open', 'open']);
      mock.timers.tick(199);
      assert.throws(() => b.breaker.failFastIfOpen(), { code: 'CIRCUIT_OPEN' });
      assert.equal(await codeOf(b.succeed()), 'CIRCUIT_OPEN');
      assert.equal(b.runs(), 2);
      mock.timers.tick(1);
      assert.equal(await b.succeed(), 'ok');
      assert.equal(b.breaker.state, 'closed');
    });

    it('a probe answered with a domain refusal closes it: the target is well enough to refuse', async () => {
      const b = makeBreaker(consecutive(1, 100));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(100);
      assert.equal(await codeOf(b.fail(chassisError('NOT_FOUND', 'No account 101'))), 'NOT_FOUND');
      assert.equal(b.breaker.state, 'closed');
    });

    it('failFastIfOpen throws only while open and inside the open period, and never counts as a probe', async () => {
      const b = makeBreaker(consecutive(1, 300));
      b.breaker.failFastIfOpen();
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(100);
      assert.throws(
        () => b.breaker.failFastIfOpen(),
        (e: unknown) =>
          e instanceof ChassisError &&
          e.code === 'CIRCUIT_OPEN' &&
          (e.data as { retryAfterMs: number }).retryAfterMs === 200,
      );
      mock.timers.tick(199);
      assert.throws(() => b.breaker.failFastIfOpen(), { code: 'CIRCUIT_OPEN' });
      mock.timers.tick(1);
      b.breaker.failFastIfOpen();
      // It did not start a probe: the breaker is still open until a call goes through.
      assert.equal(b.breaker.state, 'open');
      assert.equal(await b.succeed(), 'ok');
      assert.equal(b.breaker.state, 'closed');
    });

    it('a call that returns passes its value through, and a refusal its error, unchanged', async () => {
      const b = makeBreaker(consecutive(1));
      const value = { symbol: 'BHP', price: '91.72' };
      assert.equal(await b.breaker.execute(async () => value), value);
      const refusal = chassisError('NOT_FOUND', 'No account 101');
      await assert.rejects(b.fail(refusal), (e: unknown) => e === refusal);
    });
  });

  describe('ratio', () => {
    const ratio = (minThroughput: number): BreakerPolicy => ({
      kind: 'ratio',
      threshold: 0.5,
      windowMs: 10_000,
      minThroughput,
      openMs: 1000,
    });

    it('does not open below minThroughput calls, however many of them fail', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 3; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open');
    });

    it('opens only when failures exceed the threshold, not when they equal it', async () => {
      const b = makeBreaker(ratio(4));
      await b.succeed();
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      await b.succeed();
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', '2 of 4 is not more than half');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open', '3 of 5 is');
    });

    it('domain refusals neither open it nor count as failures in the ratio', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 20; i++) await b.fail(chassisError('FORBIDDEN', 'not yours')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed');
      assert.equal(b.runs(), 20);
    });

    it('the window slides bucket by bucket', async () => {
      const b = makeBreaker(ratio(4));
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(5000);
      await b.succeed();
      await b.succeed();
      assert.equal(b.breaker.state, 'closed');
      // The two failures at 0 s leave the window at 10 s; the two successes at 5 s are still in it.
      mock.timers.tick(5000);
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', '2 failures of 4 in the window');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open', '3 of 5');
    });

    it('calls made at the same instant all count, however many', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 12; i++) await b.succeed();
      for (let i = 0; i < 12; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', '12 failures of 24 is not more than half');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open', '13 of 25 is');
    });

    it('after a long quiet spell, the calls that follow it all count', async () => {
      const b = makeBreaker(ratio(4));
      mock.timers.tick(60_000);
      for (let i = 0; i < 4; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open');
    });

    it('calls closer together than a bucket still move the window on', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 3; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      for (let i = 0; i < 12; i++) {
        mock.timers.tick(900);
        await b.succeed();
      }
      // At 10.8 s the window holds the successes from 1.8 s on (11) and none of the failures at 0 s.
      for (let i = 0; i < 11; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', '11 failures of 22');
      await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open', '12 of 23');
    });

    it('a successful probe starts the count afresh', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 4; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'open');
      mock.timers.tick(1000);
      await b.succeed();
      assert.equal(b.breaker.state, 'closed');
      for (let i = 0; i < 2; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', 'the four failures before the probe no longer count');
    });

    it('a failing probe opens it again', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 4; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(1000);
      await b.fail(chassisError('TIMEOUT', 'still slow')).catch(() => undefined);
      assert.deepEqual(b.states, ['open', 'half-open', 'open']);
    });

    it('failures older than the window no longer count', async () => {
      const b = makeBreaker(ratio(4));
      for (let i = 0; i < 3; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      mock.timers.tick(11_000);
      for (let i = 0; i < 3; i++) await b.fail(chassisError('UNAVAILABLE', 'down')).catch(() => undefined);
      assert.equal(b.breaker.state, 'closed', 'three in the window are fewer than minThroughput');
    });
  });
});
