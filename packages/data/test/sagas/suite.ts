import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError } from '@chassis/core';
import { Database, defineSaga, type SagaInstance, SagaRunner, sql } from '@chassis/data';
import { type DatabaseTarget, typescriptArgs, waitUntil } from '@chassis/testing';
import { z } from 'zod';
import { ChargeFailed, FakeBank, investmentSaga, sellOrderSaga } from './bank.ts';
import { CRASH_SAGA, EXPECTED_BOUNDARIES, feeFails, STEPS } from './crash-saga.ts';
import { gate, order, sagaNodes, trace } from './fixtures.ts';

/** Orchestrated sagas, the same on PGlite and PostgreSQL. */
export function sagaSuite(target: DatabaseTarget): void {
  describe(`orchestrated sagas: ${target.name}`, { skip: target.skip }, () => {
    const { setup, close } = sagaNodes(target, 'bank');
    after(async () => {
      await close();
      await target.cleanup();
    });

    it(`[${target.name}] a sell order runs its steps in order, once each, and merges what they return`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const { runner } = await setup([saga]);
      const id = await runner.start(saga, order('o-1'), { id: 'o-1' });
      assert.equal(id, 'o-1');
      const done = await runner.wait(id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.data, { ...order('o-1'), exchangeOrderId: 'X-o-1:place_order', feeCents: 100 });
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', 'place o-1:place_order', 'charge o-1:charge_fee 100']);
      assert.deepEqual(trace(done.history), [
        'saga_created',
        'step_started reserve_shares 1',
        'step_completed reserve_shares 1',
        'step_started place_order 1',
        'step_completed place_order 1',
        'step_started charge_fee 1',
        'step_completed charge_fee 1',
        'saga_completed',
      ]);
      assert.ok(done.history.every((entry) => entry.node === runner.nodeId && entry.at instanceof Date));
      assert.equal(done.currentStep, undefined);
      assert.equal(done.owner, undefined, 'a finished instance is held by no node');

      assert.equal(await runner.start(saga, order('o-1', 99), { id: 'o-1' }), 'o-1', 'starting it again is a no-op');
      await sleep(50);
      assert.equal((await runner.get('o-1'))?.history.length, 8);
      assert.equal(bank.calls.length, 3);
    });

    it(`[${target.name}] a failing step: compensations run in reverse order, the failed step's first, each once`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank, {
        // Charged, then the fees service answers with a refusal: the charge must be refunded.
        after: { charge_fee: async () => Promise.reject(ChargeFailed('Card declined for the fee')) },
      });
      const { runner } = await setup([saga]);
      const done = await runner.wait(await runner.start(saga, order('o-2'), { id: 'o-2' }));
      assert.equal(done.status, 'compensated');
      assert.deepEqual(done.error, { code: 'CHARGE_FAILED', message: 'Card declined for the fee' });
      assert.deepEqual(bank.effects, [
        'reserve 101 BHP 10',
        'place o-2:place_order',
        'charge o-2:charge_fee 100',
        'refund o-2:charge_fee',
        'cancel o-2:place_order',
        'release o-2:reserve_shares',
      ]);
      assert.deepEqual(trace(done.history).slice(5), [
        'step_started charge_fee 1',
        'step_failed charge_fee 1',
        'compensation_started charge_fee 1',
        'compensation_completed charge_fee 1',
        'compensation_started place_order 1',
        'compensation_completed place_order 1',
        'compensation_started reserve_shares 1',
        'compensation_completed reserve_shares 1',
        'saga_compensated',
      ]);
      assert.equal(bank.calls.filter((call) => call.startsWith('refund')).length, 1, 'not retried: a refusal');
    });

    it(`[${target.name}] a refusal at the first step: nothing after it runs, its compensation finds nothing to undo`, async () => {
      const bank = new FakeBank();
      const InsufficientShares = (message: string) =>
        new ChassisError('INSUFFICIENT_SHARES', message, { status: 409, retryable: false });
      const saga = sellOrderSaga(bank, {
        before: { reserve_shares: async () => Promise.reject(InsufficientShares('Account 101 holds 5 BHP free')) },
      });
      const { runner } = await setup([saga]);
      const done = await runner.wait(await runner.start(saga, order('o-3', 50)));
      assert.equal(done.status, 'compensated');
      assert.equal(done.error?.code, 'INSUFFICIENT_SHARES');
      assert.deepEqual(bank.calls, [`release ${done.id}:reserve_shares`]);
      assert.deepEqual(bank.effects, []);
    });

    it(`[${target.name}] a failing attempt is retried with full-jitter backoff under the same key, then succeeds`, async () => {
      const bank = new FakeBank();
      const keys: string[] = [];
      const saga = sellOrderSaga(bank, {
        retry: { maxAttempts: 4, initialDelayMs: 40, maxDelayMs: 60 },
        before: {
          place_order: async (ctx) => {
            keys.push(ctx.idempotencyKey);
            if (ctx.sagaId === 'o-4' && ctx.attempt === 1) throw new Error('socket hang up');
            if (ctx.sagaId === 'o-4' && ctx.attempt === 2) throw new ChassisError('UNAVAILABLE', 'Exchange is down');
            if (ctx.sagaId === 'o-5') throw new ChassisError('UNAVAILABLE', 'Exchange is down');
          },
        },
      });
      const { runner } = await setup([saga]);
      const started = Date.now();
      const done = await runner.wait(await runner.start(saga, order('o-4'), { id: 'o-4' }));
      const elapsed = Date.now() - started;
      assert.equal(done.status, 'completed');
      assert.deepEqual(keys, ['o-4:place_order', 'o-4:place_order', 'o-4:place_order']);
      const retries = done.history.filter((entry) => entry.kind === 'step_retrying');
      assert.deepEqual(
        retries.map((entry) => [entry.attempt, entry.error?.code]),
        [
          [1, 'INTERNAL'],
          [2, 'UNAVAILABLE'],
        ],
      );
      const [first, second] = retries.map((entry) => entry.delayMs ?? -1);
      assert.ok(first! >= 0 && first! <= 40, `first delay ${first} within [0, 40]`);
      assert.ok(second! >= 0 && second! <= 60, `second delay ${second} within [0, min(60, 80)]`);
      assert.ok(elapsed >= first! + second!, 'the delays were waited');
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', 'place o-4:place_order', 'charge o-4:charge_fee 100']);

      // Out of attempts: the step fails and what came before is compensated.
      const failed = await runner.wait(await runner.start(saga, order('o-5'), { id: 'o-5' }));
      assert.equal(failed.status, 'compensated');
      assert.deepEqual(
        trace(failed.history).filter((line) => line.includes('place_order')),
        [
          'step_started place_order 1',
          'step_retrying place_order 1',
          'step_started place_order 2',
          'step_retrying place_order 2',
          'step_started place_order 3',
          'step_retrying place_order 3',
          'step_started place_order 4',
          'step_failed place_order 4',
          'compensation_started place_order 1',
          'compensation_completed place_order 1',
        ],
      );
      assert.deepEqual(bank.effects.slice(3), ['reserve 101 BHP 10', 'release o-5:reserve_shares']);
    });

    it(`[${target.name}] an attempt that outlives its timeout is aborted, retried, then the saga compensates`, async () => {
      const bank = new FakeBank();
      const reasons: unknown[] = [];
      const saga = sellOrderSaga(bank, {
        timeoutMs: 60,
        retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
        before: {
          // The exchange never answers; the step gives up when told to.
          place_order: (ctx) =>
            new Promise<void>((_, reject) => {
              ctx.signal.addEventListener('abort', () => {
                reasons.push(ctx.signal.reason);
                reject(ctx.signal.reason);
              });
            }),
        },
      });
      const { runner } = await setup([saga]);
      const started = Date.now();
      const done = await runner.wait(await runner.start(saga, order('o-6')));
      assert.equal(done.status, 'compensated');
      assert.ok(Date.now() - started >= 120, 'two attempts of 60 ms');
      assert.equal(done.error?.code, 'TIMEOUT');
      assert.match(done.error?.message ?? '', /Step "place_order" of saga "sell-order" took more than 60 ms/);
      assert.deepEqual(
        reasons.map((reason) => (reason as ChassisError).code),
        ['TIMEOUT', 'TIMEOUT'],
        'each attempt saw its signal aborted',
      );
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `release ${done.id}:reserve_shares`]);
      assert.ok(bank.calls.includes(`cancel ${done.id}:place_order`), 'the timed-out step is compensated too');
    });

    it(`[${target.name}] a failing compensation is retried with backoff; one that never succeeds leaves the saga failed`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank, {
        compensationRetry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 10 },
        after: { charge_fee: async () => Promise.reject(ChargeFailed('Fee refused')) },
        beforeCompensation: {
          place_order: async (ctx) => {
            if (ctx.sagaId === 'o-7' && ctx.attempt === 1) throw new ChassisError('UNAVAILABLE', 'Exchange is down');
            if (ctx.sagaId === 'o-8') throw new Error('The exchange lost the order book');
          },
        },
      });
      const { runner } = await setup([saga]);
      const recovered = await runner.wait(await runner.start(saga, order('o-7'), { id: 'o-7' }));
      assert.equal(recovered.status, 'compensated');
      assert.deepEqual(
        trace(recovered.history).filter((line) => line.includes('compensation') && line.includes('place_order')),
        [
          'compensation_started place_order 1',
          'compensation_retrying place_order 1',
          'compensation_started place_order 2',
          'compensation_completed place_order 2',
        ],
      );

      const stuck = await runner.wait(await runner.start(saga, order('o-8'), { id: 'o-8' }));
      assert.equal(stuck.status, 'failed');
      assert.equal(stuck.currentStep, 'place_order', 'where it is stuck');
      assert.equal(stuck.error?.code, 'SAGA_COMPENSATION_FAILED');
      assert.match(stuck.error?.message ?? '', /place_order" failed 3 times; last: INTERNAL: The exchange lost/);
      assert.deepEqual(trace(stuck.history).slice(-3), [
        'compensation_started place_order 3',
        'compensation_failed place_order 3',
        'saga_failed',
      ]);
      assert.equal(stuck.history.at(-1)?.error?.code, 'SAGA_COMPENSATION_FAILED');
      assert.ok(bank.effects.includes('refund o-8:charge_fee'), 'the compensations before it ran');
      assert.ok(!bank.calls.includes('release o-8:reserve_shares'), 'those after it did not: reverse order holds');
    });

    it(`[${target.name}] data is validated at start; an id starts once; a saga the runner does not drive is refused`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const investment = investmentSaga(bank);
      const { runner } = await setup([saga, investment]);
      const invalid = await runner
        .start(saga, { ...order('o-9'), symbol: 'bhp', quantity: -1 })
        .catch((error: unknown) => error);
      assert.ok(invalid instanceof ChassisError);
      assert.equal(invalid.code, 'VALIDATION');
      assert.match(invalid.message, /^Saga "sell-order" not started: symbol: .*; quantity: /);
      assert.deepEqual(
        (invalid.data as { saga: string; fields: { path: string }[] }).fields.map((field) => field.path),
        ['symbol', 'quantity'],
      );
      assert.deepEqual(await runner.list(), [], 'nothing recorded');

      const [a, b] = await Promise.all([
        runner.start(saga, order('o-10'), { id: 'o-10' }),
        runner.start(saga, order('o-10'), { id: 'o-10' }),
      ]);
      assert.equal(a, b);
      await runner.wait('o-10');
      assert.equal((await runner.list()).length, 1);
      assert.equal(bank.effects.length, 3);

      const conflict = await runner
        .start(
          investment,
          {
            investmentId: 'o-10',
            accountId: '101',
            paymentId: 'p-1',
            amountCents: 100,
            allocations: [{ symbol: 'BHP', percentage: 100 }],
          },
          { id: 'o-10' },
        )
        .catch((error: unknown) => error);
      assert.ok(conflict instanceof ChassisError && conflict.code === 'CONFLICT', String(conflict));

      const stranger = defineSaga({
        name: 'stranger',
        data: z.object({}),
        steps: [{ name: 'one', run: async () => {} }],
      });
      await assert.rejects(runner.start(stranger, {}), /Saga "stranger" is not one the runner of "bank_\w+" drives/);
      assert.throws(
        () =>
          defineSaga({
            name: 'twice',
            data: z.object({}),
            steps: [
              { name: 'a', run: async () => {} },
              { name: 'a', run: async () => {} },
            ],
          }),
        /step names must be unique/,
      );
    });

    it(`[${target.name}] a strategy investment: listed and inspected while it waits, then partially completed`, async () => {
      const bank = new FakeBank();
      const investment = investmentSaga(bank);
      const sell = sellOrderSaga(bank);
      const { runner } = await setup([investment, sell]);
      bank.payments.set('p-1', 'pending');
      const id = await runner.start(
        investment,
        {
          investmentId: 'inv-1',
          accountId: '101',
          paymentId: 'p-1',
          amountCents: 100_000,
          allocations: [
            { symbol: 'BHP', percentage: 60 },
            { symbol: 'GOOG', percentage: 40 },
          ],
        },
        { id: 'inv-1' },
      );
      await runner.wait(await runner.start(sell, order('o-11')));

      await waitUntil(async () => ((await runner.get(id))?.history.length ?? 0) >= 4, { what: 'a few polls' });
      const waiting = await runner.get(id);
      assert.equal(waiting?.status, 'running');
      assert.equal(waiting?.currentStep, 'await_payment');
      assert.equal(waiting?.owner, runner.nodeId);
      assert.ok(waiting?.leaseUntil instanceof Date);
      assert.ok(
        waiting?.history.some((entry) => entry.kind === 'step_retrying' && entry.error?.code === 'PAYMENT_PENDING'),
      );
      const running = await runner.list({ status: ['running', 'compensating'] });
      assert.deepEqual(
        running.map((s) => [s.id, s.saga, s.currentStep]),
        [['inv-1', 'strategy-investment', 'await_payment']],
      );
      assert.equal((await runner.list({ saga: 'sell-order' })).length, 1);
      assert.equal((await runner.list({ saga: 'sell-order', status: 'running' })).length, 0);

      bank.payments.set('p-1', 'completed');
      await waitUntil(async () => (await runner.get(id))?.currentStep === 'track_orders', { what: 'orders placed' });
      const placed = [...bank.orders.keys()].filter((key) => key.startsWith('inv-1'));
      assert.deepEqual(placed, ['inv-1:place_orders:BHP', 'inv-1:place_orders:GOOG'], 'one buy order per allocation');
      bank.orders.get('inv-1:place_orders:BHP')!.status = 'filled';
      bank.orders.get('inv-1:place_orders:GOOG')!.status = 'failed';

      const done = await runner.wait(id);
      assert.equal(done.status, 'completed');
      assert.equal((done.data as { outcome: string }).outcome, 'partially_completed');
      assert.equal(bank.investments.get('inv-1'), 'partially_completed');
      assert.deepEqual((done.data as { orders: unknown[] }).orders, [
        { key: 'inv-1:place_orders:BHP', symbol: 'BHP', amountCents: 60_000 },
        { key: 'inv-1:place_orders:GOOG', symbol: 'GOOG', amountCents: 40_000 },
      ]);
      assert.deepEqual(await runner.counts(), [
        { saga: 'sell-order', status: 'completed', count: 1 },
        { saga: 'strategy-investment', status: 'completed', count: 1 },
      ]);
      const sellId = (await runner.list({ saga: 'sell-order' }))[0]!.id;
      assert.deepEqual(
        (await runner.list()).map((s) => s.id),
        [sellId, 'inv-1'],
        'newest first',
      );
    });

    it(`[${target.name}] a stopping node finishes the step in flight, records it and lets another node continue`, async () => {
      const bank = new FakeBank();
      const slow = gate();
      let entered = false;
      const saga = sellOrderSaga(bank, {
        before: {
          place_order: async () => {
            entered = true;
            await slow.opened;
          },
        },
      });
      const { runner, node } = await setup([saga]);
      const id = await runner.start(saga, order('o-12'));
      await waitUntil(() => entered, { what: 'the order being placed' });
      const stopped = runner.stop();
      await sleep(50);
      await assert.rejects(runner.start(saga, order('o-13')), (error: ChassisError) => error.code === 'UNAVAILABLE');
      slow.open();
      await stopped;
      const paused = await runner.get(id);
      assert.equal(paused?.status, 'running');
      assert.equal(paused?.currentStep, 'charge_fee');
      assert.equal(paused?.owner, undefined, 'released at once, not left to expire');
      assert.equal(trace(paused!.history).at(-1), 'step_completed place_order 1');

      const other = await node();
      assert.deepEqual(await other.resumeAll(), [id]);
      const done = await other.wait(id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(
        done.history.slice(-4).map((entry) => [entry.kind, entry.node === other.nodeId]),
        [
          ['saga_resumed', true],
          ['step_started', true],
          ['step_completed', true],
          ['saga_completed', true],
        ],
      );
      assert.deepEqual(bank.calls, [
        `reserve ${id}:reserve_shares`,
        `place ${id}:place_order`,
        `charge ${id}:charge_fee`,
      ]);
    });

    it(`[${target.name}] a node dying after a step's effect: another node takes over when the lease lapses and re-runs only that step`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const { runner, node } = await setup([saga], {
        leaseMs: 1_000,
        onBoundary: (event) => {
          // The process "dies" with the order placed but not recorded.
          if (event.boundary === 'step_ran' && event.step === 'place_order') throw new Error('crash');
        },
      });
      const id = await runner.start(saga, order('o-14'));
      await waitUntil(() => bank.effects.length === 2, { what: 'the order placed' });
      await sleep(20);
      const orphan = await runner.get(id);
      assert.equal(orphan?.owner, runner.nodeId, 'the dead node still holds it');
      assert.equal(trace(orphan!.history).at(-1), 'step_started place_order 1');

      const other = await node({ leaseMs: 1_000, sweepMs: 50 });
      assert.deepEqual(await other.resumeAll(), [], 'not while the lease holds');
      const done = await other.wait(id, 10_000);
      assert.equal(done.status, 'completed');
      assert.deepEqual(trace(done.history).slice(3), [
        'step_started place_order 1',
        'saga_resumed place_order',
        'step_started place_order 2',
        'step_completed place_order 2',
        'step_started charge_fee 1',
        'step_completed charge_fee 1',
        'saga_completed',
      ]);
      assert.equal(done.history[4]!.node, other.nodeId);
      assert.deepEqual(
        bank.calls.map((call) => call.split(' ')[0]),
        ['reserve', 'place', 'place', 'charge'],
        'the completed step was not run again; the interrupted one was, under the same key',
      );
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] a restarted node with the same id takes its instances back at once`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank, { after: { charge_fee: async () => Promise.reject(ChargeFailed('No')) } });
      let crashed = false;
      const { runner, node } = await setup([saga], {
        nodeId: 'orders-0',
        leaseMs: 60_000,
        onBoundary: (event) => {
          if (event.boundary === 'compensation_started' && !crashed) {
            crashed = true;
            throw new Error('crash');
          }
        },
      });
      const id = await runner.start(saga, order('o-16'));
      await waitUntil(() => crashed, { what: 'the crash in the first compensation' });
      await sleep(20);
      const stranger = await node({ leaseMs: 60_000 });
      assert.deepEqual(await stranger.resumeAll(), [], 'another node waits for the lease');
      const restarted = await node({ nodeId: 'orders-0' });
      assert.deepEqual(await restarted.resumeAll(), [id], 'its own node, restarted, need not wait');
      const done = await restarted.wait(id);
      assert.equal(done.status, 'compensated');
      assert.deepEqual(trace(done.history).slice(-9), [
        'compensation_started charge_fee 1',
        'saga_resumed charge_fee',
        'compensation_started charge_fee 2',
        'compensation_completed charge_fee 2',
        'compensation_started place_order 1',
        'compensation_completed place_order 1',
        'compensation_started reserve_shares 1',
        'compensation_completed reserve_shares 1',
        'saga_compensated',
      ]);
      assert.deepEqual(
        bank.calls.filter((call) => call.startsWith('refund')),
        [`refund ${id}:charge_fee`],
        'the crash came before the refund was called; it is called once, after the restart',
      );
      assert.deepEqual(bank.effects.slice(3), [
        `refund ${id}:charge_fee`,
        `cancel ${id}:place_order`,
        `release ${id}:reserve_shares`,
      ]);
    });

    it(`[${target.name}] a node that lost its lease is fenced: its late outcome is not recorded`, async () => {
      const bank = new FakeBank();
      const slow = gate();
      let signal: AbortSignal | undefined;
      const saga = sellOrderSaga(bank, {
        before: {
          place_order: async (ctx) => {
            if (ctx.attempt > 1) return;
            signal = ctx.signal;
            await slow.opened;
          },
        },
      });
      const { db, runner, service, node } = await setup([saga], { leaseMs: 300 });
      const id = await runner.start(saga, order('o-17'));
      await waitUntil(() => signal !== undefined, { what: 'the order being placed' });
      // Another node took it over (as if this one had stalled past its lease).
      await sql`update ${sql.id(service, 'chassis_sagas')} set owner = 'intruder', lease_until = now() + interval '1 hour'
        where id = ${id}`.execute(db.kysely);
      await waitUntil(() => signal!.aborted, { what: 'the renewal to notice', timeoutMs: 20_000 });
      assert.equal((signal!.reason as ChassisError).code, 'CONFLICT');
      slow.open();
      await sleep(100);
      const after = await runner.get(id);
      assert.equal(after?.owner, 'intruder');
      assert.equal(trace(after!.history).at(-1), 'step_started place_order 1', 'nothing recorded by the fenced node');

      await sql`update ${sql.id(service, 'chassis_sagas')} set owner = null, lease_until = null where id = ${id}`.execute(
        db.kysely,
      );
      const other = await node();
      assert.deepEqual(await other.resumeAll(), [id]);
      assert.equal((await other.wait(id)).status, 'completed');
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] started inside a transaction: nothing if it rolls back; runs once it commits and is resumed`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const { db, runner } = await setup([saga]);
      await assert.rejects(
        db.transaction(async (trx) => {
          await runner.start(saga, order('o-18'), { id: 'o-18', trx });
          throw new Error('the order could not be recorded');
        }),
        /could not be recorded/,
      );
      assert.equal(await runner.get('o-18'), undefined);

      await db.transaction(async (trx) => {
        await runner.start(saga, order('o-19'), { id: 'o-19', trx });
      });
      await sleep(50);
      assert.deepEqual(trace((await runner.get('o-19'))!.history), ['saga_created'], 'waits for a resume');
      runner.resume('o-19');
      assert.equal((await runner.wait('o-19')).status, 'completed');
      assert.equal(bank.effects.length, 3);
    });
  });
}

/**
 * The crash test on its own, in files of its own: a minute of child processes, which a mutation run of
 * the saga runner (`npm run mutate -- sagas`) leaves out, since Stryker cannot see their coverage.
 */
export function sagaCrashSuite(target: DatabaseTarget): void {
  describe(`orchestrated sagas under SIGKILL: ${target.name}`, { skip: target.skip }, () => {
    after(() => target.cleanup());
    crashTest(target);
  });
}

/**
 * THE crash test: a child process runs sell-order sagas and SIGKILLs itself at one boundary; the next
 * child (a new node id) resumes what it left, then runs the next batch and dies at the next boundary;
 * a last child only resumes. Then every saga must be completed or fully compensated, and no step or
 * compensation may have had its effect twice.
 */
function crashTest(target: DatabaseTarget): void {
  it(`[${target.name}] SIGKILL at each boundary in turn: every saga completes or is compensated, no effect twice`, {
    // About 25 child processes; on PGlite each opens its data folder anew (~4 s a child here).
    timeout: 300_000,
  }, async () => {
    const url = await target.newDatabase({ persistent: true });
    const service = `crash_${randomBytes(3).toString('hex')}`;
    const sagasPerBatch = 4;
    const child = async (env: Record<string, string>) => {
      const proc = spawn(
        process.execPath,
        [...typescriptArgs(), new URL('./crash-child.ts', import.meta.url).pathname],
        {
          env: { ...process.env, ...env, DATABASE_URL: url, SERVICE: service, SAGAS: String(sagasPerBatch) },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const lines: string[] = [];
      const t0 = Date.now();
      createInterface({ input: proc.stdout! }).on('line', (line) => lines.push(line));
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        proc.once('close', (c, s) => resolve([c, s])),
      );
      if (process.env.SAGA_CRASH_TIMING) process.stdout.write(`# child ${JSON.stringify(env)} ${Date.now() - t0} ms\n`);
      return { code, signal, lines };
    };

    const started = Date.now();
    const discovery = await child({ BATCH: 'b0', REPORT: '1' });
    assert.equal(discovery.code, 0, 'a run without a kill finishes');
    const seen = [...new Set(discovery.lines.filter((l) => l.startsWith('boundary ')).map((l) => l.split(' ')[1]!))];
    assert.deepEqual(seen.sort(), [...EXPECTED_BOUNDARIES].sort(), 'the boundaries a batch passes');

    const kills: { boundary: string; sagaId: string }[] = [];
    // What each child found unfinished when it started: what the child before it left.
    const resumed: number[] = [];
    const resumedBy = (lines: string[]) => Number(lines.find((line) => line.startsWith('resumed '))?.split(' ')[1]);
    for (const [k, boundary] of EXPECTED_BOUNDARIES.entries()) {
      const run = await child({ BATCH: `b${k + 1}`, KILL_AT: boundary });
      assert.equal(run.signal, 'SIGKILL', `the child died at ${boundary}: ${run.lines.join(' | ')}`);
      const kill = run.lines.find((line) => line.startsWith('kill '))?.split(' ');
      assert.equal(kill?.[1], boundary);
      kills.push({ boundary, sagaId: kill![2]! });
      resumed.push(resumedBy(run.lines));
    }
    const last = await child({});
    assert.equal(last.code, 0, 'the last restart resumes everything and exits');
    resumed.push(resumedBy(last.lines));
    // A child killed before its saga's end left that saga for the next one. (Killed at the end itself, it
    // may have left nothing: the batch's other sagas can all have finished by then.)
    for (const [k, { boundary, sagaId }] of kills.entries()) {
      if (boundary === 'saga_completed' || boundary === 'saga_compensated') continue;
      assert.ok(resumed[k + 1]! >= 1, `killed at ${boundary} (${sagaId}), the next child found it unfinished`);
    }

    const db = await Database.open(url);
    try {
      const runner = new SagaRunner(db, { service, sagas: [] });
      const all = await runner.list({ limit: 1000 });
      const batches = new Set(all.map((s) => s.id.split('-')[0]));
      assert.equal(batches.size, EXPECTED_BOUNDARIES.length + 1, 'every batch created sagas');
      assert.equal(all.filter((s) => s.id.startsWith('b0-')).length, sagasPerBatch);
      const effects = await sql<{ saga_id: string; step: string; phase: string; key: string; seq: number }>`
        select saga_id, step, phase, key, seq from ${sql.id(service, 'effect_log')} order by seq`.execute(db.kysely);
      const invocations = await sql<{ saga_id: string; step: string; phase: string; attempt: number }>`
        select saga_id, step, phase, attempt from ${sql.id(service, 'invocations')} order by seq`.execute(db.kysely);
      for (const summary of all) {
        const index = Number(summary.id.split('-').at(-1));
        const instance = (await runner.get(summary.id)) as SagaInstance;
        assert.equal(instance.saga, CRASH_SAGA);
        const expected = feeFails(index) ? 'compensated' : 'completed';
        assert.equal(instance.status, expected, `${summary.id}: ${trace(instance.history).join(', ')}`);
        const mine = effects.rows.filter((row) => row.saga_id === summary.id);
        const made = mine.map((row) => `${row.phase} ${row.step}`);
        const wanted = STEPS.map((step) => `run ${step}`);
        if (expected === 'compensated') {
          wanted.push(...[...STEPS].reverse().map((step) => `compensate ${step}`));
        }
        assert.deepEqual(made, wanted, `${summary.id}: each effect once, compensations in reverse order`);
        for (const row of mine) assert.equal(row.key, `${summary.id}:${row.step}`, 'the key never changed');
        // The runner's own record: each step and compensation completed once, and never called after that.
        for (const phase of ['run', 'compensate'] as const) {
          for (const step of STEPS) {
            const done = instance.history.filter(
              (e) => e.step === step && e.kind === (phase === 'run' ? 'step_completed' : 'compensation_completed'),
            );
            const startedAttempts = instance.history
              .filter((e) => e.step === step && e.kind === (phase === 'run' ? 'step_started' : 'compensation_started'))
              .flatMap((e) => (e.attempt === undefined ? [] : [e.attempt]));
            const called = invocations.rows
              .filter((row) => row.saga_id === summary.id && row.step === step && row.phase === phase)
              .map((row) => row.attempt);
            if (phase === 'compensate' && expected === 'completed') {
              assert.deepEqual(called, [], `${summary.id}: nothing compensated`);
              continue;
            }
            // The fee step of a failing saga ends in one `step_failed`; every other one is completed once.
            const failedStep = phase === 'run' && step === 'charge_fee' && expected === 'compensated';
            if (failedStep) done.push(...instance.history.filter((e) => e.step === step && e.kind === 'step_failed'));
            assert.equal(done.length, 1, `${summary.id}: ${step} ${phase} recorded done once`);
            // A start recorded just before a kill may have no call; a call always has its recorded start.
            assert.deepEqual(
              called,
              startedAttempts.filter((attempt) => called.includes(attempt)),
              `${summary.id}: ${step} ${phase}: at most one call per recorded start (${startedAttempts})`,
            );
            const doneAttempt = done[0]?.attempt;
            assert.ok(doneAttempt !== undefined, `${summary.id}: ${step} ${phase} done with its attempt recorded`);
            assert.ok(
              called.every((attempt) => attempt <= doneAttempt),
              `${summary.id}: ${step} ${phase} not called after it was recorded done`,
            );
          }
        }
      }
      for (const kill of kills) {
        assert.ok(
          all.some((s) => s.id === kill.sagaId),
          `the saga killed at ${kill.boundary} is there`,
        );
      }
      const reruns = invocations.rows.length - effects.rows.length;
      process.stdout.write(
        `# crash test (${target.name}): ${kills.length} kills, ${all.length} sagas, ${reruns} calls beyond the effects, ${Date.now() - started} ms\n`,
      );
    } finally {
      await db.close();
    }
  });
}
