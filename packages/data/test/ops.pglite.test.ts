import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { action, ChassisError, callOps, defineService, event, handle, isChassisError, on } from '@chassis/core';
import { dataExtension, defineSaga, runSagas, type SagaInstance, type SagaRunner } from '@chassis/data';
import { memoryTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';
import { gate, trace } from './sagas/fixtures.ts';

/**
 * What the data kit adds to a node's ops API, on PGlite: the outbox of each service it relays for, and
 * the sagas of the services that run them — listed, shown, retried and aborted.
 */
const OPS_SECRET = 'data-ops-secret-0123456789';
const asOperator = { secret: OPS_SECRET };
const fixtures = new URL('./fixtures/migrations/', import.meta.url);

describe('data kit in the ops API: outbox and sagas (pglite)', () => {
  const cluster = useCluster(memoryTarget(), { opsSecret: OPS_SECRET });

  function slice() {
    const service = `orders-${cluster.suffix}`;
    const place = action(`${service}.place`, {
      input: z.object({ orderId: z.string() }),
      output: z.object({ orderId: z.string() }),
    });
    const placed = event(`${service}.placed`, z.object({ orderId: z.string() }));
    const hold = { gate: gate(), reached: false };
    const compensation = { failing: true, runs: 0 };
    const sell = defineSaga({
      name: 'sell',
      data: z.object({ orderId: z.string(), mode: z.enum(['complete', 'hold', 'fail']) }),
      steps: [
        {
          name: 'reserve',
          run: async () => undefined,
          compensate: async () => {
            compensation.runs++;
            if (compensation.failing) throw new Error('the ledger refuses the release');
          },
          compensationRetry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 20 },
        },
        {
          name: 'hold',
          async run(data, step) {
            if (data.mode === 'fail') throw new ChassisError('CONFLICT', 'the market is closed');
            if (data.mode !== 'hold') return;
            hold.reached = true;
            await Promise.race([
              hold.gate.opened,
              new Promise((resolve) => step.signal.addEventListener('abort', resolve, { once: true })),
            ]);
          },
        },
      ],
    });
    const runners: SagaRunner[] = [];
    const seen: string[] = [];
    const orders = defineService({
      name: service,
      migrations: new URL('orders/', fixtures),
      uses: [placed],
      start: async (serviceHandle) => {
        runners.push(await runSagas(serviceHandle, [sell], { sweepMs: 200, leaseMs: 1_000 }));
      },
      actions: [
        handle(place, async ({ orderId }, ctx) => {
          await ctx.emit(placed, { orderId });
          return { orderId };
        }),
      ],
      events: [on(placed, ({ orderId }) => void seen.push(orderId))],
    });
    return { orders, place, sell, hold, compensation, runners, seen };
  }

  it('shows the outbox of each service it relays for', async () => {
    const s = slice();
    const node = await cluster.startNode([s.orders], { extensions: [dataExtension({ url: 'pglite://memory' })] });
    const client = await cluster.transport();
    await node.call(s.place, { orderId: 'o-1' });
    await waitUntil(() => s.seen.includes('o-1'), { what: 'the event relayed and handled' });
    type Outbox = { service: string; pending: number; parked: number; oldestAgeMs: number; parkedEvents: unknown[] };
    const status = async () => (await callOps(client, node.id, 'outbox', {}, asOperator)) as Outbox[];
    // The relay marks the row sent just after publishing it, so the handler may see the event first.
    await waitUntil(async () => (await status())[0]?.pending === 0, { what: 'the outbox drained' });
    const [outbox] = await status();
    assert.equal(outbox?.service, s.orders.name);
    assert.deepEqual([outbox.pending, outbox.parked, outbox.parkedEvents], [0, 0, []]);
  });

  it('lists and shows sagas, retries a failed one and aborts a running one', async () => {
    const s = slice();
    const node = await cluster.startNode([s.orders], { extensions: [dataExtension({ url: 'pglite://memory' })] });
    const client = await cluster.transport();
    const runner = s.runners.at(-1)!;

    const done = await runner.start(s.sell, { orderId: randomUUID(), mode: 'complete' });
    assert.equal((await runner.wait(done, 5_000)).status, 'completed');
    const [listed] = (await callOps(client, node.id, 'sagas.list', {}, asOperator)) as {
      service: string;
      sagas: string[];
      instances: { id: string; status: string }[];
      counts: { saga: string; status: string; count: number }[];
    }[];
    assert.equal(listed?.service, s.orders.name);
    assert.deepEqual(listed.sagas, ['sell']);
    assert.deepEqual(
      listed.instances.map((i) => [i.id, i.status]),
      [[done, 'completed']],
    );
    assert.deepEqual(listed.counts, [{ saga: 'sell', status: 'completed', count: 1 }]);
    const shown = (await callOps(client, node.id, 'sagas.show', { id: done }, asOperator)) as SagaInstance;
    assert.deepEqual(trace(shown.history).at(-1), 'saga_completed');

    // A step refuses, the compensation keeps failing: the saga ends failed. Fixed, an operator retries it.
    const failing = await runner.start(s.sell, { orderId: randomUUID(), mode: 'fail' });
    assert.equal((await runner.wait(failing, 5_000)).status, 'failed');
    const notRunning = await callOps(client, node.id, 'sagas.abort', { id: failing }, asOperator).catch((e) => e);
    assert.ok(isChassisError(notRunning, 'CONFLICT'), String(notRunning));
    s.compensation.failing = false;
    await callOps(client, node.id, 'sagas.retry', { id: failing }, asOperator);
    const retried = await runner.wait(failing, 5_000);
    assert.equal(retried.status, 'compensated');
    assert.ok(trace(retried.history).includes('saga_retried reserve'), trace(retried.history).join(', '));

    // A running saga held in a step: aborted, it compensates (the step's own compensation, then reserve's).
    const held = await runner.start(s.sell, { orderId: randomUUID(), mode: 'hold' });
    await waitUntil(() => s.hold.reached, { what: 'the saga to reach its hold step' });
    const runsBefore = s.compensation.runs;
    const aborted = (await callOps(
      client,
      node.id,
      'sagas.abort',
      { id: held, reason: 'the customer cancelled' },
      asOperator,
    )) as SagaInstance;
    assert.equal(aborted.error?.code, 'SAGA_ABORTED');
    const ended = await runner.wait(held, 5_000);
    assert.equal(ended.status, 'compensated');
    assert.equal(s.compensation.runs, runsBefore + 1, "reserve's compensation ran once");
    assert.ok(trace(ended.history).includes('saga_aborted hold'), trace(ended.history).join(', '));

    const missing = await callOps(client, node.id, 'sagas.show', { id: 'no-such-saga' }, asOperator).catch((e) => e);
    assert.ok(isChassisError(missing, 'NOT_FOUND'), String(missing));
    const anonymous = await callOps(client, node.id, 'sagas.retry', { id: failing }).catch((e) => e);
    assert.ok(isChassisError(anonymous, 'UNAUTHENTICATED'), String(anonymous));
  });
});
